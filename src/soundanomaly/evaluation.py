"""Metrics with **anomaly as the positive class**, overall and per group.

``precision`` is the share of alarms that are real faults; ``recall`` the
share of faults that raise an alarm. The reference blog reported accuracy and
metrics with *normal* as the positive class (its 92.1%); set
``normal_as_positive=True`` to get those too, side by side.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import check_finite_float, check_labels, check_scores
from soundanomaly.exceptions import ParameterError, SoundAnomalyWarning
from soundanomaly.results import label_scores

if TYPE_CHECKING:  # pragma: no cover - the DCASE score lives in its own module
    from soundanomaly.datasets.mimii import ClipSet
    from soundanomaly.dcase_score import DCASEScore

__all__ = ["EvaluationReport", "Evaluator", "Metrics", "UndefinedMetricWarning", "partial_auc", "roc_auc", "roc_curve"]

_F64 = npt.NDArray[np.float64]


class UndefinedMetricWarning(SoundAnomalyWarning):
    """A metric is undefined for the data given (an AUC with only one class present); it is reported as NaN.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     roc_auc([0, 0], [0.1, 0.2])
    nan
    >>> caught[0].category.__name__
    'UndefinedMetricWarning'

    """


def _checked(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[npt.NDArray[np.int8], _F64]:
    s = check_scores(scores)
    return check_labels(labels, n=len(s)), s


def _one_class_warning(y: npt.NDArray[np.int8], what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        present = "anomalous (1)" if n_pos else "normal (0)"
        warnings.warn(
            f"{what} is undefined with only {present} clips; reported as NaN",
            UndefinedMetricWarning,
            stacklevel=3,
        )


def roc_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[_F64, _F64, _F64]:
    """ROC curve with anomaly (label 1) as the positive class.

    Returns
    -------
    fpr, tpr, thresholds : np.ndarray
        ``fpr[i]``/``tpr[i]`` are the rates when flagging ``score >= thresholds[i]``;
        the curve starts at (0, 0) with threshold ``+inf``. A rate whose class
        is absent is NaN.

    Raises
    ------
    ParameterError
        Labels other than 0/1 (or "normal"/"abnormal"), NaN/inf scores, or
        lengths that differ.

    Examples
    --------
    >>> fpr, tpr, thresholds = roc_curve([0, 1], [0.2, 0.9])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])

    """
    y, s = _checked(labels, scores)
    return _roc(y, s)


def _roc(y: npt.NDArray[np.int8], s: _F64) -> tuple[_F64, _F64, _F64]:
    """:func:`sklearn.metrics.roc_curve` at every distinct score; the rate of an absent class is NaN.

    Callers have checked labels and scores (0/1, finite) and warned about a
    missing class (:class:`UndefinedMetricWarning`); scikit-learn's own warning
    for it is therefore silenced here.
    """
    from sklearn.exceptions import UndefinedMetricWarning as SklearnUndefined
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SklearnUndefined)
        fpr, tpr, thresholds = sklearn_roc_curve(y, s, drop_intermediate=False)
    as_float = np.asarray
    return as_float(fpr, dtype=np.float64), as_float(tpr, dtype=np.float64), as_float(thresholds, dtype=np.float64)


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve; NaN and an :class:`UndefinedMetricWarning` unless both classes are present.

    NaN or infinite scores raise :class:`ParameterError` (never a silent 0.5).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75

    """
    y, s = _checked(labels, scores)
    _one_class_warning(y, "ROC AUC")
    return _auc(y, s)


def _auc(y: npt.NDArray[np.int8], s: _F64) -> float:
    fpr, tpr, _ = _roc(y, s)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.trapezoid(tpr, fpr))


def partial_auc(labels: npt.ArrayLike, scores: npt.ArrayLike, *, max_fpr: float = 0.1) -> float:
    """Normalised partial AUC over false-positive rates ``[0, max_fpr]`` (DCASE's pAUC).

    The area under the ROC curve up to ``max_fpr``, divided by ``max_fpr``, so
    1.0 is perfect and a random detector gets about ``max_fpr / 2``. (This is
    not scikit-learn's ``roc_auc_score(max_fpr=...)``, which applies the
    McClish correction that maps random to 0.5.)

    Examples
    --------
    >>> partial_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), partial_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    (1.0, 0.0)

    """
    max_fpr = _check_max_fpr(max_fpr)
    y, s = _checked(labels, scores)
    _one_class_warning(y, "partial AUC")
    return _pauc(y, s, max_fpr)


