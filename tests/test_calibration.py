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


def test_too_few_normal_clips_for_the_target_warns() -> None:
    from soundanomaly.exceptions import CalibrationWarning

    with pytest.warns(CalibrationWarning, match="3 normal clip.*needs at least 99"):
        cal = ThresholdCalibrator(target_fpr=0.01).fit([0.1, 0.2, 0.3])
    assert cal.threshold == 0.3 and cal.n_normal == 3
    ThresholdCalibrator(target_fpr=0.25).fit([0.1, 0.2, 0.3])  # 3 clips resolve 25 %: no warning


@pytest.mark.parametrize(
    "labels", [[0, 256, 1], [0, 1.5, 1], [0, 257, 0], [-1, 0, 1], ["normal", "bad", "abnormal"], [[0, 1, 1]]]
)
def test_labels_are_never_cast_silently(labels: object) -> None:
    with pytest.raises(ParameterError, match="labels"):
        ThresholdCalibrator("min_errors").fit([0.1, 0.2, 0.3], labels)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="labels"):
        sweep([0.1, 0.2, 0.3], labels)  # type: ignore[arg-type]


def test_label_names_and_bools_are_accepted() -> None:
    by_name = ThresholdCalibrator("min_errors").fit([0.1, 0.2, 0.9], ["normal", "normal", "abnormal"])
    by_bool = ThresholdCalibrator("min_errors").fit([0.1, 0.2, 0.9], [False, False, True])
    assert by_name.threshold == by_bool.threshold == pytest.approx(0.55)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"target_fpr": "low"}, "target_fpr"),
        ({"target_fpr": float("nan")}, "target_fpr"),
        ({"strategy": 3}, "strategy"),
    ],
)
def test_parameter_types(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        ThresholdCalibrator(**kwargs)  # type: ignore[arg-type]


def test_scores_of_the_wrong_type() -> None:
    with pytest.raises(ParameterError, match="scores"):
        ThresholdCalibrator().fit(["high", "low"])  # type: ignore[list-item]


def test_calibrator_is_a_clonable_parameter() -> None:
    from sklearn.base import clone

    calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.05)
    copy = clone(calibrator)
    assert copy is not calibrator and copy == calibrator and copy.get_params()["target_fpr"] == 0.05
    assert calibrator.set_params(target_fpr=0.1).target_fpr == 0.1
    with pytest.raises(ParameterError, match="target_fpr"):
        calibrator.set_params(target_fpr=2.0)
