"""Monitor.adapt: a user marks a stretch of audio as normal and the alarms on that sound stop (#22)."""

from __future__ import annotations

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets.shift import Condition, generate_shift_clip
from soundanomaly.detectors import ClipStatsDetector, GaussianDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import ClipFeatures
from soundanomaly.monitor import Monitor

SR = 16000


def _clips(condition: Condition, n: int, stream: int) -> list[np.ndarray]:
    return [generate_shift_clip(0, condition, duration=1.0, stream=stream, clip_index=i) for i in range(n)]


def test_monitor_adapt_stops_alarms_after_a_speed_change() -> None:
    detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.1), holdout=0.3)
    detector.fit(ClipFeatures.from_arrays([detector.features.transform(c, SR) for c in _clips(Condition(), 40, 0)]))
    faster = Condition(speed=1.15, load=1.4)
    monitor = Monitor(detector, window_seconds=1.0, hop_seconds=1.0)
    stream = np.concatenate(_clips(faster, 8, 1))
    before = monitor.score_stream([(stream, SR)])
    assert np.mean(before > monitor.threshold) >= 0.75  # the new operating point alarms
    old_threshold = monitor.threshold
    assert monitor.adapt(np.concatenate(_clips(faster, 10, 2)), SR, session="after speed change") == 10
    assert monitor.threshold >= old_threshold  # follows the detector's (it only rises)
    monitor.reset()
    after = monitor.score_stream([(stream, SR)])
    assert np.mean(after > monitor.threshold) <= 0.25
    assert "after speed change" in detector.session_thresholds_


def test_monitor_adapt_refusals() -> None:
    rng = np.random.default_rng(0)
    train = ClipFeatures.from_arrays([rng.normal(size=(20, 64)).astype("float32") for _ in range(5)])
    gaussian = Monitor(GaussianDetector(threshold=1.0).fit(train), window_seconds=1.0)
    with pytest.raises(ParameterError, match="cannot adapt"):
        gaussian.adapt(np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(ParameterError, match="at least 2 windows"):
        gaussian.adapt(np.zeros(SR, np.float32), SR)
    with pytest.raises(ParameterError, match="features' rate"):
        gaussian.adapt(np.zeros(3 * 8000, np.float32), 8000)


def test_a_given_threshold_stays() -> None:
    detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(
        ClipFeatures.from_arrays([detector_input for detector_input in _features(30)])
    )
    monitor = Monitor(detector, window_seconds=1.0, threshold=123.0)
    monitor.adapt(np.concatenate(_clips(Condition(gain_db=6.0), 4, 3)), SR)
    assert monitor.threshold == 123.0


def _features(n: int) -> list[np.ndarray]:
    extractor = ClipStatsDetector().features
    return [extractor.transform(c, SR) for c in _clips(Condition(), n, 4)]