def _check_max_fpr(max_fpr: object) -> float:
    value = check_finite_float(max_fpr, name="max_fpr")
    if not 0.0 < value <= 1.0:
        raise ParameterError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    return value


def _pauc(y: npt.NDArray[np.int8], s: _F64, max_fpr: float) -> float:
    fpr, tpr, _ = _roc(y, s)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x = np.concatenate([fpr[:stop], [max_fpr]])
    y_end = np.interp(max_fpr, fpr, tpr) if stop < len(fpr) else tpr[-1]
    y = np.concatenate([tpr[:stop], [y_end]])
    return float(np.trapezoid(y, x) / max_fpr)


@dataclass(frozen=True)
class Metrics:
    """Threshold metrics of one set of clips, anomaly = positive unless said otherwise.

    Rates with a zero denominator are 0.0 (as scikit-learn's ``zero_division=0``);
    AUCs are NaN when only one class is present.

    Examples
    --------
    >>> import numpy as np
    >>> m = Metrics.compute(np.array([0, 0, 1, 1], np.int8), np.array([0.1, 0.6, 0.7, 0.2]), 0.5, 0.1)
    >>> (m.tp, m.fp, m.tn, m.fn), m.precision, m.recall
    ((1, 1, 1, 1), 0.5, 0.5)

    """

    n_clips: int
    n_anomalies: int
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float
    recall: float
    specificity: float
    f1: float
    accuracy: float
    roc_auc: float
    pauc: float

    @classmethod
    def compute(cls, labels: npt.NDArray[np.int8], scores: _F64, threshold: float, max_fpr: float) -> Metrics:
        predicted = label_scores(scores, threshold).astype(bool)  # the one predict rule
        tp = int(np.sum(predicted & (labels == 1)))
        fp = int(np.sum(predicted & (labels == 0)))
        fn = int(np.sum(~predicted & (labels == 1)))
        tn = int(np.sum(~predicted & (labels == 0)))
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        return cls(
            n_clips=len(labels),
            n_anomalies=int(labels.sum()),
            tp=tp,
            fp=fp,
            tn=tn,
            fn=fn,
            precision=precision,
            recall=recall,
            specificity=_ratio(tn, tn + fp),
            f1=_ratio(2 * precision * recall, precision + recall),
            accuracy=_ratio(tp + tn, len(labels)),
            roc_auc=_auc(labels, scores),
            pauc=_pauc(labels, scores, max_fpr),
        )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


@dataclass(frozen=True)
class EvaluationReport:
    """Everything :meth:`Evaluator.evaluate` measured.

    Attributes
    ----------
    overall : Metrics
        Anomaly as the positive class.
    threshold : float
    max_fpr : float
        Range of the pAUC.
    groups : dict of str to Metrics
        The same metrics per group (machine id, SNR), when groups were given.
    normal_positive : dict or None
        Precision, recall and F1 with *normal* as the positive class, when asked.

    Examples
    --------
    >>> report = Evaluator().evaluate([0, 1, 1], [0.2, 0.7, 0.4], threshold=0.5, groups=["a", "a", "b"])
    >>> report.overall.tp, sorted(report.groups), report.to_dict()["positive_class"]
    (1, ['a', 'b'], 'anomaly')

    """

    overall: Metrics
    threshold: float
    max_fpr: float
    groups: dict[str, Metrics] = field(default_factory=dict)
    normal_positive: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable; NaN becomes null in :meth:`to_json`)."""
        return {
            "positive_class": "anomaly",
            "threshold": self.threshold,
            "max_fpr": self.max_fpr,
            "overall": asdict(self.overall),
            "groups": {name: asdict(m) for name, m in self.groups.items()},
            "normal_positive": self.normal_positive,
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text; NaN values are written as ``null``."""
        return json.dumps(_nan_to_none(self.to_dict()), **{"indent": 2, **kwargs})

    def to_markdown(self) -> str:
        """A Markdown table: one row overall, one per group."""
        head = "| set | clips | anomalies | TP | FP | TN | FN | precision | recall | F1 | accuracy | AUC | pAUC |"
        rule = "|---|" + "---:|" * 12
        rows = [head, rule, _row("all", self.overall)]
        rows += [_row(name, m) for name, m in sorted(self.groups.items())]
        text = "\n".join(rows)
        text += f"\n\nAnomaly is the positive class; threshold {self.threshold:.6g}; pAUC over FPR ≤ {self.max_fpr:g}."
        if self.normal_positive:
            np_ = self.normal_positive
            text += (
                f"\nWith normal as the positive class (as the reference blog reported): precision "
                f"{np_['precision']:.3f}, recall {np_['recall']:.3f}, F1 {np_['f1']:.3f}."
            )
        return text


