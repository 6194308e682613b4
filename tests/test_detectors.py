"""The detector contract: every detector goes through the same checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import MIMII
from soundanomaly.detectors import AutoencoderDetector, BaseDetector, GaussianDetector, load
from soundanomaly.evaluation import roc_auc
from soundanomaly.exceptions import ModelFormatError, NotFittedError, ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.typing import Detector

FACTORIES: dict[str, Callable[[], BaseDetector]] = {
    "gaussian": lambda: GaussianDetector(),
    "autoencoder": lambda: AutoencoderDetector(epochs=30, batch_size=64, learning_rate=3e-3, seed=0),
}
PARAMS = [
    pytest.param("gaussian", id="gaussian"),
    pytest.param("autoencoder", id="autoencoder", marks=pytest.mark.tf),
]


@pytest.fixture(scope="module")
def tiny_features(tiny: MIMII) -> dict[str, ClipFeatures]:
    extractor = LogMelFrames()
    return {
        "normal": extractor.extract(tiny.filter(label="normal").paths, progress=False),
        "abnormal": extractor.extract(tiny.filter(label="abnormal").paths, progress=False),
    }


@pytest.fixture(scope="module")
def fitted(tiny_features: dict[str, ClipFeatures]) -> dict[str, BaseDetector]:
    return {name: factory().fit(tiny_features["normal"]) for name, factory in FACTORIES.items()}


@pytest.mark.parametrize("name", PARAMS)
def test_contract(name: str, fitted: dict[str, BaseDetector], tiny_features: dict[str, ClipFeatures]) -> None:
    check_contract(fitted[name], tiny_features["normal"], tiny_features["abnormal"])
    # fit sets the threshold from training scores: 1% false alarms allowed on them
    assert np.mean(fitted[name].train_scores_ > fitted[name].threshold_) <= 0.01


@pytest.mark.tf
def test_contract_supervised_cnn(tiny: MIMII) -> None:
    from soundanomaly.detectors import SpectrogramCNNDetector
    from soundanomaly.features import SpectrogramImages

    detector = SpectrogramCNNDetector(epochs=40, batch_size=8, learning_rate=3e-3).fit(tiny)
    assert detector.threshold_ == 0.5
    images = SpectrogramImages()
    normal = images.extract(tiny.filter(label="normal").paths, progress=False)
    abnormal = images.extract(tiny.filter(label="abnormal").paths, progress=False)
    check_contract(detector, normal, abnormal)


def check_contract(detector: BaseDetector, normal: ClipFeatures, abnormal: ClipFeatures) -> None:
    """What every detector owes its users, whatever it is."""
    assert isinstance(detector, Detector)
    scores = detector.score(abnormal)
    assert scores.shape == (len(abnormal),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(detector.decision_function(abnormal), scores)
    labels = detector.predict(abnormal)
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels, (scores > detector.threshold_).astype(np.int8))
    # higher = more anomalous: the detector must separate the synthetic faults
    all_scores = np.concatenate([detector.score(normal), scores])
    all_labels = np.r_[np.zeros(len(normal)), np.ones(len(abnormal))]
    assert roc_auc(all_labels, all_scores) >= 0.8


@pytest.mark.parametrize("name", PARAMS)
def test_fit_returns_self(name: str, tiny_features: dict[str, ClipFeatures]) -> None:
    detector = FACTORIES[name]()
    assert detector.fit(tiny_features["normal"]) is detector


@pytest.mark.parametrize("name", PARAMS)
def test_not_fitted(name: str, tiny_features: dict[str, ClipFeatures]) -> None:
    detector = FACTORIES[name]()
    for method in (detector.score, detector.predict, detector.decision_function):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(tiny_features["normal"])
    with pytest.raises(NotFittedError):
        detector.save("nowhere")


@pytest.mark.parametrize("name", PARAMS)
def test_inputs_paths_clipset_features_agree(name: str, fitted: dict[str, BaseDetector], tiny: MIMII) -> None:
    detector = fitted[name]
    clips = tiny.filter(ids=2)
    from_clips = detector.score(clips)
    np.testing.assert_allclose(detector.score(clips.paths), from_clips)
    np.testing.assert_allclose(detector.score([Path(p) for p in clips.paths]), from_clips)
    np.testing.assert_allclose(detector.score(LogMelFrames().extract(clips.paths, progress=False)), from_clips)
    detector.chunk_size = 3  # streaming in chunks gives the same scores
    try:
        np.testing.assert_allclose(detector.score(clips), from_clips)
    finally:
        detector.chunk_size = 64


@pytest.mark.parametrize("name", PARAMS)
def test_bad_inputs(name: str, fitted: dict[str, BaseDetector], tiny: MIMII) -> None:
    detector = fitted[name]
    with pytest.raises(ParameterError, match="trains on normal sound only"):
        FACTORIES[name]().fit(tiny)
    with pytest.raises(ParameterError, match="not a single path"):
        detector.score(tiny.paths[0])
    with pytest.raises(ParameterError, match="fitted on 320"):
        detector.score(ClipFeatures.from_arrays([np.zeros((3, 10), np.float32)]))
    with pytest.raises(ParameterError, match="data is empty"):
        detector.score([])


@pytest.mark.parametrize("name", PARAMS)
def test_save_load_round_trip(name: str, fitted: dict[str, BaseDetector], tiny: MIMII, tmp_path: Path) -> None:
    detector = fitted[name]
    target = detector.save(tmp_path / "model")
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["features"]["n_mels"] == 64
    assert manifest["detector"] == type(detector).__name__
    loaded = load(target)
    assert type(loaded) is type(detector)
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.score(tiny), detector.score(tiny))
    np.testing.assert_array_equal(type(detector).load(target).predict(tiny), detector.predict(tiny))


def test_save_is_atomic(fitted: dict[str, BaseDetector], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = fitted["gaussian"]
    target = detector.save(tmp_path / "model")
    before = (target / "manifest.json").read_text()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        detector.save(target)
    assert (target / "manifest.json").read_text() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no half-written leftovers


def test_load_errors(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    target = fitted["gaussian"].save(tmp_path / "model")
    with pytest.raises(ModelFormatError, match="trained on features"):
        GaussianDetector.load(target, features=LogMelFrames(n_mels=32))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["format_version"] = 99
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="newer than this soundanomaly supports"):
        load(target)
    with pytest.raises(ModelFormatError, match=r"no manifest\.json"):
        load(tmp_path)
    (target / "manifest.json").write_text("{")
    with pytest.raises(ModelFormatError, match="invalid JSON"):
        load(target)


@pytest.mark.tf
def test_load_wrong_class(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    target = fitted["gaussian"].save(tmp_path / "model")
    with pytest.raises(ModelFormatError, match="not a AutoencoderDetector"):
        AutoencoderDetector.load(target)


def test_calibrate_sets_threshold(fitted: dict[str, BaseDetector], tiny: MIMII) -> None:
    detector = GaussianDetector().fit(tiny.filter(label="normal", ids=0))
    result = detector.calibrate(tiny.filter(ids=2), calibrator=ThresholdCalibrator("min_errors"))
    assert detector.threshold_ == result.threshold
    fixed = GaussianDetector(threshold=1.5).fit(tiny.filter(label="normal", ids=0))
    assert fixed.threshold_ == 1.5
