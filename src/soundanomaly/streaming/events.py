"""Window scores, alert events and the hysteresis that turns one into the other."""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["Alerter", "Event", "MonitorCalibration", "WindowScore", "count_events"]


@dataclass(frozen=True)
class WindowScore:
    """The score of one window of a stream.

    Attributes
    ----------
    index : int
        Window number, from 0.
    start, end : float
        Seconds since the stream started (the window covers ``[start, end)``).
    score : float
        The detector's score of this audio as a clip: **higher = more anomalous**.
    threshold : float
        The monitor's threshold when the window was scored.
    computed_at : float
        ``time.monotonic()`` when the score was ready (for latency measurements).
    raised, cleared : Event or None
        The alert this window raised or cleared, if any (set by :meth:`Monitor.push`).

    Examples
    --------
    >>> w = WindowScore(0, 0.0, 2.0, 1.5, 1.0, 0.0)
    >>> w.above
    True
    """

    index: int
    start: float
    end: float
    score: float
    threshold: float
    computed_at: float
    raised: Event | None = None
    cleared: Event | None = None

    @property
    def above(self) -> bool:
        """Whether ``score > threshold`` or the score is not finite (a NaN never means normal)."""
        return not self.score <= self.threshold


@dataclass
class Event:
    """An alert: a stretch of the stream that sounded anomalous.

    Attributes
    ----------
    start : float
        End time (s since stream start) of the first window above the threshold
        in the run that raised the alert: the earliest moment the audio was
        known to sound wrong.
    detected_at : float
        End time of the window that raised the alert (``raise_k`` of
        ``raise_n`` above).
    end : float or None
        End time of the last window above the threshold, once the alert
        cleared (``clear_m`` windows below); ``None`` while it is ongoing.
    peak_score, peak_time : float
        Highest window score of the event and that window's end time.
    threshold : float
    n_windows : int
        Windows above the threshold during the event.

    Examples
    --------
    >>> event = Event(start=12.0, detected_at=12.5, peak_score=3.2, peak_time=13.0, threshold=1.0)
    >>> event.ongoing, event.to_dict()["peak_score"]
    (True, 3.2)
    """

    start: float
    detected_at: float
    peak_score: float
    peak_time: float
    threshold: float
    end: float | None = None
    n_windows: int = 1

    @property
    def ongoing(self) -> bool:
        """True until the alert clears."""
        return self.end is None

    @property
    def duration(self) -> float | None:
        """``end - start`` in seconds, or None while ongoing."""
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)


