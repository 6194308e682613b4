"""Every public class and function carries a numpydoc docstring with an Examples section."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "soundanomaly.audio",
    "soundanomaly.features",
    "soundanomaly.datasets",
    "soundanomaly.datasets.synthetic",
    "soundanomaly.datasets.fan_physics",
    "soundanomaly.detectors",
    "soundanomaly.calibration",
    "soundanomaly.evaluation",
    "soundanomaly.plots",
    "soundanomaly.manifest",
    "soundanomaly.backends",
    "soundanomaly.backends.sagemaker",
    "soundanomaly.backends.sagemaker_serving",
    "soundanomaly.backends.rekognition",
    "soundanomaly.testing",
    "soundanomaly.exceptions",
    "soundanomaly.demo",
    "soundanomaly.typing",
    "soundanomaly.dcase_score",
    "soundanomaly.datasets.download",
    "soundanomaly.datasets.fetch",
    "soundanomaly.datasets.dcase",
    "soundanomaly.monitor",
    "soundanomaly.recording",
    "soundanomaly.explain",
    "soundanomaly.datasets.keys",
    "soundanomaly.results",
    "soundanomaly.features.twfr",
    "soundanomaly.detectors.domain_knn",
    "soundanomaly.detectors.selective_mahalanobis",
    "soundanomaly.detectors.twfr_gmm",
    "soundanomaly.detectors.auxiliary",
    "soundanomaly.datasets.shift",
    "soundanomaly.sessions",
    "soundanomaly.presets",
]


def _public() -> list[tuple[str, object]]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                names.append((f"{module_name}.{name}", obj))
    return names


@pytest.mark.parametrize(("name", "obj"), _public(), ids=[n for n, _ in _public()])
def test_public_name_has_docstring_with_example(name: str, obj: object) -> None:
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{name} has no docstring"
    assert "Examples\n--------" in doc, f"{name} has no Examples section"