def _row(name: str, m: Metrics) -> str:
    from soundanomaly._printable import printable

    cells = [printable(name, markdown=True), m.n_clips, m.n_anomalies, m.tp, m.fp, m.tn, m.fn]
    rates = [m.precision, m.recall, m.f1, m.accuracy, m.roc_auc, m.pauc]
    return "| " + " | ".join([str(c) for c in cells] + [_fmt(r) for r in rates]) + " |"


def _fmt(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and np.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj


class Evaluator:
    """Compute metrics from labels, scores and a threshold.

    Parameters
    ----------
    max_fpr : float in (0, 1], default 0.1
        Upper false-positive rate of the pAUC (DCASE uses 0.1).
    normal_as_positive : bool, default False
        Also report precision/recall/F1 with normal as the positive class.

    Examples
    --------
    >>> report = Evaluator().evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.3)
    >>> report.overall.recall, report.overall.precision, report.overall.roc_auc
    (1.0, 0.6666666666666666, 0.75)
    """

    def __init__(self, *, max_fpr: float = 0.1, normal_as_positive: bool = False) -> None:
        self.max_fpr = _check_max_fpr(max_fpr)
        self.normal_as_positive = normal_as_positive

    def evaluate(
        self,
        labels: npt.ArrayLike,
        scores: npt.ArrayLike,
        *,
        threshold: float,
        groups: Sequence[str] | None = None,
    ) -> EvaluationReport:
        """Evaluate scores against labels (1 = anomaly).

        Parameters
        ----------
        labels : array-like [shape=(n_clips,)] of {0, 1}
        scores : array-like [shape=(n_clips,)]
            Higher = more anomalous.
        threshold : float
            ``score > threshold`` is flagged as an anomaly.
        groups : sequence of str, optional
            A group name per clip (e.g. :attr:`ClipSet.eval_groups`) for per-group metrics.

        Raises
        ------
        ParameterError
            Labels other than 0/1 or "normal"/"abnormal", NaN/inf scores, a
            threshold that is not a finite number, or lengths that differ.

        Warns
        -----
        UndefinedMetricWarning
            When only one class is present (AUC and pAUC are NaN).
        """
        s = check_scores(scores)
        y = check_labels(labels, n=len(s))
        threshold = check_finite_float(threshold, name="threshold")
        _one_class_warning(y, "AUC/pAUC")
        overall = Metrics.compute(y, s, threshold, self.max_fpr)
        per_group: dict[str, Metrics] = {}
        if groups is not None:
            if isinstance(groups, (str, bytes)):
                raise ParameterError("groups must be a sequence of group names (one per clip), not a single string")
            g = np.asarray([str(name) for name in groups])
            if g.shape != y.shape:
                raise ParameterError(f"got {len(g)} groups for {len(y)} clips")
            for name in sorted(set(g.tolist())):
                mask = g == name
                per_group[name] = Metrics.compute(y[mask], s[mask], threshold, self.max_fpr)
        normal_positive = None
        if self.normal_as_positive:
            tp, fp, fn = overall.tn, overall.fn, overall.fp
            p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
            normal_positive = {"precision": p, "recall": r, "f1": _ratio(2 * p * r, p + r)}
        return EvaluationReport(overall, float(threshold), self.max_fpr, per_group, normal_positive)

    def dcase_score(self, clips: ClipSet, scores: npt.ArrayLike, **kwargs: Any) -> DCASEScore:
        """The DCASE Task 2 official score (AUC per section and domain, pAUC per section, harmonic mean).

        Uses this evaluator's ``max_fpr``; other keyword arguments go to
        :func:`soundanomaly.dcase_score.dcase_score` (``labels``, ``domains``, ``pauc``, ``edition``).

        Examples
        --------
        >>> from soundanomaly.datasets import ClipRecord, ClipSet
        >>> clips = ClipSet([ClipRecord(f"{lab}{i}.wav", "fan", 0, None, lab, domain="source", layout="dcase")
        ...                  for lab in ("normal", "abnormal") for i in range(3)])
        >>> Evaluator().dcase_score(clips, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]).official
        1.0
        """
        from soundanomaly.dcase_score import dcase_score

        return dcase_score(clips, scores, max_fpr=self.max_fpr, **kwargs)
