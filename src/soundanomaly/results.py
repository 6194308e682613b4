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
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ClipScore", "Status", "clip_scores", "label_scores", "split_status"]

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


def split_status(text: str) -> tuple[Status, str]:
    """A detector's ``last_status_`` entry as ``(status, reason)``.

    Examples
    --------
    >>> split_status("ok"), split_status("skipped: file not found")
    (('ok', ''), ('skipped', 'file not found'))
    >>> split_status("invalid: non-finite score")
    ('invalid', 'non-finite score')
    """
    kind, _, reason = str(text).partition(": ")
    if kind == "ok" and not reason:
        return "ok", ""
    if kind == "skipped":
        return "skipped", reason or "unreadable"
    return "invalid", reason or kind


def clip_scores(
    data: Any,
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    status: Sequence[str] = (),
    source_rates: Sequence[int | None] = (),
    groups: Sequence[str] | npt.NDArray[np.str_] | None = None,
) -> list[ClipScore]:
    """One :class:`ClipScore` per clip of ``data`` (a ClipSet, paths, or ClipFeatures), aligned with it.

    ``status`` entries are a detector's ``last_status_`` texts (``"ok"`` when
    missing); a non-finite score is never ``"ok"``.

    Examples
    --------
    >>> rows = clip_scores(["a.wav", "b.wav"], [0.2, float("nan")], [0, 1], ["ok", "skipped: unreadable"])
    >>> [(r.path, r.status, r.label) for r in rows]
    [('a.wav', 'ok', 0), ('b.wav', 'skipped', 1)]
    """
    values = np.asarray(scores, dtype=np.float64)
    marks = np.asarray(labels, dtype=np.int64)
    n = len(values)
    if hasattr(data, "windows"):  # ClipFeatures: its paths when it has them
        names = [str(p) for p in data.paths] if len(data.paths) == n else [f"#{i}" for i in range(n)]
    else:
        names = [os.fspath(p) for p in getattr(data, "paths", data)]
    rows = []
    for i in range(n):
        kind, reason = split_status(status[i]) if i < len(status) else ("ok", "")
        score = float(values[i])
        if kind == "ok" and not math.isfinite(score):
            kind, reason = "invalid", "non-finite score"
        rate = source_rates[i] if i < len(source_rates) else None
        rows.append(
            ClipScore(
                names[i],
                None if groups is None else str(groups[i]),
                score,
                int(marks[i]),
                kind,
                reason,
                None if rate is None else int(rate),
            )
        )
    return rows
