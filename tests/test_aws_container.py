"""The SageMaker training code as the container runs it: the image's Python, TensorFlow and Keras.

Two levels:

* Fast, always: the staged modules compile under the image's Python
  version (``python3.10 -m py_compile`` when pyenv provides it), use no
  name of a newer ``typing`` or standard library, import nothing of
  soundanomaly that is not staged, and avoid Keras >= 3.6 API.
* Slow, when the image's interpreter is prepared (``nox -s container``
  builds Python 3.10 + tensorflow-cpu 2.16.2 + Keras 3.4.1, the TF 2.16
  training image's versions): the staged ``train.py`` runs with the
  ``SM_*`` environment, twice on one checkpoint folder (spot resume),
  then with other hyperparameters on the same folder.
"""

from __future__ import annotations

import ast
import glob
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sagemaker")

from soundanomaly.backends.sagemaker import SageMakerBackend, _stage_source, run_fingerprint
from soundanomaly.testing.aws import container_python, run_training_script

#: Names that only exist on newer Pythons than the training images' oldest (3.10).
NEWER_TYPING = {"Self", "Never", "LiteralString", "NotRequired", "Required", "TypeVarTuple", "Unpack",
                "assert_never", "assert_type", "reveal_type", "dataclass_transform", "override", "TypeAliasType",
                "ReadOnly", "TypeIs", "get_overloads", "clear_overloads"}  # fmt: skip
NEWER_MODULES = {"tomllib", "wsgiref.types"}
NEWER_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}
#: Keras >= 3.6 keyword arguments the entry script must not pass (the TF 2.16 image has Keras 3.4).
NEWER_KERAS_KWARGS = {"export": {"verbose", "input_signature", "autograph"}}


def _py_version() -> str:
    backend = SageMakerBackend(role="arn:aws:iam::111122223333:role/r", bucket="b", region="us-east-1")
    return backend.py_version()


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = tmp_path_factory.mktemp("code")
    _stage_source(code)  # the very function SageMakerBackend.start_training uses
    return code


def _python(version: str) -> str | None:
    """An interpreter of ``version`` (pyenv's own builds first: its shims may not be activated)."""
    candidates = sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python"), reverse=True)
    candidates.append(shutil.which(f"python{version}") or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def test_the_image_python_comes_from_the_sdk() -> None:
    assert _py_version() == "py310"  # TF 2.16 training images
    backend = SageMakerBackend(
        role="arn:aws:iam::111122223333:role/r", bucket="b", region="us-east-1", framework_version="2.19"
    )
    assert backend.py_version() == "py312"
    assert "py312" in backend._image("training")


def test_staged_files(staged: Path) -> None:
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*.py"))
    assert files == [
        "soundanomaly/__init__.py",
        "soundanomaly/backends/__init__.py",
        "soundanomaly/backends/local.py",
        "train.py",
    ]


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (never executed)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for child in ast.walk(node))
    return [node for node in ast.walk(tree) if id(node) not in skip]


