"""AuxiliaryClassifierDetector (#22): learns section/domain/attribute classes, scores embeddings by per-domain k-NN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.detectors import AuxiliaryClassifierDetector, load_model
from soundanomaly.detectors.auxiliary import auxiliary_labels
from soundanomaly.evaluation import roc_auc
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.features import ClipFeatures

pytestmark = [
    pytest.mark.tf,
    pytest.mark.filterwarnings("ignore::soundanomaly.exceptions.CalibrationWarning"),
]
D = 16


def _name(domain: str, split: str, i: int, speed: int, label: str = "normal") -> str:
    return f"dev/fan/{split}/section_00_{domain}_{split}_{label}_{i:04d}_spd_{speed}_mic_1.wav"


@pytest.fixture(scope="module")
def dcase_like() -> dict[str, ClipFeatures | np.ndarray]:
    """Two source speeds (tones at different places), a target speed with 10 clips; a fault moves a tone."""
    rng = np.random.default_rng(7)

    def clip(speed: int, fault: bool = False, noise: float = 1.0) -> np.ndarray:
        x = rng.normal(0, noise, D)
        x[speed % D] += 6.0
        x[(speed + (5 if fault else 3)) % D] += 4.0
        return x[None, :].astype(np.float32)

    arrays, paths = [], []
    for i in range(80):
        speed = (2, 5)[i % 2]
        arrays.append(clip(speed))
        paths.append(_name("source", "train", i, speed))
    for i in range(10):
        arrays.append(clip(9, noise=1.5))
        paths.append(_name("target", "train", i, 9))
    test, labels, test_paths = [], [], []
    for i, (speed, domain) in enumerate([(2, "source"), (5, "source"), (9, "target")] * 12):
        fault = i % 2 == 1
        test.append(clip(speed, fault, 1.5 if domain == "target" else 1.0))
        labels.append(int(fault))
        test_paths.append(_name(domain, "test", i, speed, "anomaly" if fault else "normal"))
    return {
        "train": ClipFeatures.from_arrays(arrays, paths=paths),
        "test": ClipFeatures.from_arrays(test, paths=test_paths),
        "labels": np.array(labels, dtype=np.int8),
    }


def test_labels_join_group_session_and_attributes():
    paths = [_name("source", "train", 0, 2), "plain.wav"]
    labels = auxiliary_labels(paths, ["fan/section_00", "fan/section_00"], ["fan/section_00/source", "x"])
    assert labels.tolist() == ["fan/section_00|fan/section_00/source|spd_2_mic_1", "fan/section_00|x|"]
    with pytest.raises(ParameterError, match="sessions"):
        auxiliary_labels(paths, None, ["a"])


def test_learns_attribute_classes_and_finds_faults(dcase_like):
    detector = AuxiliaryClassifierDetector(epochs=40).fit(dcase_like["train"])
    assert len(detector.classes_) == 3  # two source speeds, one target speed (one section)
    assert detector.sessions_ == ["fan/section_00/source", "fan/section_00/target"]
    scores = detector.score(dcase_like["test"])
    assert roc_auc(dcase_like["labels"], scores) >= 0.85
    assert detector.history_["loss"][-1] < detector.history_["loss"][0]


def test_one_class_is_refused_with_advice():
    rng = np.random.default_rng(0)
    features = ClipFeatures.from_arrays([rng.normal(size=(1, D)).astype(np.float32) for _ in range(10)])
    with pytest.raises(ParameterError, match="DomainKNNDetector"):
        AuxiliaryClassifierDetector(epochs=1).fit(features)


def test_save_load_and_adapt(dcase_like, tmp_path: Path):
    detector = AuxiliaryClassifierDetector(epochs=20).fit(dcase_like["train"])
    rng = np.random.default_rng(3)
    new = ClipFeatures.from_arrays([rng.normal(0, 1, (1, D)).astype(np.float32) for _ in range(5)])
    before = detector.score(new)
    detector.adapt(new, sessions=["after-maintenance"] * 5)
    assert "after-maintenance" in detector.sessions_
    assert (detector.score(new) <= before + 1e-9).all()
    loaded = load_model(detector.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.score(dcase_like["test"]), detector.score(dcase_like["test"]), rtol=1e-6)
    (tmp_path / "model" / "manifest.json").write_text(
        (tmp_path / "model" / "manifest.json").read_text().replace('"embedding": 64', '"embedding": 32')
    )
    with pytest.raises(ModelFormatError):
        load_model(tmp_path / "model")


@pytest.mark.parametrize(
    "params",
    [{"hidden": (0,)}, {"embedding": 1}, {"dropout": 1.0}, {"label_smoothing": -0.1}, {"learning_rate": 0}],
)
def test_bad_parameters(params):
    with pytest.raises(ParameterError, match=next(iter(params))):
        AuxiliaryClassifierDetector(**params)
