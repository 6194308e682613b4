"""The streaming package, the CLI, explain, demo and evaluation keep to the layering rules of #21.

* no ``from soundanomaly.x import _private`` of another module's private names;
* the monitor and ``explain`` ask the detector (``stream_scorer()``, ``feature_contributions()``) and never read
  its fitted arrays (``mean_``, ``precision_``, ``weights_``) nor test its class against detector types;
* no module over 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "soundanomaly"
MODULES = sorted(
    [
        *(PACKAGE / "streaming").glob("*.py"),
        *(PACKAGE / "cli").glob("*.py"),
        *(PACKAGE / name for name in ("monitor.py", "explain.py", "demo.py", "demo_report.py", "evaluation.py")),
        PACKAGE / "_progress.py",
    ]
)
ASKS_THE_DETECTOR = [PACKAGE / "explain.py", *(PACKAGE / "streaming").glob("*.py")]


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_private_names_imported_from_other_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"from {node.module} import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("soundanomaly")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("path", ASKS_THE_DETECTOR, ids=_name)
def test_detector_internals_are_not_read(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    fitted = {"mean_", "precision_", "weights_", "scale_", "reference_"}
    reads = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in fitted]
    reads += [
        name.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"
        for name in ast.walk(node.args[1])
        if isinstance(name, ast.Name) and name.id in {"GaussianDetector", "AutoencoderDetector", "ClipStatsDetector"}
    ]
    assert reads == []


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_stay_under_600_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 600


STREAMING = sorted((PACKAGE / "streaming").glob("*.py"))


def _detector_private_methods() -> set[str]:
    """Every private method name of the detector classes (the base, meta-detectors and every registered one)."""
    from soundanomaly.detectors.base import BaseDetector
    from soundanomaly.detectors.ensemble import Ensemble
    from soundanomaly.detectors.pergroup import PerGroup
    from soundanomaly.registry import all_detectors

    classes = [BaseDetector, PerGroup, Ensemble, *(cls for _, cls in all_detectors())]
    return {
        name
        for cls in classes
        for name in dir(cls)
        if name.startswith("_") and not name.startswith("__") and callable(getattr(cls, name, None))
    }


@pytest.mark.parametrize("path", STREAMING, ids=_name)
def test_streaming_calls_only_public_detector_methods(path: Path) -> None:
    """#21: streaming asks a detector through public methods (``score_windows``, ``reduce_windows``,
    ``check_is_fitted``, ``group_member``), never its private ones, and never tests its class."""
    private = _detector_private_methods()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [
        f"line {node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in private
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in {"self", "cls", "super"})
    ]
    classes = {"PerGroup", "Ensemble", "MetaDetector", "BaseDetector"}
    calls += [
        f"line {node.lineno}: isinstance(..., {name.id})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"
        for name in ast.walk(node.args[1])
        if isinstance(name, ast.Name) and name.id in classes - {"BaseDetector"}
    ]
    assert calls == []