class Alerter:
    """Hysteresis on window scores: ``raise_k`` of ``raise_n`` above to raise, ``clear_m`` below to clear.

    Parameters
    ----------
    threshold : float
        A window is *above* when its score is strictly greater.
    raise_k, raise_n : int, default 2 and 3
        Raise an alert when at least ``raise_k`` of the last ``raise_n``
        windows are above the threshold (``1, 1`` alerts on every window).
    clear_m : int, default 3
        Clear it after ``clear_m`` consecutive windows below.

    Examples
    --------
    >>> alerter = Alerter(1.0, raise_k=2, raise_n=3, clear_m=2)
    >>> for i, s in enumerate([0.2, 1.5, 0.4, 1.7, 1.9, 0.1, 0.3, 0.2]):
    ...     raised, cleared = alerter.update(WindowScore(i, i, i + 1.0, s, 1.0, 0.0))
    ...     if raised:
    ...         print("raised at", raised.detected_at, "start", raised.start)
    ...     if cleared:
    ...         print("cleared, end", cleared.end, "peak", cleared.peak_score)
    raised at 4.0 start 2.0
    cleared, end 5.0 peak 1.9
    """

    def __init__(self, threshold: float, *, raise_k: int = 2, raise_n: int = 3, clear_m: int = 3) -> None:
        for name, value in (("raise_k", raise_k), ("raise_n", raise_n), ("clear_m", clear_m)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        if raise_k > raise_n:
            raise ParameterError(f"raise_k ({raise_k}) must be <= raise_n ({raise_n})")
        if not math.isfinite(float(threshold)):
            raise ParameterError(f"threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)
        self.raise_k = raise_k
        self.raise_n = raise_n
        self.clear_m = clear_m
        self.events: list[Event] = []
        self._recent: collections.deque[WindowScore] = collections.deque(maxlen=raise_n)
        self._open: Event | None = None
        self._below = 0

    @property
    def active(self) -> Event | None:
        """The ongoing event, if an alert is raised."""
        return self._open

    def update(self, window: WindowScore) -> tuple[Event | None, Event | None]:
        """Take the next window; return ``(raised, cleared)`` events (None when nothing changed)."""
        above = window.score > self.threshold
        self._recent.append(window)
        event = self._open
        if event is None:
            hits = [w for w in self._recent if w.score > self.threshold]
            if len(hits) >= self.raise_k:
                peak = max(hits, key=lambda w: w.score)
                event = Event(
                    start=hits[0].end,
                    detected_at=window.end,
                    peak_score=peak.score,
                    peak_time=peak.end,
                    threshold=self.threshold,
                    n_windows=len(hits),
                )
                self._open, self._below, self._last_above = event, 0, window.end
                self.events.append(event)
                self._recent.clear()
                return event, None
            return None, None
        if above:
            self._below = 0
            self._last_above = window.end
            event.n_windows += 1
            if window.score > event.peak_score:
                event.peak_score, event.peak_time = window.score, window.end
            return None, None
        self._below += 1
        if self._below >= self.clear_m:
            event.end = self._last_above
            self._open = None
            self._recent.clear()
            return None, event
        return None, None


def count_events(
    scores: npt.ArrayLike, threshold: float, *, raise_k: int = 2, raise_n: int = 3, clear_m: int = 3
) -> int:
    """Number of alerts an :class:`Alerter` with these settings raises on a sequence of window scores.

    Examples
    --------
    >>> count_events([0, 2, 2, 0, 0, 0, 2, 0, 2], 1.0)
    2
    """
    above = np.asarray(scores, dtype=np.float64) > threshold
    recent: collections.deque[bool] = collections.deque(maxlen=raise_n)
    events, active, below = 0, False, 0
    for flag in above.tolist():
        if not active:
            recent.append(flag)
            if sum(recent) >= raise_k:
                events, active, below = events + 1, True, 0
                recent.clear()
        elif flag:
            below = 0
        else:
            below += 1
            if below >= clear_m:
                active = False
    return events


@dataclass(frozen=True)
class MonitorCalibration:
    """False alarms of a monitor on normal audio (see :meth:`Monitor.calibrate`).

    Attributes
    ----------
    threshold : float
        The threshold the rates refer to (the monitor's, after calibration).
    hours : float
        Length of the normal audio streamed.
    n_windows, n_windows_above : int
        Windows scored and those above the threshold.
    n_false_alarms : int
        Alerts the monitor raised (every one is false: the audio is normal).
    false_alarms_per_hour : float
        ``n_false_alarms / hours``.
    false_alarms_per_hour_upper95 : float
        One-sided 95 % Poisson upper bound of the rate: with little audio, a
        zero count still allows a high rate.
    window_fpr : float
        Share of windows above the threshold.
    scores : np.ndarray
        The window scores.

    Examples
    --------
    >>> import numpy as np
    >>> cal = MonitorCalibration(2.0, 0.5, 100, 3, 1, 2.0, 9.5, 0.03, np.zeros(100))
    >>> cal.false_alarms_per_hour
    2.0
    """

    threshold: float
    hours: float
    n_windows: int
    n_windows_above: int
    n_false_alarms: int
    false_alarms_per_hour: float
    false_alarms_per_hour_upper95: float
    window_fpr: float
    scores: npt.NDArray[np.float64] = field(repr=False)
