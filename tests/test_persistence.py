"""Crafted model folders: a saved model is data, never a crash, never a memory bomb, never instructions."""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from soundanomaly.detectors import BaseDetector, GaussianDetector, load_model
from soundanomaly.detectors.options import RunOptions
from soundanomaly.exceptions import ModelFormatError
from soundanomaly.features import ClipFeatures

N_FEATURES = 6


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    train = ClipFeatures.from_arrays([rng.normal(size=(10, N_FEATURES)).astype(np.float32) for _ in range(8)])
    return GaussianDetector(threshold=2.0).fit(train).save(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def folder(model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model, target)
    return target


def _edit_manifest(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        result = edit(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest if result is None else result))

    return apply


def _set(key: str, value: object) -> Callable[[Path], None]:
    return _edit_manifest(lambda m: m.__setitem__(key, value))


def _drop(key: str) -> Callable[[Path], None]:
    return _edit_manifest(lambda m: m.pop(key))


def _npy(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 64


def _write_state(members: dict[str, bytes], *, keep: bool = True) -> Callable[[Path], None]:
    """Rewrite state.npz: keep the original arrays (unless ``keep`` is False) and add/replace ``members``."""

    def apply(folder: Path) -> None:
        path = folder / "state.npz"
        with zipfile.ZipFile(path) as archive:
            original = {name: archive.read(name) for name in archive.namelist()} if keep else {}
        original.update(members)
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in original.items():
                archive.writestr(name, data)

    return apply


def _drop_array(name: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "state.npz"
        with zipfile.ZipFile(path) as archive:
            kept = {n: archive.read(n) for n in archive.namelist() if n != f"{name}.npy"}
        with zipfile.ZipFile(path, "w") as archive:
            for n, data in kept.items():
                archive.writestr(n, data)

    return apply


def _bytes(transform: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "state.npz"
        path.write_bytes(transform(path.read_bytes()))

    return apply


def _flip_payload(data: bytes) -> bytes:
    out = bytearray(data)
    out[200] ^= 0xFF  # inside the first array's payload: the CRC no longer matches
    return bytes(out)


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text) and None  # type: ignore[func-returns-value]


CRASH_LIST: dict[str, Callable[[Path], None]] = {
    # manifest.json
    "manifest is a JSON list": _write("manifest.json", "[1, 2]"),
    "manifest is empty": _write("manifest.json", ""),
    "manifest is not UTF-8": lambda folder: (folder / "manifest.json").write_bytes(b"\xff\xfe{"),
    "missing threshold": _drop("threshold"),
    "missing params": _drop("params"),
    "missing features": _drop("features"),
    "missing detector": _drop("detector"),
    "missing n_features_in": _drop("n_features_in"),
    "unknown key": _set("endpoint", "http://127.0.0.1:8765"),
    "format_version 0": _set("format_version", 0),
    "format_version -1": _set("format_version", -1),
    "format_version true": _set("format_version", True),
    "format_version 1.5": _set("format_version", 1.5),
    "format_version '2'": _set("format_version", "2"),
    "format_version 99": _set("format_version", 99),
    "threshold NaN": _set("threshold", float("nan")),
    "threshold Infinity": _set("threshold", float("inf")),
    "threshold 'high'": _set("threshold", "high"),
    "threshold true": _set("threshold", True),
    "threshold null": _set("threshold", None),
    "detector unknown": _set("detector", "os.system"),
    "detector not a string": _set("detector", ["GaussianDetector"]),
    "params a list": _set("params", [1]),
    "params of another detector": _edit_manifest(lambda m: m["params"].update(hidden=[64, 8, 64], epochs=3)),
    "params invalid value": _edit_manifest(lambda m: m["params"].update(shrinkage=2.5)),
    "params wrong type": _edit_manifest(lambda m: m["params"].update(shrinkage="lots")),
    "features not an object": _set("features", "LogMelFrames"),
    "features unknown extractor": _set("features", {"name": "Evil"}),
    "features bad parameter": _edit_manifest(lambda m: m["features"].update(n_mels=-1)),
    "features unknown parameter": _edit_manifest(lambda m: m["features"].update(colour="red")),
    "n_features_in a string": _set("n_features_in", "6"),
    "n_features_in zero": _set("n_features_in", 0),
    "n_features_in wrong": _set("n_features_in", 7),
    "extra a list": _set("extra", []),
    "training_clips an object": _set("training_clips", {"a": 1}),
    "calibration a string": _set("calibration", "holdout"),
    # state.npz
    "state missing": lambda folder: (folder / "state.npz").unlink(),
    "state empty": _bytes(lambda data: b""),
    "state not a zip": _bytes(lambda data: b"this is not a zip archive"),
    "state truncated": _bytes(lambda data: data[: len(data) // 2]),
    "state bit-flipped": _bytes(_flip_payload),
    "array missing": _drop_array("precision"),
    "array extra": _write_state({"extra.npy": _npy(np.zeros(3))}),
    "array not .npy": _write_state({"notes.txt": b"hello"}),
    "array wrong shape": _write_state({"mean.npy": _npy(np.zeros(N_FEATURES + 1))}),
    "array of strings": _write_state({"mean.npy": _npy(np.array(["a"] * N_FEATURES))}),
    "array of objects (pickle)": _write_state({"mean.npy": _npy(np.array([{"x": 1}] * N_FEATURES, dtype=object))}),
    "array of ints": _write_state({"mean.npy": _npy(np.zeros(N_FEATURES, dtype=np.int64))}),
    "array holds NaN": _write_state({"mean.npy": _npy(np.full(N_FEATURES, np.nan))}),
    "array header lies about its size": _write_state({"mean.npy": _header_only((N_FEATURES,))}),
    "array header is garbage": _write_state({"mean.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': os.sys}   \n"}),
    "memory bomb header": _write_state({"train_scores.npy": _header_only((600_000_000,))}),
}


@pytest.mark.parametrize("case", list(CRASH_LIST), ids=list(CRASH_LIST))
def test_crafted_model_folders_raise_model_format_error(case: str, folder: Path) -> None:
    CRASH_LIST[case](folder)
    with pytest.raises(ModelFormatError):
        load_model(folder)
    with pytest.raises(ModelFormatError):
        GaussianDetector.load(folder)


def test_untouched_copy_loads(folder: Path) -> None:
    assert load_model(folder).threshold_ == 2.0


class _SpecFree(BaseDetector):
    """A user detector without ``_state_spec``: loose checks, still capped."""

    def _fit(self, features: ClipFeatures, labels: object = None) -> None:
        self.centre_ = features.windows.mean(axis=0)

    def _score_windows(self, windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(np.abs(windows - self.centre_).mean(axis=1), dtype=np.float64)

    def _get_state(self) -> dict[str, npt.NDArray[np.float32]]:
        return {"centre": self.centre_}

    def _set_state(self, state: dict[str, npt.NDArray[np.float32]]) -> None:
        self.centre_ = state["centre"]


def test_memory_bomb_is_refused_before_any_payload_is_read(tmp_path: Path) -> None:
    train = ClipFeatures.from_arrays([np.ones((3, 4), np.float32), np.zeros((3, 4), np.float32)])
    target = _SpecFree(threshold=1.0).fit(train).save(tmp_path / "m")
    _write_state({"centre.npy": _header_only((600_000_000,))})(target)  # 2.4 GB declared in a tiny file
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="refusing"):
            load_model(target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert load_model(_SpecFree(threshold=1.0).fit(train).save(tmp_path / "ok")).threshold_ == 1.0


class _Remote(GaussianDetector):
    """A detector with a connection parameter (as a cloud detector has)."""

    def __init__(self, *, endpoint_url: str | None = None, threshold: float | None = None) -> None:
        super().__init__(threshold=threshold)
        self.endpoint_url = endpoint_url


def test_connection_parameters_from_a_model_file_are_not_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = ClipFeatures.from_arrays([rng.normal(size=(5, 3)).astype(np.float32) for _ in range(3)])
    target = _Remote(endpoint_url="http://127.0.0.1:8765", threshold=1.0).fit(train).save(tmp_path / "m")
    assert json.loads((target / "manifest.json").read_text())["params"]["endpoint_url"] == "http://127.0.0.1:8765"
    assert _endpoint(load_model(target)) is None
    assert _endpoint(load_model(target, trust_endpoints=True)) == "http://127.0.0.1:8765"
    assert _endpoint(load_model(target, endpoint_url="http://mine")) == "http://mine"


def _endpoint(detector: BaseDetector) -> object:
    assert isinstance(detector, _Remote)
    return detector.endpoint_url


def test_format_1_models_still_load(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("training_clips", "calibration"):
        manifest.pop(key)
    manifest["format_version"] = 1
    manifest["params"] = {"shrinkage": 0.05, "channel": 0, "threshold": 2.0, "chunk_size": 64}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _drop_array("holdout_scores")(folder)
    detector = load_model(folder)
    assert detector.threshold_ == 2.0 and len(detector.holdout_scores_) == 0


# -- #21: models written by c91f061 (before the split of base.py) still load and score the same -----------------------
LEGACY = Path(__file__).parent / "fixtures" / "models_c91f061"


@pytest.mark.parametrize("name", ["gaussian", "clipstats", "pergroup", "ensemble"])
def test_models_saved_by_c91f061_load_and_score_the_same(name: str) -> None:
    expected = json.loads((LEGACY / "expected.json").read_text())
    with np.load(LEGACY / "probe.npz") as archive:
        probe = ClipFeatures.from_arrays([archive[f"clip{i}"] for i in range(len(archive.files))])
    model = load_model(LEGACY / name)
    want = expected["models"][name]
    options = {"groups": expected["probe_groups"]} if name == "pergroup" else {}
    np.testing.assert_allclose(model.score(probe, **options), want["scores"], rtol=1e-6)
    assert model.threshold_ == pytest.approx(want["threshold"], rel=1e-9)
    assert model.run_options == RunOptions()  # the manifest's saved chunk_size/n_jobs/cache_dir steer nothing


def test_a_manifest_cannot_steer_run_options(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = GaussianDetector(threshold=3.0).fit(ClipFeatures.from_arrays([rng.normal(size=(6, 3)).astype("f4")] * 4))
    path = model.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    assert not set(manifest["params"]) & {"chunk_size", "n_jobs", "cache_dir", "progress", "on_error"}
    manifest["params"].update(cache_dir="/etc", n_jobs=512, on_error="skip", progress=True)
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_model(path).run_options == RunOptions()
    assert load_model(path, progress=True).run_options.progress  # the caller may set them


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"n_fft": 2**27}, "n_fft"),
        ({"n_mels": 100_000}, "n_mels"),
        ({"hop_length": 1}, "hop_length"),
        ({"frames": 10_000}, "frames"),
    ],
)
def test_saved_feature_parameters_are_bounded(tmp_path: Path, features: dict[str, int], message: str) -> None:
    rng = np.random.default_rng(0)
    model = GaussianDetector(threshold=3.0).fit(ClipFeatures.from_arrays([rng.normal(size=(6, 3)).astype("f4")] * 4))
    path = model.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["features"].update(features)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)
