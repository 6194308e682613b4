"""Per-clip scoring results and the one predict rule.

:class:`ClipScore` is what scoring a clip produced: its score, its label,
whether it could be scored at all (``status``/``reason``), and the sample
rate of the file as recorded. :func:`label_scores` is the only place the
predict rule is written: **1 = anomaly** when ``score > threshold`` *or* the
score is not finite (an unreadable or invalid clip is never "normal").
Every caller (detectors, CLI, demo, monitor, exports) labels through it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ClipScore", "Status", "label_scores"]

Status = Literal["ok", "skipped", "invalid"]


def label_scores(scores: npt.ArrayLike, threshold: float) -> npt.NDArray[np.int8]:
    """Label scores: **1 = anomaly** when ``score > threshold`` or the score is NaN/infinite, else 0.

    Parameters
    ----------
    scores : array-like of float [shape=(n_clips,)]
    threshold : float

    Returns
    -------
    np.ndarray of int8 [shape=(n_clips,)]

    Examples
    --------
    >>> label_scores([0.5, 2.0, float("nan")], 1.0).tolist()
    [0, 1, 1]
    """
    values = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ((values > threshold) | ~np.isfinite(values)).astype(np.int8)


@dataclass(frozen=True)
class ClipScore:
    """What scoring one clip produced (one row of a score table).

    Attributes
    ----------
    path : str
        The clip (``"#i"`` for features given without paths).
    group : str or None
        Its group key (``"fan/id_00"``, ``"fan/section_00"``), None when unknown.
    score : float
        Anomaly score, **higher = more anomalous**; NaN when the clip has no valid score.
    label : int
        1 = anomaly, 0 = normal, by :func:`label_scores` (NaN scores give 1).
    status : {"ok", "skipped", "invalid"}
        ``"skipped"``: the clip could not be read (``on_error="skip"``);
        ``"invalid"``: it was read but its score is NaN/infinite.
    reason : str
        Why the clip is not ``"ok"``; ``""`` when it is.
    source_sr : int or None
        The file's own sample rate in Hz before any resampling; None for
        features given directly or a clip that could not be read.

    Examples
    --------
    >>> row = ClipScore("a.wav", "fan/id_00", 1.5, 1, "ok", "", 16000)
    >>> row.ok, row.to_dict()["label"]
    (True, 1)
    """

    path: str
    group: str | None
    score: float
    label: int
    status: Status
    reason: str
    source_sr: int | None

    @property
    def ok(self) -> bool:
        """True when the clip has a valid score."""
        return self.status == "ok" and math.isfinite(self.score)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (the columns of a score table)."""
        return asdict(self)
