"""One contract, every detector: each goes through the same ``run(detector, train, test)``.

Every detector of :mod:`soundanomaly.registry` is enumerated (``registered.py``): adding a detector to the
registry puts it under contract (supervised ones get labelled training clips).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import registered
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets import MIMII, ClipSet, synthetic
from soundanomaly.detectors import BaseDetector, GaussianDetector, RekognitionDetector, load_model
from soundanomaly.evaluation import Evaluator, roc_auc
from soundanomaly.exceptions import CalibrationWarning, ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.registry import names
from soundanomaly.typing import Detector, FittedDetector


def all_names() -> list[str]:
    return names("detector")


class ProtocolOnlyDetector:
    """A user's detector written to the ``Detector`` protocol only (no soundanomaly base class)."""

    supervised = False

    def __init__(self) -> None:
        self.extractor = LogMelFrames()

    def _features(self, data: Any) -> ClipFeatures:
        if isinstance(data, ClipFeatures):
            return data
        paths = data.paths if isinstance(data, ClipSet) else [os.fspath(p) for p in data]
        return self.extractor.extract(paths, progress=False)

    def fit(self, data: Any, labels: npt.ArrayLike | None = None) -> ProtocolOnlyDetector:
        windows = self._features(data).windows
        self.centre_, self.spread_ = windows.mean(axis=0), windows.std(axis=0) + 1e-6
        self.threshold_ = float(np.max(self.score(data)))
        return self

    def score(self, data: Any) -> npt.NDArray[np.float64]:
        features = self._features(data)
        distance = (((features.windows - self.centre_) / self.spread_) ** 2).mean(axis=1)
        return features.mean_per_clip(distance)

    def decision_function(self, data: Any) -> npt.NDArray[np.float64]:
        return self.score(data)

    def predict(self, data: Any) -> npt.NDArray[np.int8]:
        scores = self.score(data)
        return ((scores > self.threshold_) | ~np.isfinite(scores)).astype(np.int8)

    def calibrate(
        self, data: Any, *, calibrator: ThresholdCalibrator | None = None, labels: npt.ArrayLike | None = None
    ) -> Calibration:
        result = (calibrator or ThresholdCalibrator()).fit(self.score(data), labels)
        self.threshold_ = result.threshold
        return result


#: Detectors under contract besides the registered ones (every registered detector is, see ``registered.py``).
DETECTORS = [
    pytest.param(lambda: ProtocolOnlyDetector(), id="protocol-only"),
]


def split(clips: ClipSet, *, supervised: bool) -> tuple[ClipSet, ClipSet]:
    """Train: 6 normal clips per machine (plus 2 abnormal if supervised); test: every other clip."""
    train_idx = []
    for machine_id in sorted({r.machine_id for r in clips}):
        normal = [i for i, r in enumerate(clips) if r.machine_id == machine_id and r.label == "normal"]
        abnormal = [i for i, r in enumerate(clips) if r.machine_id == machine_id and r.label == "abnormal"]
        train_idx += normal[:6] + (abnormal[:2] if supervised else [])
    test_idx = [i for i in range(len(clips)) if i not in set(train_idx)]
    return clips.take(train_idx), clips.take(test_idx)


