from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from soundanomaly.evaluation import Evaluator, UndefinedMetricWarning, partial_auc, roc_auc, roc_curve
from soundanomaly.exceptions import ParameterError


def _data(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    scores = rng.normal(labels * 1.2, 1.0)
    scores[::7] = np.round(scores[::7], 1)  # some ties
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(seed: int) -> None:
    labels, scores = _data(seed)
    threshold = 0.6
    report = Evaluator().evaluate(labels, scores, threshold=threshold)
    m = report.overall
    predicted = (scores > threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    assert (m.tn, m.fp, m.fn, m.tp) == (tn, fp, fn, tp)
    assert m.precision == pytest.approx(skm.precision_score(labels, predicted))
    assert m.recall == pytest.approx(skm.recall_score(labels, predicted))
    assert m.f1 == pytest.approx(skm.f1_score(labels, predicted))
    assert m.accuracy == pytest.approx(skm.accuracy_score(labels, predicted))
    assert m.roc_auc == pytest.approx(skm.roc_auc_score(labels, scores))


@pytest.mark.parametrize("seed", [0, 1])
def test_pauc_matches_scikit_learn_after_undoing_mcclish(seed: int) -> None:
    labels, scores = _data(seed)
    max_fpr = 0.1
    standardised = skm.roc_auc_score(labels, scores, max_fpr=max_fpr)
    # sklearn: 0.5 * (1 + (A - min_area) / (max_area - min_area)), A = raw partial area
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    raw_area = (2 * standardised - 1) * (max_area - min_area) + min_area
    assert partial_auc(labels, scores, max_fpr=max_fpr) == pytest.approx(raw_area / max_fpr)


def test_roc_curve_matches_scikit_learn() -> None:
    labels, scores = _data(3)
    fpr, tpr, _ = roc_curve(labels, scores)
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_perfect_and_random_extremes() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert partial_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    with pytest.warns(UndefinedMetricWarning, match="only anomalous"):
        assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_normal_as_positive_and_groups() -> None:
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.9, 0.8, 0.3, 0.7]
    groups = ["id_00", "id_00", "id_02", "id_02", "id_00", "id_02"]
    report = Evaluator(normal_as_positive=True).evaluate(labels, scores, threshold=0.5, groups=groups)
    predicted_normal = [1, 1, 0, 0, 1, 0]
    truth_normal = [1, 1, 1, 0, 0, 0]
    assert report.normal_positive == pytest.approx(
        {
            "precision": skm.precision_score(truth_normal, predicted_normal),
            "recall": skm.recall_score(truth_normal, predicted_normal),
            "f1": skm.f1_score(truth_normal, predicted_normal),
        }
    )
    assert set(report.groups) == {"id_00", "id_02"}
    assert report.groups["id_00"].n_clips == 3
    assert report.groups["id_00"].fn == 1 and report.groups["id_02"].fp == 1


def test_outputs() -> None:
    with pytest.warns(UndefinedMetricWarning, match="only normal"):
        report = Evaluator().evaluate([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.15, groups=["a", "a", "b"])
    data = json.loads(report.to_json())
    assert data["positive_class"] == "anomaly"
    assert data["overall"]["roc_auc"] is None  # NaN: one class only
    assert data["overall"]["fp"] == 2
    table = report.to_markdown()
    assert table.splitlines()[0].startswith("| set | clips | anomalies | TP | FP")
    assert "| a | 2 | 0 |" in table
    assert "n/a" in table


def test_bad_input() -> None:
    with pytest.raises(ParameterError, match="got 2 labels for 1 clips"):
        Evaluator().evaluate([0, 1], [0.5], threshold=0.1)
    with pytest.raises(ParameterError, match="labels must be 0/1"):
        Evaluator().evaluate([0, 2], [0.5, 0.6], threshold=0.1)
    with pytest.raises(ParameterError, match="max_fpr"):
        Evaluator(max_fpr=0)


@pytest.mark.parametrize(
    ("labels", "scores", "threshold", "match"),
    [
        ([0, 256, 1], [0.1, 0.2, 0.3], 0.5, "labels must be 0/1"),  # once cast to int8: 0
        ([0, 1.5, 1], [0.1, 0.2, 0.3], 0.5, "labels must be 0/1"),
        (["normal", "bad", "abnormal"], [0.1, 0.2, 0.3], 0.5, "labels must be 0/1"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], 0.5, "NaN or infinite"),
        ([0, 1, 1], [0.1, 0.2, float("inf")], 0.5, "NaN or infinite"),
        ([0, 1, 1], [0.1, 0.2, 0.3], "high", "threshold must be a finite number"),
        ([0, 1, 1], [0.1, 0.2, 0.3], float("nan"), "threshold must be a finite number"),
        ([0, 1, 1], [0.1, 0.2, 0.3], None, "threshold must be a finite number"),
        ([0, 1, 1], ["a", "b", "c"], 0.5, "scores must be"),
    ],
)
def test_evaluate_refuses_wrong_types(
    labels: list[object], scores: list[object], threshold: object, match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        Evaluator().evaluate(labels, scores, threshold=threshold)  # type: ignore[arg-type]


def test_named_labels_are_accepted() -> None:
    report = Evaluator().evaluate(["normal", "abnormal"], [0.1, 0.9], threshold=0.5)
    assert report.overall.tp == 1 and report.overall.tn == 1


@pytest.mark.parametrize("metric", [roc_auc, partial_auc])
def test_auc_refuses_nan_scores(metric: object) -> None:
    """Before: NaN scores gave 0.5 / 0.05 without a word."""
    with pytest.raises(ParameterError, match="NaN or infinite"):
        metric([0, 0, 1, 1], [0.1, float("nan"), 0.3, 0.4])  # type: ignore[operator]
    with pytest.raises(ParameterError, match="labels must be 0/1"):
        metric([0, 0, 1, 7], [0.1, 0.2, 0.3, 0.4])  # type: ignore[operator]


def test_one_class_auc_warns() -> None:
    with pytest.warns(UndefinedMetricWarning, match="only normal"):
        assert np.isnan(partial_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    with pytest.warns(UndefinedMetricWarning):
        report = Evaluator().evaluate([1, 1], [0.1, 0.9], threshold=0.5)
    assert np.isnan(report.overall.roc_auc) and report.overall.tp == 1


def _reference_roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hand-written ROC of c91f061 (before scikit-learn computed it): the results must not change."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) > 1 else np.array([], dtype=np.int64)
    ends = np.concatenate([distinct, [len(s) - 1]])
    tps = np.cumsum(y)[ends]
    fps = (ends + 1) - tps
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    tpr = np.concatenate([[0.0], tps / n_pos]) if n_pos else np.full(len(ends) + 1, np.nan)
    fpr = np.concatenate([[0.0], fps / n_neg]) if n_neg else np.full(len(ends) + 1, np.nan)
    return fpr, tpr, np.concatenate([[np.inf], s[ends]])


@pytest.mark.parametrize("seed", range(6))
def test_roc_through_scikit_learn_equals_the_former_hand_written_one(seed: int) -> None:
    """ROC, AUC and pAUC are identical to c91f061's own implementation, ties and one-class sets included."""
    labels, scores = _data(seed, n=[200, 37, 5, 2, 120, 60][seed])
    if seed == 4:
        labels[:] = 0  # only normal clips: the TPR is undefined (NaN), the FPR is not
    if seed == 5:
        labels[:] = 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = roc_curve(labels, scores)
    want = _reference_roc(labels.astype(np.int8), scores.astype(np.float64))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit, NaN where a class is absent
    if 0 < labels.sum() < len(labels):
        fpr, tpr, _ = want
        assert roc_auc(labels, scores) == float(np.trapezoid(tpr, fpr))
