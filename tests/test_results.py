"""Structured per-clip results (#21): ClipScore records, the one predict rule, fit(validation=)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors import GaussianDetector, PerGroup
from soundanomaly.exceptions import InvalidScoreWarning, ParameterError
from soundanomaly.features import ClipFeatures
from soundanomaly.results import ClipScore, clip_scores, label_scores, split_status


def _write(path: Path, seed: int, sr: int = 16000, seconds: float = 0.5) -> str:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.normal(size=int(sr * seconds))).astype(np.float32), sr)
    return str(path)


def test_the_predict_rule_flags_scores_above_the_threshold_and_every_non_finite_one() -> None:
    labels = label_scores([0.0, 1.0, 1.0001, np.nan, np.inf, -np.inf], 1.0)
    assert labels.dtype == np.int8 and labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert split_status("skipped: missing") == ("skipped", "missing")
    assert split_status("invalid: non-finite score") == ("invalid", "non-finite score")


def test_score_records_carry_status_group_and_the_source_sample_rate(tmp_path: Path) -> None:
    root = tmp_path / "6_dB_fan" / "fan" / "id_00" / "normal"
    train = [_write(root / f"{i:08d}.wav", i) for i in range(4)]
    high = _write(root / "00000010.wav", 10, sr=48000)
    missing = str(root / "00000011.wav")
    detector = GaussianDetector(threshold=ThresholdCalibrator(target_fpr=0.5), holdout=0.0)
    detector.set_run_options(on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector.fit(train)
    with pytest.warns(InvalidScoreWarning):
        rows = detector.score_records([train[0], high, missing])
    assert [r.path for r in rows] == [train[0], high, missing]
    assert [r.status for r in rows] == ["ok", "ok", "skipped"]
    assert [r.source_sr for r in rows] == [16000, 48000, None]
    assert all(r.group == "fan/id_00" for r in rows)
    assert rows[2].reason and math.isnan(rows[2].score) and rows[2].label == 1 and not rows[2].ok
    for row in rows[:2]:
        assert row.ok and row.reason == "" and row.label == int(row.score > detector.threshold_)
    assert isinstance(rows[0], ClipScore) and set(rows[0].to_dict()) == {
        "path",
        "group",
        "score",
        "label",
        "status",
        "reason",
        "source_sr",
    }


def test_records_of_features_and_of_a_per_group_model() -> None:
    rng = np.random.default_rng(0)
    features = ClipFeatures.from_arrays([rng.normal(i % 2 * 3, 1, size=(6, 3)).astype("f4") for i in range(20)])
    model = PerGroup(GaussianDetector(threshold=4.0)).fit(features, groups=["a/id_00", "a/id_01"] * 10)
    rows = model.score_records(features, groups=["a/id_00", "a/id_01"] * 10)
    assert [r.path for r in rows[:2]] == ["#0", "#1"] and [r.group for r in rows[:2]] == ["a/id_00", "a/id_01"]
    assert [r.label for r in rows] == model.predict(features, groups=["a/id_00", "a/id_01"] * 10).tolist()
    assert all(r.source_sr is None for r in rows)
    rows = clip_scores(["x.wav"], [np.inf], [1], ["ok"])
    assert rows[0].status == "invalid"  # a non-finite score is never "ok"


def test_fit_with_validation_equals_fit_then_calibrate() -> None:
    rng = np.random.default_rng(1)
    train = ClipFeatures.from_arrays([rng.normal(size=(8, 4)).astype("f4") for _ in range(30)])
    validation = ClipFeatures.from_arrays([rng.normal(size=(8, 4)).astype("f4") for _ in range(30)])
    rule = ThresholdCalibrator(target_fpr=0.1)
    direct = GaussianDetector(threshold=rule).fit(train, validation=validation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two_step = GaussianDetector(threshold=rule, holdout=0.0).fit(train)
    two_step.calibrate(validation, calibrator=rule)
    assert direct.threshold_ == two_step.threshold_
    assert direct.calibration_ is not None and direct.calibration_.source == "validation"
    assert len(direct.holdout_scores_) == 30 and len(direct.train_scores_) == 30  # nothing held out of train
    with pytest.raises(ParameterError, match="validation"):
        GaussianDetector(threshold=3.0).fit(train, validation=validation)