def run(
    detector: Any,
    train: ClipSet,
    test: ClipSet,
    *,
    tmp_path: Path | None = None,
    serving: Callable[[Any], contextlib.AbstractContextManager[Any]] = lambda d: contextlib.nullcontext(),
    min_auc: float = 0.8,
) -> None:
    """What every detector owes its users, whatever it is (``serving``: e.g. a cloud model's ``running()``)."""
    assert isinstance(detector, Detector)
    assert isinstance(detector.supervised, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # a handful of held-out clips cannot resolve 1 %
        assert detector.fit(train) is detector
    with serving(detector):
        _fitted_contract(detector, train, test, tmp_path, min_auc)


def _fitted_contract(detector: Any, train: ClipSet, test: ClipSet, tmp_path: Path | None, min_auc: float) -> None:
    assert isinstance(detector, FittedDetector)
    assert isinstance(detector.threshold_, float) and np.isfinite(detector.threshold_)

    scores = detector.score(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64 and np.isfinite(scores).all()
    np.testing.assert_array_equal(detector.decision_function(test), scores)
    labels = detector.predict(test)
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels, (scores > detector.threshold_).astype(np.int8))
    # the same clips as paths, Path objects or features score the same
    np.testing.assert_allclose(detector.score(test.paths), scores, rtol=1e-6)
    np.testing.assert_allclose(detector.score([Path(p) for p in test.paths]), scores, rtol=1e-6)
    extractor = getattr(detector, "features", None) or getattr(detector, "extractor", None)
    if extractor is not None:
        np.testing.assert_allclose(detector.score(extractor.extract(test.paths, progress=False)), scores, rtol=1e-6)
    # higher = more anomalous: the synthetic faults are found
    assert roc_auc(test.labels, scores) >= min_auc

    report = Evaluator().evaluate(test.labels, scores, threshold=detector.threshold_, groups=test.eval_groups)
    assert 0.0 <= report.overall.recall <= 1.0

    normal = test.filter(label="normal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        calibration = detector.calibrate(normal, calibrator=ThresholdCalibrator(target_fpr=0.25))
    assert detector.threshold_ == calibration.threshold
    assert np.mean(detector.score(normal) > detector.threshold_) <= 0.25

    if isinstance(detector, BaseDetector):  # what the base class adds for every subclass
        with pytest.raises(ParameterError, match=r"ClipFeatures\.from_arrays"):
            detector.score([np.zeros((3, 4), np.float32)])
        assert isinstance(detector.training_clips_, list) and len(detector.training_clips_) == len(train)
        if tmp_path is not None:
            loaded = load_model(detector.save(tmp_path / "model"))
            np.testing.assert_array_equal(loaded.score(test), detector.score(test))
            assert loaded.threshold_ == detector.threshold_


@pytest.mark.parametrize("factory", DETECTORS)
def test_contract(factory: Callable[[], Any], tiny: ClipSet, tmp_path: Path) -> None:
    detector = factory()
    train, test = split(tiny, supervised=bool(detector.supervised))
    run(detector, train, test, tmp_path=tmp_path)


@pytest.mark.parametrize("name", registered.params(skip_cloud=True))
def test_contract_of_every_registered_detector(name: str, tiny: ClipSet, tmp_path: Path) -> None:
    detector = registered.build(name)
    train, test = split(tiny, supervised=bool(detector.supervised))
    run(detector, train, test, tmp_path=tmp_path, min_auc=registered.min_auc(name))


def test_the_registry_lists_every_detector_class() -> None:
    """A BaseDetector subclass shipped in soundanomaly.detectors but missing from the registry would skip the tests."""
    import importlib
    import pkgutil

    import soundanomaly.detectors as package

    shipped = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"soundanomaly.detectors.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseDetector) and value.__module__ == module.__name__:
                shipped.add(value.__name__)
    shipped -= {"BaseDetector", "MetaDetector"}  # the bases
    assert shipped <= set(all_names()), sorted(shipped - set(all_names()))
    assert set(registered.SETUP) <= set(all_names())


@pytest.mark.parametrize("name", names("detector"))
def test_no_registered_detector_lists_run_options_in_its_constructor(name: str) -> None:
    """#21: run options are fit/score keywords; a constructor holds the detector's own parameters (+ ``**base``)."""
    import inspect

    from soundanomaly.detectors.options import RUN_OPTION_NAMES
    from soundanomaly.registry import get

    listed = set(inspect.signature(get("detector", name)).parameters) & set(RUN_OPTION_NAMES)
    assert listed == set(), f"{name} lists run options {sorted(listed)} in its constructor"


@pytest.mark.aws
@pytest.mark.tf
def test_contract_rekognition_on_the_local_stand_in(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    import boto3

    from soundanomaly.testing import FakeRekognition, aws_environment

    # 2.2 s clips: 64 x 69 pixel images, inside Custom Labels' limits (2.0 s clips make 64 x 63)
    clips = MIMII(synthetic.write_dataset(tmp_path / "clips", ids=[0, 2], n_normal=8, n_abnormal=4, duration=2.2))
    train, test = split(clips, supervised=True)
    with aws_environment(), FakeRekognition(epochs=40, transition_seconds=0.02) as fake:
        boto3.client("s3").create_bucket(Bucket="contract")
        detector = RekognitionDetector(
            project_name="contract", bucket="contract", endpoint_url=fake.url, poll_seconds=0.02, progress=False
        )
        try:
            # the stand-in's model is a tiny local CNN, not Rekognition: its quality is not under test here
            # (measured 0.75-1.0 on these 8 clips, by CPU); "higher = more anomalous" still has to hold
            run(detector, train, test, serving=lambda d: d.running(), min_auc=0.6)
        finally:
            detector.cleanup()
        assert not [s for s in fake.version_statuses().values() if s in ("RUNNING", "STARTING")]


def test_unsupervised_detectors_take_a_labelled_clipset(tiny: ClipSet) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        with pytest.warns(UserWarning, match="normal sound only"):
            detector = GaussianDetector().fit(tiny)
    assert len(detector.training_clips_) == len(tiny.filter(label="normal"))


def test_protocol_only_feature_extractor_works_in_a_detector_and_loads(tiny: ClipSet, tmp_path: Path) -> None:
    from soundanomaly.detectors import register_extractor

    class BandEnergy:
        """Written to the FeatureExtractor protocol only."""

        def __init__(self, *, bands: int = 8) -> None:
            self.bands = bands

        def transform(self, signal: npt.NDArray[np.float32], sr: int) -> npt.NDArray[np.float32]:
            frames = signal[: len(signal) // 1024 * 1024].reshape(-1, 1024)
            spectrum = np.abs(np.fft.rfft(frames, axis=1))[:, 1:]
            bands = np.array_split(spectrum, self.bands, axis=1)
            return np.log1p(np.stack([b.mean(axis=1) for b in bands], axis=1)).astype(np.float32)

        def params(self) -> dict[str, Any]:
            return {"name": "BandEnergy", "bands": self.bands}

    train, test = split(tiny, supervised=False)
    detector = GaussianDetector(features=BandEnergy(bands=6), threshold=3.0).fit(train)
    scores = detector.score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    register_extractor(BandEnergy)
    loaded = load_model(detector.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.score(test), scores)
