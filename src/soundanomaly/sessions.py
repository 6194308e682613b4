"""Session-aware calibration: thresholds that hold on a new day, run or domain.

A threshold calibrated on random clips of the recording session a model trained
on is honest for that session only: the next day (another speed, a moved
microphone, another background) raises far more false alarms than asked. This
module holds the rules :class:`~soundanomaly.detectors.base.BaseDetector` uses
when it knows each clip's *session* (``fit(..., sessions=...)``; a DCASE
:class:`~soundanomaly.datasets.ClipSet` gives ``"<machine>/section_NN/<domain>"``):

* **Recording sessions** (a day, a run: any session key that is not a DCASE
  domain): ``fit`` holds out **whole sessions** (seeded, about ``holdout`` of the
  clips, never every session) and calibrates on them, so the threshold is
  measured on sessions the model never heard. The model does not train on
  them: with two sessions, one is held out (about half the clips). On the
  shift benchmark's five-day check this cut a new day's false alarms from
  22-32 % (random clips) to 3-13 %.
* **Domains** (keys ending in ``/source`` or ``/target``): the model must know
  every domain, so each domain keeps most of its clips for training and gives
  ``holdout`` of them (at least one when it has 3 or more) to calibration.
  ``threshold_`` is the highest of the pooled threshold and every domain's own,
  so that no domain raises more false alarms than asked where the domain is not
  known at scoring time. A domain with enough calibration clips to resolve the
  target rate (99 for 1 %) also keeps its own threshold (``session_thresholds_``),
  used by ``predict`` for its clips; a threshold from a handful of clips is not
  kept (on the shift benchmark it flagged 14-45 % of the target's new normal
  clips, against 0-29 % for the highest one).
* **One session** only: the clips are held out at random within it (as without
  sessions) and a :class:`~soundanomaly.exceptions.CalibrationWarning` says that
  the threshold holds for that session only.
* Without sessions (MIMII layout, plain paths) nothing changes: random clips
  are held out, silently, as before.

**Adaptation** (:meth:`~soundanomaly.detectors.base.BaseDetector.adapt`): a few
normal clips of a new session join the model without retraining; their
out-of-fold scores (each clip scored by a copy adapted on the others) calibrate
that session's threshold, and ``threshold_`` becomes the higher of the old one
and the new session's (kept per session, as above, when the clips resolve the rate).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.exceptions import CalibrationWarning, ParameterError

__all__ = [
    "ADAPTED_SESSION",
    "DOMAINS",
    "MAX_SESSIONS",
    "SessionSplit",
    "check_session_thresholds",
    "check_sessions",
    "fold_indices",
    "is_domain",
    "session_thresholds",
    "split_by_session",
    "thresholds_for",
]

#: Session name of clips given to ``adapt`` when none is given or derivable.
ADAPTED_SESSION: Final = "adapted"
#: The last component of a session key that marks a DCASE domain.
DOMAINS: frozenset[str] = frozenset({"source", "target"})
#: Most distinct sessions a model holds thresholds for (a saved model is data: bounded).
MAX_SESSIONS: Final = 1024
_I64 = npt.NDArray[np.int64]


def is_domain(session: str) -> bool:
    """Whether a session key names a DCASE domain (``".../source"``, ``".../target"``) rather than a day or run.

    Examples
    --------
    >>> is_domain("fan/section_00/target"), is_domain("2024-05-01"), is_domain("target")
    (True, False, True)
    """
    return session.rsplit("/", 1)[-1] in DOMAINS


def check_sessions(sessions: object, n: int, *, name: str = "sessions") -> npt.NDArray[np.str_]:
    """Validate per-clip session keys: a sequence of ``n`` non-empty strings, at most :data:`MAX_SESSIONS` distinct.

    Examples
    --------
    >>> check_sessions(["day1", "day2"], 2).tolist()
    ['day1', 'day2']
    >>> check_sessions(["day1"], 2)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: got 1 sessions for 2 clips
    """
    if isinstance(sessions, (str, bytes)) or not isinstance(sessions, (Sequence, np.ndarray)):
        raise ParameterError(f"{name} must be a sequence of str (one per clip), got {type(sessions).__name__}")
    values = list(sessions)
    if len(values) != n:
        raise ParameterError(f"got {len(values)} {name} for {n} clips")
    if any(not isinstance(v, (str, np.str_)) or not v for v in values):
        raise ParameterError(f"{name} must be non-empty strings")
    out = np.asarray(values, dtype=str)
    if len(np.unique(out)) > MAX_SESSIONS:
        raise ParameterError(f"{name}: more than {MAX_SESSIONS} distinct sessions")
    return out


@dataclass(frozen=True)
class SessionSplit:
    """Which clips train and which calibrate.

    Attributes
    ----------
    train, holdout : np.ndarray of int64
        Sorted clip indices.
    strategy : {"sessions", "domains", "clips"}
        ``"sessions"``: whole sessions held out; ``"domains"``: a share of each domain;
        ``"clips"``: random clips of the one training session.
    held_sessions : tuple of str
        The sessions held out whole.

    Examples
    --------
    >>> split = split_by_session(["a"] * 5 + ["b"] * 5 + ["c"] * 5, holdout=0.3, random_state=1)
    >>> split.strategy, sorted(set(split.held_sessions)) == sorted({"abc"[i // 5] for i in split.holdout})
    ('sessions', True)
    """

    train: _I64
    holdout: _I64
    strategy: Literal["sessions", "domains", "clips"]
    held_sessions: tuple[str, ...] = ()


def split_by_session(
    sessions: npt.ArrayLike,
    *,
    holdout: float,
    random_state: int | None,
    min_clips: int = 2,
    name: str = "detector",
) -> SessionSplit:
    """Hold out clips for calibration by session (see the module notes).

    Parameters
    ----------
    sessions : array-like of str, shape (n_clips,)
    holdout : float in (0, 1)
        Share of the clips to hold out (whole sessions: at least this share).
    random_state : int or None
        Seeds which sessions (or clips) are held out.
    min_clips : int, default 2
        Fewest clips held out and left to train on.
    name : str
        Named in the warning.

    Returns
    -------
    SessionSplit
        Its ``holdout`` is empty when there are too few clips (the caller then
        calibrates on training scores, and says so).

    Warns
    -----
    CalibrationWarning
        When every calibration clip comes from the one session the model trains on.

    Examples
    --------
    >>> split = split_by_session(["mon"] * 4 + ["tue"] * 4 + ["wed"] * 4, holdout=0.2, random_state=0)
    >>> split.strategy, split.held_sessions, len(split.holdout)
    ('sessions', ('wed',), 4)
    >>> split = split_by_session(["fan/section_00/source"] * 20 + ["fan/section_00/target"] * 5, holdout=0.2, random_state=0)
    >>> split.strategy, len(split.holdout)
    ('domains', 5)
    """
    keys = np.asarray(sessions, dtype=str)
    n = len(keys)
    rng = np.random.default_rng(random_state)
    everything = np.arange(n, dtype=np.int64)
    names = list(dict.fromkeys(keys.tolist()))  # first-seen order: deterministic for a seed
    runs = [s for s in names if not is_domain(s)]
    held: list[_I64] = []
    whole: list[str] = []
    run_clips = int(np.isin(keys, runs).sum())
    if len(runs) >= 2:
        order = [runs[i] for i in rng.permutation(len(runs))]
        want = max(min_clips, round(holdout * run_clips))
        for session in order[:-1]:  # never every run
            if sum(int((keys == s).sum()) for s in whole) >= want:
                break
            whole.append(session)
        if run_clips - sum(int((keys == s).sum()) for s in whole) < min_clips:
            whole = whole[:-1]
        held += [np.flatnonzero(keys == s) for s in whole]
    stratified = [s for s in names if is_domain(s) or (len(runs) < 2 and s in runs)]
    for session in stratified:
        members = np.flatnonzero(keys == session)
        count = round(holdout * len(members))
        count = max(count, 1 if len(members) >= min_clips + 1 else 0)
        if len(stratified) == 1 and not whole:
            count = max(count, min_clips)
        if len(members) - count < min_clips:
            continue
        held.append(np.sort(rng.choice(members, size=count, replace=False)))
    hold = np.sort(np.concatenate(held)).astype(np.int64) if held else np.empty(0, dtype=np.int64)
    if len(hold) < min_clips:
        hold = np.empty(0, dtype=np.int64)
    strategy: Literal["sessions", "domains", "clips"] = (
        "sessions" if whole else ("domains" if any(is_domain(s) for s in stratified) else "clips")
    )
    if strategy == "clips" or (strategy == "domains" and len(stratified) == 1):
        warnings.warn(
            f"{name}: every calibration clip comes from the one session it trains on ({names[0]!r}); the "
            "threshold holds for that session only, and a new day, run or operating point may raise far more "
            "false alarms than asked. Train on two or more sessions (sessions=), or calibrate() on a session "
            "the model did not train on.",
            CalibrationWarning,
            stacklevel=3,
        )
    return SessionSplit(np.setdiff1d(everything, hold), hold, strategy, tuple(whole))


def session_thresholds(
    scores: npt.ArrayLike, sessions: npt.ArrayLike, calibrator: ThresholdCalibrator
) -> dict[str, float]:
    """One threshold per session from its own normal calibration scores.

    A session with fewer clips than ``calibrator`` needs gets its highest score
    (the calibrator's rule), silently: the caller warns once for the whole fit.

    Examples
    --------
    >>> calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.5)
    >>> session_thresholds([1.0, 2.0, 3.0, 10.0, 20.0, 30.0], ["a"] * 3 + ["b"] * 3, calibrator)
    {'a': 2.5, 'b': 25.0}
    """
    values = np.asarray(scores, dtype=np.float64)
    keys = np.asarray(sessions, dtype=str)
    out: dict[str, float] = {}
    for session in dict.fromkeys(keys.tolist()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            out[session] = float(calibrator.fit(values[keys == session]).threshold)
    return out


def check_session_thresholds(value: object, *, where: str = "session thresholds") -> dict[str, float]:
    """Validate a mapping of session → finite threshold (from a saved model: bounded, typed).

    Examples
    --------
    >>> check_session_thresholds({"fan/section_00/target": 1.5})
    {'fan/section_00/target': 1.5}
    """
    if not isinstance(value, dict) or len(value) > MAX_SESSIONS:
        raise ParameterError(f"{where} must be a mapping of at most {MAX_SESSIONS} sessions")
    out: dict[str, float] = {}
    for key, threshold in value.items():
        if not isinstance(key, str) or not key or isinstance(threshold, bool):
            raise ParameterError(f"{where}: bad session {key!r}")
        if not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise ParameterError(f"{where}: threshold of {key!r} must be a finite number, got {threshold!r}")
        out[key] = float(threshold)
    return out


def thresholds_for(sessions: npt.ArrayLike, per_session: dict[str, float], default: float) -> npt.NDArray[np.float64]:
    """Per-clip thresholds: each clip's session threshold, ``default`` for a session without one.

    Examples
    --------
    >>> thresholds_for(["a", "c"], {"a": 1.0, "b": 2.0}, 5.0).tolist()
    [1.0, 5.0]
    """
    keys = np.asarray(sessions, dtype=str)
    return np.array([per_session.get(k, default) for k in keys.tolist()], dtype=np.float64)


def fold_indices(n: int, *, n_folds: int = 5, random_state: int | None = 0) -> list[_I64]:
    """Split ``range(n)`` into ``min(n_folds, n)`` shuffled folds (for out-of-fold adaptation scores).

    Examples
    --------
    >>> folds = fold_indices(5, n_folds=2)
    >>> sorted(len(f) for f in folds), sorted(np.concatenate(folds).tolist())
    ([2, 3], [0, 1, 2, 3, 4])
    """
    if n < 2:
        raise ParameterError(f"out-of-fold scores need at least 2 clips, got {n}")
    order = np.random.default_rng(random_state).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, min(n_folds, n))]