def _newer_than_the_image(staged: Path) -> list[str]:
    """What in the staged code would fail on the image's Python 3.10 or Keras 3.4."""
    problems: list[str] = []
    staged_modules = {"soundanomaly", "soundanomaly.backends", "soundanomaly.backends.local"}
    for path in sorted(staged.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in _runtime_nodes(tree):
            where = f"{path.relative_to(staged)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module in ("typing", "typing_extensions"):
                    problems += [f"{where}: typing.{a.name}" for a in node.names if a.name in NEWER_TYPING]
                if node.module in NEWER_MODULES:
                    problems.append(f"{where}: {node.module}")
                if node.module.startswith("soundanomaly") and node.module not in staged_modules:
                    problems.append(f"{where}: imports {node.module}, which is not staged")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in NEWER_MODULES:
                        problems.append(f"{where}: {alias.name}")
                    if alias.name.startswith("soundanomaly") and alias.name not in staged_modules:
                        problems.append(f"{where}: imports {alias.name}, which is not staged")
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "typing" and node.attr in NEWER_TYPING:
                problems.append(f"{where}: typing.{node.attr}")
            if isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
                problems.append(f"{where}: {node.id}")
            if isinstance(node, ast.TryStar):
                problems.append(f"{where}: except*")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                banned = NEWER_KERAS_KWARGS.get(node.func.attr, set())
                problems += [f"{where}: .{node.func.attr}({k.arg}=...)" for k in node.keywords if k.arg in banned]
    return problems


def test_staged_code_uses_nothing_newer_than_the_image(staged: Path) -> None:
    assert _newer_than_the_image(staged) == []


def test_staged_code_compiles_under_the_image_python(staged: Path) -> None:
    version = _py_version()
    python = _python(f"{version[2]}.{version[3:]}")
    if python is None:
        pytest.skip(f"no python{version[2]}.{version[3:]} on this machine (pyenv provides it on the dev machines)")
    files = [str(p) for p in sorted(staged.rglob("*.py"))]
    result = subprocess.run([python, "-m", "py_compile", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_checker_catches_what_broke_the_container(tmp_path: Path) -> None:
    """The AST check would have caught the bugs of issue #12 (typing.Self, export(verbose=...))."""
    (tmp_path / "train.py").write_text(
        "from typing import Self\nimport typing\nx: typing.Self\nmodel.export('1', verbose=False)\n"
    )
    (tmp_path / "soundanomaly").mkdir()
    (tmp_path / "soundanomaly" / "typing.py").write_text("from soundanomaly.exceptions import E\n")
    assert sorted(_newer_than_the_image(tmp_path)) == [
        "soundanomaly/typing.py:1: imports soundanomaly.exceptions, which is not staged",
        "train.py:1: typing.Self",
        "train.py:3: typing.Self",
        "train.py:4: .export(verbose=...)",
    ]


# -- the slow part: the image's own interpreter, TensorFlow and Keras ---------------------------------------


@pytest.fixture(scope="module")
def image_python() -> str:
    python = container_python(_py_version())
    if python is None:
        pytest.skip(
            "the training image's interpreter is not prepared: run `nox -s container` (Python 3.10, "
            "tensorflow-cpu 2.16.2, Keras 3.4.1) or set SOUNDANOMALY_CONTAINER_PYTHON"
        )
    return python


def _history(model_dir: Path) -> dict[str, list[float]]:
    result: dict[str, list[float]] = json.loads((model_dir / "history.json").read_text())
    return result


def _weights(model_dir: Path) -> list[np.ndarray]:
    with np.load(model_dir / "weights.npz") as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


@pytest.mark.slow
@pytest.mark.tf
def test_training_runs_in_the_image_twice_on_one_checkpoint_folder(
    image_python: str, staged: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    train = tmp_path / "input" / "data" / "train"
    train.mkdir(parents=True)
    np.save(train / "shard-00000.npy", rng.normal(size=(256, 20)).astype(np.float32))
    checkpoints = tmp_path / "checkpoints"
    hps = {"epochs": 2, "batch-size": 64, "learning-rate": 0.001, "validation-split": 0.0, "early-stopping": 0,
           "seed": 1, "hidden": "[8, 4, 8]", "n_mels": 4, "frames": 5}  # fmt: skip
    hps["fingerprint"] = run_fingerprint("s3://b/data/", hps)

    def run(name: str, hyperparameters: dict[str, object]) -> Path:
        model_dir = tmp_path / name
        result = run_training_script(
            staged,
            train_dir=train,
            model_dir=model_dir,
            checkpoint_dir=checkpoints,
            hyperparameters=hyperparameters,
            python=image_python,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "python 3.10" in result.stdout  # the image's interpreter ran it
        assert f"soundanomaly modules from {staged / 'soundanomaly'}" in result.stdout
        assert (model_dir / "1" / "saved_model.pb").is_file()  # the TF Serving export, on Keras 3.4
        return model_dir

    first = run("first", hps)
    assert len(_history(first)["loss"]) == 2
    # a spot job restarted after its last epoch: resumes, trains nothing more, same result
    second = run("second", hps)
    assert _history(second) == _history(first)
    for a, b in zip(_weights(first), _weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    # another run pointed at the same folder (other architecture): the checkpoint is ignored
    other = {**hps, "hidden": "[6, 3, 6]", "epochs": 1}
    other["fingerprint"] = run_fingerprint("s3://b/data/", other)
    third = run("third", other)
    assert len(_history(third)["loss"]) == 1
    assert _weights(third)[0].shape == (20, 6)
