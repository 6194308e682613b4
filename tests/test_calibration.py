from __future__ import annotations

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator, sweep
from soundanomaly.exceptions import ParameterError

SCORES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
LABELS = [0, 0, 0, 1, 0, 1, 1, 1]


def test_sweep_counts_by_hand() -> None:
    sw = sweep(SCORES, LABELS)
    # candidates: below min, 7 midpoints, the max
    assert len(sw.thresholds) == 9
    np.testing.assert_allclose(sw.thresholds[1:8], [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75])
    assert sw.false_positives.tolist() == [4, 3, 2, 1, 1, 0, 0, 0, 0]
    assert sw.false_negatives.tolist() == [0, 0, 0, 0, 1, 1, 2, 3, 4]


def test_min_errors_by_hand() -> None:
    # errors per threshold: 4,3,2,1,2,1,2,3,4 -> first minimum at 0.35
    cal = ThresholdCalibrator("min_errors").fit(SCORES, LABELS)
    assert cal.threshold == pytest.approx(0.35)
    assert cal.strategy == "min_errors"


def test_max_f1_by_hand() -> None:
    # at 0.35: tp=4 fp=1 -> P=0.8 R=1 F1=0.889; at 0.55: tp=3 fp=0 -> F1=0.857
    assert ThresholdCalibrator("max_f1").fit(SCORES, LABELS).threshold == pytest.approx(0.35)


def test_target_recall_by_hand() -> None:
    # recall 0.75 first fails above 0.55 (tp=3 of 4 at 0.55, tp=2 at 0.65)
    assert ThresholdCalibrator("target_recall", target_recall=0.75).fit(SCORES, LABELS).threshold == pytest.approx(0.55)
    assert ThresholdCalibrator("target_recall", target_recall=1.0).fit(SCORES, LABELS).threshold == pytest.approx(0.35)


def test_target_fpr_from_normal_scores_only() -> None:
    normal = np.arange(1, 101, dtype=float)  # 100 normal clips
    # 1% false alarms allowed: exactly one score (100) above the threshold
    cal = ThresholdCalibrator("target_fpr", target_fpr=0.01).fit(normal)
    assert cal.threshold == pytest.approx(99.5)
    assert int(np.sum(normal > cal.threshold)) == 1
    assert ThresholdCalibrator("target_fpr", target_fpr=0.05).fit(normal).threshold == pytest.approx(95.5)
    assert ThresholdCalibrator("target_fpr", target_fpr=0.0).fit(normal).threshold == 100.0


def test_target_fpr_ignores_anomalies_when_labelled() -> None:
    cal = ThresholdCalibrator("target_fpr", target_fpr=0.25).fit(SCORES, LABELS)
    # normals 0.1 0.2 0.3 0.5: one of four may exceed -> threshold between 0.3 and 0.4 (0.35)
    assert cal.threshold == pytest.approx(0.35)


def test_ties_are_not_split() -> None:
    cal = ThresholdCalibrator("target_fpr", target_fpr=0.5).fit([1.0, 1.0, 1.0, 1.0])
    assert cal.threshold == 1.0  # cannot flag half of identical scores


@pytest.mark.parametrize("strategy", ["min_errors", "max_f1", "target_recall"])
def test_supervised_strategies_need_both_labels(strategy: str) -> None:
    with pytest.raises(ParameterError, match="needs labels"):
        ThresholdCalibrator(strategy).fit(SCORES)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="needs labels"):
        ThresholdCalibrator(strategy).fit(SCORES, [0] * 8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"strategy": "best"}, "strategy"),
        ({"target_fpr": 1.0}, "target_fpr"),
        ({"target_recall": 0.0}, "target_recall"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        ThresholdCalibrator(**kwargs)  # type: ignore[arg-type]


def test_bad_scores() -> None:
    with pytest.raises(ParameterError, match="NaN"):
        ThresholdCalibrator().fit([0.1, float("nan")])
    with pytest.raises(ParameterError, match="non-empty"):
        ThresholdCalibrator().fit([])
    with pytest.raises(ParameterError, match="labels"):
        ThresholdCalibrator().fit([0.1, 0.2], [0, 2])
