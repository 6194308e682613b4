"""Continuous monitoring: score live audio as it arrives, alert without flicker.

A :class:`Monitor` wraps any fitted detector. Feed it blocks of samples of any
size with :meth:`Monitor.push`; every ``hop_seconds`` it scores the last
``window_seconds`` of audio and returns a timestamped :class:`WindowScore`.
A window's score is exactly the score the detector gives that stretch of audio
as a clip (``detector.score``), to float tolerance: for log-mel frame features
the monitor keeps a ring buffer of samples and a cache of mel frames, computes
each frame's FFT once (frames that overlap two windows are not recomputed) and
only redoes, per window, what depends on the window itself: the frames at its
two edges (zero-padded, as in clip scoring) and the dB reference (the window's
loudest bin). Feature vectors whose values did not change since the previous
window keep their cached scores.

An :class:`Alerter` turns window scores into :class:`Event` objects with
hysteresis: ``raise_k`` of the last ``raise_n`` windows above the threshold
raise an alert, ``clear_m`` consecutive windows below clear it.
:meth:`Monitor.calibrate` streams normal audio and reports the false-alarm
rate per hour (and can set the threshold for a target rate).

Sources: :class:`WavFileSource` (a WAV file as a stream, optionally paced in
real time), :class:`FolderSource` (a watched folder receiving new clips) and
:class:`PcmSource` (raw PCM, e.g. ``arecord`` or ``ffmpeg`` piped to stdin).
:func:`scan` processes a long recording block by block, in memory flat in its
length.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from soundanomaly.audio import MAX_ABS_SAMPLE, check_rate, check_samples
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.features.logmel import _AMIN, LogMelFrames, _mel_blocks, _window
from soundanomaly.typing import FloatArray, PathLike

__all__ = [
    "Alerter",
    "Event",
    "FolderSource",
    "Monitor",
    "MonitorCalibration",
    "PcmSource",
    "ScanResult",
    "WavFileSource",
    "WindowScore",
    "count_events",
    "fault_onset_stream",
    "scan",
]

logger = logging.getLogger("soundanomaly.monitor")
_TOP_DB = 80.0
_FLOAT32 = np.dtype(np.float32)
_MAX_ENERGY = MAX_ABS_SAMPLE**2
#: Longest window or hop (seconds) a monitor accepts: one window of samples is held in memory.
MAX_WINDOW_SECONDS = 3600.0
#: Most interleaved channels a raw PCM stream may declare.
MAX_PCM_CHANNELS = 1024
Block = tuple[npt.NDArray[Any], int]


# ---------------------------------------------------------------------------------------------------------------
# Results and alerting
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# The monitor
# ---------------------------------------------------------------------------------------------------------------
class Monitor:
    """Score a stream of audio in overlapping windows with a fitted detector; raise alerts.

    Parameters
    ----------
    model : BaseDetector or path
        A fitted detector, or a model folder written by ``save``.
    window_seconds : float > 0, default 10
        Length of the audio scored at each step. The default matches MIMII's
        10 s clips, so window scores are on the scale of the detector's
        ``threshold_``.
    hop_seconds : float > 0, default 1
        Time between scores. For log-mel frame features it is rounded to a
        whole number of feature hops (``hop_length`` samples); see ``hop_samples_``.
    threshold : float or None
        Alert threshold; defaults to the detector's ``threshold_``. Window
        lengths other than the training clips' change the score spread:
        check the false-alarm rate with :meth:`calibrate`.
    raise_k, raise_n, clear_m : int
        Hysteresis of the :class:`Alerter` (default 2 of 3 to raise, 3 to clear).
    channel : int
        Channel of multi-channel blocks to monitor (default 0).
    group : str or None
        For a :class:`~soundanomaly.detectors.PerGroup` model (``train --per-id``):
        the group the microphone listens to, e.g. ``"fan/id_00"``; optional when
        the model has one group. Window scores are that group's model's score
        less its threshold, as ``PerGroup.score`` gives.

    Attributes
    ----------
    detector : soundanomaly.detectors.base.BaseDetector
        The detector that scores the windows (a PerGroup's model for ``group``).
    alerter : Alerter
        Holds the alert state; :attr:`events` lists every alert raised.
    sr_ : int
        Sample rate the stream is scored at (set by the first :meth:`push`):
        the model's feature rate when its features fix one (a stream at
        another rate, ``input_sr_``, is resampled on the fly with soxr), else
        the stream's own. Window times are in seconds either way.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures, LogMelFrames
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(0, 0.1, 16000).astype(np.float32) for _ in range(4)]
    >>> features = LogMelFrames()
    >>> train = ClipFeatures.from_arrays([features.transform(c, 16000) for c in clips], params=features.params())
    >>> detector = GaussianDetector(threshold=2.0).fit(train)
    >>> monitor = Monitor(detector, window_seconds=1.0, hop_seconds=0.5)
    >>> stream = rng.normal(0, 0.1, 32000).astype(np.float32)
    >>> scores = monitor.push(stream[:5000], 16000) + monitor.push(stream[5000:], 16000)
    >>> [(w.start, w.end) for w in scores]
    [(0.0, 1.0), (0.512, 1.512)]
    >>> window = stream[: monitor.window_samples_]
    >>> clip = ClipFeatures.from_arrays([features.transform(window, 16000)], params=features.params())
    >>> bool(np.isclose(scores[0].score, detector.score(clip)[0], rtol=1e-5))
    True
    """

    def __init__(
        self,
        model: Any,
        *,
        window_seconds: float = 10.0,
        hop_seconds: float = 1.0,
        threshold: float | None = None,
        raise_k: int = 2,
        raise_n: int = 3,
        clear_m: int = 3,
        channel: int = 0,
        group: str | None = None,
    ) -> None:
        from soundanomaly.detectors.base import BaseDetector

        if isinstance(model, (str, os.PathLike)):
            model = _load_model(model)
        if not isinstance(model, BaseDetector):
            raise ParameterError(f"model must be a fitted detector or a model folder, got {type(model).__name__}")
        model._check_fitted()
        detector, self.group, self._offset = _group_detector(model, group)
        for name, value in (("window_seconds", window_seconds), ("hop_seconds", hop_seconds)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= MAX_WINDOW_SECONDS:
                raise ParameterError(
                    f"{name} must be a number of seconds in (0, {MAX_WINDOW_SECONDS:g}], got {value!r}"
                )
        if hop_seconds > window_seconds:
            raise ParameterError(f"hop_seconds ({hop_seconds}) must not exceed window_seconds ({window_seconds})")
        if not isinstance(channel, int) or isinstance(channel, bool):
            raise ParameterError(f"channel must be an int, got {channel!r}")
        self.model = model
        self.detector = detector
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.threshold = float(model.threshold_ if threshold is None else threshold)
        self.raise_k, self.raise_n, self.clear_m = raise_k, raise_n, clear_m
        self.channel = channel
        self.alerter = Alerter(self.threshold, raise_k=raise_k, raise_n=raise_n, clear_m=clear_m)
        self.sr_: int | None = None
        self.input_sr_: int | None = None
        self._resampler: Any = None
        self._frames: _FramePipeline | None = None
        self._buffer = _SampleBuffer()
        self._next_window = 0
        self._next_end = 0  # the buffer's end at which the next window is due (0: not known yet)
        self._stream_samples = 0

    # -- public API ----------------------------------------------------------------------------------------------
    @property
    def events(self) -> list[Event]:
        """Every event raised so far (ongoing ones included)."""
        return self.alerter.events

    @property
    def window_samples_(self) -> int:
        """Samples per window (after the first :meth:`push`)."""
        return self._require_sr()[0]

    @property
    def hop_samples_(self) -> int:
        """Samples between window starts (after the first :meth:`push`)."""
        return self._require_sr()[1]

    @property
    def position(self) -> float:
        """Seconds of audio received so far."""
        return self._stream_samples / self.sr_ if self.sr_ else 0.0

    def push(self, block: npt.ArrayLike, sr: int) -> list[WindowScore]:
        """Add samples; return the windows completed by them (possibly none), in order.

        Parameters
        ----------
        block : np.ndarray [shape=(n,) or (n, n_channels)], float or int16
            Any number of samples; int16 blocks are scaled by 1/32768.
        sr : int > 0
            Sample rate in Hz; must stay the same for the whole stream.

        Returns
        -------
        list of WindowScore
            Each carries the alert it raised or cleared (``raised``,
            ``cleared``); all events are also in :attr:`events`.
        """
        windows = self._push(block, sr)
        return [self._alert(window) for window in windows] if windows else windows

    def _alert(self, window: WindowScore) -> WindowScore:
        raised, cleared = self.alerter.update(window)
        if raised is None and cleared is None:
            return window
        return dataclasses.replace(window, raised=raised, cleared=cleared)

    def _push(self, block: npt.ArrayLike, sr: int) -> list[WindowScore]:
        samples = _as_mono(block, self.channel)
        if type(sr) is not int or sr != self.input_sr_:  # validated once; a plain int equal to it is fine
            self._set_sr(sr)
        if self._resampler is not None:
            samples = np.asarray(self._resampler.resample_chunk(samples), dtype=np.float32)
        buffer = self._buffer
        if len(samples) <= 1 << 16:  # the usual small block: no window may be due (a few microseconds)
            buffer.append(samples)
            self._stream_samples += len(samples)
            return [] if buffer.end < self._next_end else self._drain()
        out: list[WindowScore] = []
        piece = max(self._require_sr()[1], 1 << 16)
        for start in range(0, len(samples), piece):
            chunk = samples[start : start + piece]
            self._buffer.append(chunk)
            self._stream_samples += len(chunk)
            out.extend(self._drain())
        return out

    def run(self, source: Iterable[Block]) -> Iterator[WindowScore]:
        """Stream ``(block, sr)`` pairs from a source; yield each window's score as it is ready.

        At the end of the source, an ongoing event stays open (``end is None``).

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.detectors import GaussianDetector
        >>> from soundanomaly.features import ClipFeatures
        >>> rng = np.random.default_rng(1)
        >>> train = ClipFeatures.from_arrays([rng.normal(size=(30, 320)).astype("float32")] * 3)
        >>> monitor = Monitor(GaussianDetector(threshold=2.0).fit(train), window_seconds=0.5, hop_seconds=0.25)
        >>> blocks = [(rng.normal(0, 0.1, 1600).astype("float32"), 16000) for _ in range(10)]
        >>> [(w.end, w.raised is not None) for w in monitor.run(blocks)]
        [(0.5, False), (0.756, True)]
        """
        for block, sr in source:
            yield from self.push(block, sr)

    def score_stream(self, source: Iterable[Block]) -> npt.NDArray[np.float64]:
        """Window scores of a whole source, without alerting (memory: one float per window)."""
        scores = [w.score for block, sr in source for w in self._push(block, sr)]
        return np.asarray(scores, dtype=np.float64)

    def reset(self) -> None:
        """Forget the stream (buffer, caches, events): the next push starts a new one at time 0."""
        self.alerter = Alerter(self.threshold, raise_k=self.raise_k, raise_n=self.raise_n, clear_m=self.clear_m)
        self.sr_ = self.input_sr_ = None
        self._resampler = None
        self._frames = None
        self._buffer = _SampleBuffer()
        self._next_window = 0
        self._next_end = 0  # the buffer's end at which the next window is due (0: not known yet)
        self._stream_samples = 0

    def set_threshold(self, threshold: float) -> None:
        """Change the alert threshold (ongoing events keep the old one)."""
        if not math.isfinite(float(threshold)):
            raise ParameterError(f"threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)
        self.alerter.threshold = self.threshold

    def calibrate(
        self,
        source: Iterable[Block] | npt.ArrayLike,
        sr: int | None = None,
        *,
        target_false_alarms_per_hour: float | None = None,
    ) -> MonitorCalibration:
        """Stream normal audio through a fresh copy of this monitor; report (or set) the false-alarm rate.

        Parameters
        ----------
        source : iterable of (block, sr) or np.ndarray
            Normal audio only: every alert it raises is a false alarm. An
            array needs ``sr``.
        sr : int, optional
            Sample rate of an array ``source``.
        target_false_alarms_per_hour : float >= 0, optional
            Set :attr:`threshold` to the lowest window score at which the
            alert rate on this audio is at most the target (never below the
            current threshold's behaviour for rates above it). Without it the
            threshold is unchanged and only measured.

        Returns
        -------
        MonitorCalibration

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.detectors import GaussianDetector
        >>> from soundanomaly.features import ClipFeatures, LogMelFrames
        >>> rng = np.random.default_rng(0)
        >>> f = LogMelFrames()
        >>> train = ClipFeatures.from_arrays([f.transform(rng.normal(0, 0.1, 16000).astype("float32"), 16000)] * 3)
        >>> monitor = Monitor(GaussianDetector(threshold=2.0).fit(train), window_seconds=0.5, hop_seconds=0.25)
        >>> normal = rng.normal(0, 0.1, 16000 * 20).astype("float32")
        >>> cal = monitor.calibrate(normal, 16000, target_false_alarms_per_hour=0.0)
        >>> cal.n_false_alarms, cal.threshold == monitor.threshold
        (0, True)
        """
        if isinstance(source, np.ndarray) or (not isinstance(source, Iterable)):
            if sr is None:
                raise ParameterError("sr is required when source is an array of samples")
            source = [(np.asarray(source), sr)]
        fresh = Monitor(
            self.model,
            window_seconds=self.window_seconds,
            hop_seconds=self.hop_seconds,
            threshold=self.threshold,
            raise_k=self.raise_k,
            raise_n=self.raise_n,
            clear_m=self.clear_m,
            channel=self.channel,
            group=self.group,
        )
        scores = fresh.score_stream(source)  # type: ignore[arg-type]
        if len(scores) == 0:
            raise ParameterError("calibration audio is shorter than one window: no window was scored")
        hours = fresh._stream_samples / (fresh._require_sr_value() * 3600.0)
        kwargs = {"raise_k": self.raise_k, "raise_n": self.raise_n, "clear_m": self.clear_m}
        threshold = self.threshold
        if target_false_alarms_per_hour is not None:
            if not target_false_alarms_per_hour >= 0:
                raise ParameterError(f"target_false_alarms_per_hour must be >= 0, got {target_false_alarms_per_hour!r}")
            candidates = np.unique(scores)  # ascending; at the top one nothing is above
            lo, hi = 0, len(candidates) - 1  # binary search for the lowest candidate meeting the target
            while lo < hi:
                mid = (lo + hi) // 2
                if count_events(scores, float(candidates[mid]), **kwargs) / hours <= target_false_alarms_per_hour:
                    hi = mid
                else:
                    lo = mid + 1
            threshold = float(candidates[lo])
            self.set_threshold(threshold)
        n_events = count_events(scores, threshold, **kwargs)
        from scipy.stats import chi2

        upper = float(chi2.ppf(0.95, 2 * (n_events + 1)) / 2.0) / hours
        return MonitorCalibration(
            threshold=threshold,
            hours=hours,
            n_windows=len(scores),
            n_windows_above=int(np.sum(scores > threshold)),
            n_false_alarms=n_events,
            false_alarms_per_hour=n_events / hours,
            false_alarms_per_hour_upper95=upper,
            window_fpr=float(np.mean(scores > threshold)),
            scores=scores,
        )

    # -- internals -----------------------------------------------------------------------------------------------
    def _set_sr(self, sr: int) -> None:
        if self.sr_ is not None:
            if sr != self.input_sr_:
                raise ParameterError(f"sr changed mid-stream: {sr} Hz after {self.input_sr_} Hz; call reset() first")
            return
        features = self.detector.features
        model_sr = getattr(features, "target_sr", getattr(features, "sr", None))  # the features' rate, if fixed
        # the rule of every path (audio.check_rate): refused below the model's rate, resampled down above it
        self.sr_ = check_rate("<stream>", sr, target_sr=model_sr)
        self.input_sr_ = int(sr)
        if self.sr_ != self.input_sr_:
            import soxr

            self._resampler = soxr.ResampleStream(self.input_sr_, self.sr_, 1, dtype="float32", quality="HQ")
        window = round(self.window_seconds * self.sr_)
        if isinstance(features, LogMelFrames):
            if window < features.min_samples:
                raise ParameterError(
                    f"window_seconds={self.window_seconds} is too short for the detector's features: "
                    f"needs at least {features.min_samples / self.sr_:.3f} s"
                )
            hop = max(1, round(self.hop_seconds * self.sr_ / features.hop_length)) * features.hop_length
            self._frames = _FramePipeline(features, self.sr_, window, self.detector)
        else:
            hop = max(1, round(self.hop_seconds * self.sr_))
        self._sizes = (window, min(hop, window))

    def _require_sr(self) -> tuple[int, int]:
        if self.sr_ is None:
            raise ParameterError("no audio pushed yet: the sample rate (and so the window length) is unknown")
        return self._sizes

    def _require_sr_value(self) -> int:
        self._require_sr()
        assert self.sr_ is not None
        return self.sr_

    def _drain(self) -> list[WindowScore]:
        window, hop = self._require_sr()
        sr = self._require_sr_value()
        out: list[WindowScore] = []
        while True:
            start = self._next_window * hop
            self._next_end = start + window
            if self._buffer.end < start + window:
                break
            if self._frames is not None:
                score = self._frames.score_window(self._buffer, start)
            else:
                samples = self._buffer.view(start, start + window)
                vectors = self.detector.features.transform(np.array(samples), sr)
                score = _clip_score(self.detector, self.detector._score_windows(vectors))
            score -= self._offset  # a PerGroup's group model: less its threshold, as PerGroup.score
            out.append(WindowScore(self._next_window, start / sr, (start + window) / sr, score, self.threshold,
                                   time.monotonic()))  # fmt: skip
            self._next_window += 1
            keep = self._next_window * hop
            if self._frames is not None:
                keep = min(keep, self._frames.oldest_needed_sample())
            self._buffer.discard_before(keep)
        return out


def _load_model(path: PathLike) -> Any:
    """Load a saved detector of any class."""
    from soundanomaly import detectors

    loader = getattr(detectors, "load_model", None) or detectors.load
    return loader(path)


def _group_detector(model: Any, group: str | None) -> tuple[Any, str | None, float]:
    """The detector that scores a stream, the group it stands for, and the offset taken off its scores.

    A :class:`~soundanomaly.detectors.PerGroup` scores a clip with its group's model, less that model's
    threshold; a stream comes from one microphone, so one group (named, or the model's only one).
    """
    from soundanomaly.detectors.pergroup import PerGroup

    if not isinstance(model, PerGroup):
        if group is not None:
            raise ParameterError(f"group={group!r} applies to a PerGroup model (train --per-id) only")
        return model, None, 0.0
    if group is None and len(model.groups_) == 1:
        group = model.groups_[0]
    if group not in model.models_:
        raise ParameterError(
            f"this model holds one detector per group; name the one to monitor with group= (CLI: --group), "
            f"one of {model.groups_}" + ("" if group is None else f", not {group!r}")
        )
    chosen = model.models_[group]
    return chosen, group, float(chosen.threshold_)


def _clip_score(detector: Any, per_vector: npt.NDArray[np.float64]) -> float:
    """Reduce per-vector scores to the clip score as ``detector.score`` does (its own reduction)."""
    reduce = getattr(detector, "_reduce", None)
    if getattr(detector, "aggregate", "mean") == "mean":  # the default, without the general machinery
        return float(np.add.reduce(per_vector) / len(per_vector))
    if callable(reduce):
        return float(reduce(per_vector, np.array([0, len(per_vector)], dtype=np.int64))[0])
    return float(np.mean(per_vector))


def _as_mono(block: npt.ArrayLike, channel: int) -> FloatArray:
    if type(block) is np.ndarray and block.dtype is _FLOAT32 and block.ndim == 1:  # the common case, fast
        # the energy (a BLAS dot) is NaN or inf when any sample is, and exceeds MAX_ABS_SAMPLE**2 when one is that large
        energy = block.dot(block)
        if not (math.isfinite(energy) and energy <= _MAX_ENERGY):
            check_samples("<stream>", block)  # the exact rule: NaN, inf, or samples so large that windows become NaN
        return block
    array = np.asarray(block)
    if array.ndim == 2:
        if not -array.shape[1] <= channel < array.shape[1]:
            raise ParameterError(f"channel {channel} out of range: the block has {array.shape[1]} channel(s)")
        array = array[:, channel]
    elif array.ndim != 1:
        raise ParameterError(f"block must be 1-D (n,) or 2-D (n, n_channels), got shape {array.shape}")
    kind = array.dtype.kind
    if kind == "i" and array.dtype.itemsize == 2:
        scaled: FloatArray = np.multiply(array, 1.0 / 32768.0, dtype=np.float32)
        return scaled
    if kind not in "fiu":
        raise ParameterError(f"block must hold numbers, got dtype {array.dtype}")
    samples = np.asarray(array, dtype=np.float32)
    if kind == "f":
        check_samples("<stream>", samples)
    return samples


class _SampleBuffer:
    """Append-only view of a stream's recent samples, ``[start, end)`` in absolute sample indices."""

    def __init__(self) -> None:
        self._data = np.zeros(1 << 16, dtype=np.float32)
        self.start = 0  # absolute index of _data[0]
        self._used = 0

    @property
    def end(self) -> int:
        return self.start + self._used

    def append(self, samples: FloatArray) -> None:
        used = self._used
        end = used + len(samples)
        if end > len(self._data):
            grown = np.empty(max(2 * len(self._data), 2 * end), dtype=np.float32)
            grown[:used] = self._data[:used]
            self._data = grown
        self._data[used:end] = samples
        self._used = end

    def discard_before(self, absolute: int) -> None:
        drop = min(max(0, absolute - self.start), self._used)
        if (drop and drop >= len(self._data) // 2) or (
            drop and self._used + (1 << 14) > len(self._data)
        ):  # compact rarely: amortised O(1) per sample
            self._data[: self._used - drop] = self._data[drop : self._used]
            self._used -= drop
            self.start += drop

    def view(self, lo: int, hi: int) -> FloatArray:
        if lo < self.start or hi > self.end:
            raise ParameterError(f"samples [{lo}, {hi}) are no longer buffered")  # pragma: no cover - internal
        return self._data[lo - self.start : hi - self.start]


class _FramePipeline:
    """Incremental log-mel frames and cached vector scores for one window length.

    Frame ``j`` of the stream covers samples ``[j * hop - pad, j * hop - pad + n_fft)``
    (``pad = n_fft // 2``). A window starting at sample ``s`` (a multiple of
    ``hop``) uses frames ``s / hop + i``: the interior ones lie wholly inside
    the window and are the stream's frames, computed once; the first and last
    few reach into the window's zero padding and are computed per window,
    exactly as :class:`LogMelFrames` does for a clip.

    A feature vector made of interior frames keeps its values from window to
    window except for the dB reference (the window's loudest bin), which
    shifts all its values by the same amount. The scores of the interior
    vectors are cached by stream position, all at one reference (the last
    window's); while it holds, a window scores only its new vectors and its
    edge vectors, in one call. When it moves, the cached vectors follow in
    closed form where the detector has one (the Gaussian: a quadratic in the
    shift; the autoencoder: its first layer and its residual, see
    :class:`_AutoencoderShift`), else they are re-scored once. Vectors touched
    by the ``top_db`` floor at either reference are re-scored exactly.
    """

    def __init__(self, features: LogMelFrames, sr: int, window: int, detector: Any) -> None:
        self.features = features
        self.sr = sr
        self.hop = features.hop_length
        self.n_fft = features.n_fft
        self.pad = self.n_fft // 2
        self.n_mels = features.n_mels
        self.n_stack = features.frames
        self.width = self.n_mels * self.n_stack
        self.window = window
        self.n_frames = 1 + window // self.hop
        self.first = -(-self.pad // self.hop)  # first interior frame of a window
        self.last = min((window + self.pad - self.n_fft) // self.hop, self.n_frames - 1)
        self.n_vectors = self.n_frames - self.n_stack + 1
        self.inner = (self.first, self.last - self.n_stack + 1)  # window-relative indices of interior vectors
        self.n_inner = max(0, self.inner[1] - self.inner[0] + 1)
        self.edge_rows = np.array([*range(self.first), *range(self.last + 1, self.n_frames)], dtype=np.intp)
        self.edge_vectors = np.array(
            [i for i in range(self.n_vectors) if not self.inner[0] <= i <= self.inner[1]], dtype=np.intp
        )
        # the frames of the edge vectors, as runs of copies: (vector, its frames k0:k1, from the window's
        # zero-padded edge frames (True) or the cache, first row there (edge row, or cache row after row a))
        edge_index = {frame: row for row, frame in enumerate(self.edge_rows.tolist())}
        self.edge_copies: list[tuple[int, int, int, bool, int]] = []
        for v, i in enumerate(self.edge_vectors.tolist()):
            for k in range(self.n_stack):
                padded = i + k in edge_index
                row = edge_index[i + k] if padded else i + k - self.first
                last = self.edge_copies[-1] if self.edge_copies else None
                if last and last[0] == v and last[3] == padded and last[2] == k and last[4] + k - last[1] == row:
                    self.edge_copies[-1] = (v, last[1], k + 1, padded, last[4])
                else:
                    self.edge_copies.append((v, k, k + 1, padded, row))
        self.windowed = np.empty((0, self.n_fft), dtype=np.float32)
        self.taper = _window(self.n_fft, 1.0)
        self.amin = np.full((0, self.n_mels), _AMIN, dtype=np.float32)
        self.floor = np.full((self.n_vectors, self.width), -_TOP_DB, dtype=np.float32)
        self.blocks = _mel_blocks(sr, self.n_fft, self.n_mels)
        self.detector = detector
        self.shift_model = _ShiftModel.for_detector(detector)
        # interior frame cache: rows are stream frames cache_start .. cache_start + cache_used - 1
        self.cache = np.empty((max(64, 2 * self.n_frames), self.n_mels), dtype=np.float32)
        self.cache_start = self.first
        self.cache_used = 0
        # interior vector cache: rows are stream positions vec_start .. vec_start + vec_used - 1, all at vec_ref
        self.vec_start = 0
        self.vec_used = 0
        self.vec_ref = np.float32(0.0)
        self.vec_score = np.zeros(max(64, 2 * self.n_vectors), dtype=np.float64)
        self.vec_terms: list[npt.NDArray[Any]] = []
        self.work = np.empty((self.n_vectors, self.width), dtype=np.float32)  # the vectors scored exactly
        self.scores = np.empty(self.n_vectors, dtype=np.float64)
        self.edge_spans = []  # per edge frame: its slice and the window samples that fill it (the rest is padding)
        for i in self.edge_rows.tolist():
            lo = i * self.hop - self.pad
            self.edge_spans.append(
                (max(0, -lo), max(0, min(self.n_fft, self.window - lo)), max(0, lo), max(0, lo + self.n_fft))
            )

    def oldest_needed_sample(self) -> int:
        """Samples before this are never read again (the next stream frame starts here)."""
        return (self.cache_start + self.cache_used) * self.hop - self.pad

    def _log_mel(self, windowed: FloatArray) -> FloatArray:
        """Un-referenced dB of windowed frames ``(n, n_fft)``, with :func:`_log_mel_by_frame`'s arithmetic."""
        spectrum = scipy.fft.rfft(windowed, axis=-1)
        squares = spectrum.view(np.float32)
        np.square(squares, out=squares)
        power = np.add(squares[:, 0::2], squares[:, 1::2])
        n = len(windowed)
        db = np.empty((n, self.n_mels), dtype=np.float32)
        for bands, bins, block in self.blocks:
            np.matmul(power[:, bins], block, out=db[:, bands])
        if n > len(self.amin):
            self.amin = np.full((n, self.n_mels), _AMIN, dtype=np.float32)
        np.maximum(db, self.amin[:n], out=db)
        np.log10(db, out=db)
        db *= 10.0
        return db

    def _extend_cache(self, upto: int, buffer: _SampleBuffer, start: int) -> FloatArray:
        """Compute stream frames up to ``upto`` (inclusive) and the window's edge frames in one FFT; return the edges."""
        nxt = self.cache_start + self.cache_used
        count = max(0, upto - nxt + 1)
        if self.cache_used + count > len(self.cache):
            grown = np.empty((max(2 * len(self.cache), self.cache_used + count), self.n_mels), dtype=np.float32)
            grown[: self.cache_used] = self.cache[: self.cache_used]
            self.cache = grown
        n_edges = len(self.edge_rows)
        if count + n_edges > len(self.windowed):  # a workspace, reused from window to window
            self.windowed = np.empty((count + n_edges, self.n_fft), dtype=np.float32)
        windowed = self.windowed[: count + n_edges]
        if count:
            samples = buffer.view(nxt * self.hop - self.pad, upto * self.hop - self.pad + self.n_fft)
            step = samples.strides[0]
            frames = np.ndarray(
                (count, self.n_fft), np.float32, buffer=samples, strides=(self.hop * step, step)
            )  # overlapping views, no copy
            np.multiply(frames, self.taper, out=windowed[:count])
        if n_edges:
            edges = windowed[count:]
            edges[:] = 0.0
            samples = buffer.view(start, start + self.window)
            for row, (lo, hi, src_lo, src_hi) in enumerate(self.edge_spans):
                edges[row, lo:hi] = samples[src_lo:src_hi]
            edges *= self.taper
        db = self._log_mel(windowed)
        if count:
            self.cache[self.cache_used : self.cache_used + count] = db[:count]
            self.cache_used += count
        return db[count:]

    def _make_room_for_vectors(self, position: int) -> int:
        """Drop cached vectors before stream position ``position``; return its row, with room for a window after it."""
        behind = position - self.vec_start
        if behind >= self.vec_used:  # nothing cached is still needed (or the hop skips past it)
            self.vec_start, self.vec_used, behind = position, 0, 0
        if behind + self.n_inner > len(self.vec_score):  # compact (amortised: the array holds two windows)
            keep = self.vec_used - behind
            for array in (self.vec_score, *self.vec_terms):
                array[:keep] = array[behind : self.vec_used]
            self.vec_start, self.vec_used, behind = position, keep, 0
        return behind

    def score_window(self, buffer: _SampleBuffer, start: int) -> float:
        base = start // self.hop  # stream frame index of window frame 0
        lo, hi = base + self.first, base + self.last  # interior frames, as stream frames
        stale = lo - self.cache_start  # cached frames no window needs any more (windows only move forward)
        if stale > 0 and (stale >= len(self.cache) // 2 or stale >= self.cache_used):
            keep = max(0, self.cache_used - stale)
            self.cache[:keep] = self.cache[stale : self.cache_used]
            self.cache_start, self.cache_used = lo, keep
        edge_db = self._extend_cache(hi, buffer, start)
        a = lo - self.cache_start  # cache row of the window's first interior frame
        cache = self.cache
        ref = cache[a : hi - self.cache_start + 1].max() if hi >= lo else np.float32(-np.inf)  # the loudest bin
        if len(edge_db):
            ref = max(ref, edge_db.max())
        ref = np.float32(ref)
        n_inner, n_edge = self.n_inner, len(self.edge_vectors)
        model = self.shift_model
        row = self._make_room_for_vectors(base + self.inner[0]) if n_inner else 0
        n_cached = self.vec_used - row if n_inner else 0
        # the window's interior vectors, overlapping views of the frame cache (vector j = frames a + j ...)
        step = cache.strides[1]
        inner = np.ndarray(
            (n_inner, self.width), np.float32, buffer=cache, offset=a * cache.strides[0],
            strides=(self.n_mels * step, step),
        )  # fmt: skip
        redo: npt.NDArray[np.intp] | None = None  # cached vectors to re-score exactly
        if n_cached and ref != self.vec_ref:
            if model is None:
                redo = np.arange(n_cached)
            else:
                frames = cache[a : a + n_cached + self.n_stack - 1]
                floor, lowest = np.float32(-_TOP_DB), frames.min()
                if lowest - ref >= floor and lowest - self.vec_ref >= floor:  # the usual case: nothing near the floor
                    moved, redo = np.arange(n_cached), np.empty(0, dtype=np.intp)
                else:
                    frame_min = frames.min(axis=1)
                    vec_min = frame_min[:n_cached].copy()
                    for k in range(1, self.n_stack):
                        np.minimum(vec_min, frame_min[k : k + n_cached], out=vec_min)
                    movable = (vec_min - ref >= floor) & (vec_min - self.vec_ref >= floor)
                    moved = np.flatnonzero(movable)
                    redo = np.flatnonzero(~movable)
                if len(moved):  # closed form in the shift; vectors unclipped at either reference
                    delta = float(ref) - float(self.vec_ref)
                    every = len(moved) == n_cached  # the usual case: slices, not gathers
                    rows: Any = slice(row, row + n_cached) if every else moved + row
                    terms = model.shift([t[rows] for t in self.vec_terms], delta)
                    self.vec_score[rows] = model.scores(terms)
                    for cached, new_terms in zip(self.vec_terms, terms, strict=True):
                        cached[rows] = new_terms
        # score exactly, in one call: the edge vectors, the cached ones to redo, the window's new ones
        n_redo = 0 if redo is None else len(redo)
        n_new = max(0, n_inner - n_cached)
        total = n_edge + n_redo + n_new
        work = self.work[:total]
        if n_edge:
            stacked = work[:n_edge].reshape(n_edge, self.n_stack, self.n_mels)
            for v, k0, k1, padded, first in self.edge_copies:
                source = edge_db[first:] if padded else cache[a + first :]
                stacked[v, k0:k1] = source[: k1 - k0]
        if n_redo:
            assert redo is not None
            work[n_edge : n_edge + n_redo] = inner[redo]
        if n_new:
            work[n_edge + n_redo :] = inner[n_cached:]
        np.subtract(work, ref, out=work)  # referenced and floored as the clip scorer does
        np.maximum(work, self.floor[:total], out=work)
        if model is not None and total:
            terms = model.terms(work)
            exact = model.scores(terms)
        else:
            terms, exact = [], self.detector._score_windows(work) if total else np.empty(0)
        if n_redo or n_new:  # cache the interior ones at this reference
            if terms and not self.vec_terms:
                self.vec_terms = [np.zeros((len(self.vec_score), *t.shape[1:]), dtype=t.dtype) for t in terms]
            targets: list[tuple[Any, slice]] = []
            if n_redo:
                assert redo is not None
                targets.append((redo + row, slice(n_edge, n_edge + n_redo)))
            if n_new:
                targets.append((slice(row + n_cached, row + n_inner), slice(n_edge + n_redo, total)))
            for rows, part in targets:
                self.vec_score[rows] = exact[part]
                for cached, new_terms in zip(self.vec_terms, terms, strict=True):
                    cached[rows] = new_terms[part]
        if n_inner:
            self.vec_used = row + n_inner
            self.vec_ref = ref
        scores = self.scores
        scores[self.inner[0] : self.inner[0] + n_inner] = self.vec_score[row : row + n_inner]
        if n_edge:
            scores[self.edge_vectors] = exact[:n_edge]
        return _clip_score(self.detector, scores)


_FLOAT32_RTOL = 1e-6  # the largest relative error of a vector's score allowed for a float32 shortcut


class _ShiftModel:
    """A detector's per-vector score from cached terms that follow a uniform shift ``x - delta`` in closed form.

    The scores of fresh terms equal the detector's own (``_score_windows``), with the same arithmetic or to
    float64 rounding.
    """

    @staticmethod
    def for_detector(detector: Any) -> _ShiftModel | None:
        from soundanomaly.detectors.autoencoder import AutoencoderDetector
        from soundanomaly.detectors.gaussian import GaussianDetector

        cls = type(detector)
        if isinstance(detector, GaussianDetector) and cls._score_windows is GaussianDetector._score_windows:
            return _GaussianShift(detector)
        if (
            isinstance(detector, AutoencoderDetector)
            and cls._score_windows is AutoencoderDetector._score_windows
            and cls.reconstruct is AutoencoderDetector.reconstruct
            and len(detector.weights_) >= 4  # a hidden layer
        ):
            return _AutoencoderShift(detector)
        return None

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:  # pragma: no cover - abstract
        """Per-vector terms of ``vectors`` (n, D)."""
        raise NotImplementedError

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        """The terms of ``vectors - delta``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        """Per-vector scores from the terms."""
        raise NotImplementedError  # pragma: no cover - abstract


class _GaussianShift(_ShiftModel):
    """``q = (x - mu)' P (x - mu)`` and ``p = 1' P (x - mu)``; shifting by ``d``: ``q - 2 d p + d^2 c``, ``p - d c``.

    With the Cholesky factor ``P = L L'``, ``q = |L' (x - mu)|^2`` and
    ``p = (L' 1)' L' (x - mu)``: a triangular product, half the arithmetic of
    ``(x - mu) P``. The product runs in float32 (twice as fast) when, on probe
    vectors drawn from the model at a few shifts, ``q`` stays within
    :data:`_FLOAT32_RTOL` of the float64 value (a well-conditioned covariance,
    as the default shrinkage gives); else in float64 (~1e-13).
    """

    def __init__(self, detector: Any) -> None:
        self.mean = detector.mean_
        self.precision = detector.precision_
        self.total = float(self.precision.sum())  # c = 1' P 1
        self.factor: npt.NDArray[np.floating[Any]] | None = None
        try:
            lower = np.linalg.cholesky(self.precision)
        except np.linalg.LinAlgError:  # not numerically positive definite: the full product
            return
        if np.isfinite(lower).all():
            from scipy.linalg.blas import dtrmm, strmm

            self.ones = lower.sum(axis=0)  # L' 1
            self.factor, self.factor_mean, self.trmm = np.asfortranarray(lower), self.mean, dtrmm  # BLAS reads in place
            probes = self._probes(lower)
            reference = self._project(probes)
            self.factor, self.factor_mean, self.trmm = (
                np.asfortranarray(lower, dtype=np.float32), self.mean.astype(np.float32), strmm
            )  # fmt: skip
            if self._relative_error(self._project(probes), reference) > _FLOAT32_RTOL:
                self.factor, self.factor_mean, self.trmm = np.asfortranarray(lower), self.mean, dtrmm

    def _probes(self, lower: npt.NDArray[np.float64]) -> FloatArray:
        """Float32 vectors drawn from the model, typical to far out (0.5 to 10 standard deviations)."""
        from scipy.linalg import solve_triangular

        white = np.random.default_rng(0).standard_normal((len(self.mean), 64)) * np.repeat([0.5, 1.0, 3.0, 10.0], 16)
        centred = solve_triangular(lower, white, trans="T", lower=True).T  # rows drawn from N(0, cov), scaled
        probes: FloatArray = (self.mean + centred).astype(np.float32)  # as the stream's frames are
        return probes

    def _relative_error(self, terms: list[npt.NDArray[Any]], reference: list[npt.NDArray[Any]]) -> float:
        """Largest relative error of ``q`` against the reference terms', also shifted by up to 6 dB."""
        worst = 0.0
        for delta in (0.0, -6.0, 0.5, 6.0):
            got, want = self.shift(terms, delta)[0], self.shift(reference, delta)[0]
            if not (np.isfinite(got).all() and (want > 0).all()):
                return np.inf
            worst = max(worst, float(np.max(np.abs(got - want) / want)))
        return worst

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        return self._project(vectors)

    def _project(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        """:meth:`terms` (also of the probes, which the stream's own accounting does not count)."""
        if self.factor is not None:
            # float32 frames minus the mean, in the factor's precision; centred.T is Fortran-ordered,
            # L' centred' in place, i.e. rows centred @ L
            centred = np.subtract(vectors, self.factor_mean)
            y = self.trmm(1.0, self.factor, centred.T, side=0, lower=1, trans_a=1, overwrite_b=1).T
            return [np.einsum("ij,ij->i", y, y, dtype=np.float64), y @ self.ones]
        centred = np.subtract(vectors, self.mean)  # float64, as GaussianDetector's astype then subtract
        projected = centred @ self.precision
        return [np.einsum("ij,ij->i", projected, centred), projected.sum(axis=1)]

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        quadratic, linear = terms
        return [quadratic - 2.0 * delta * linear + delta * delta * self.total, linear - delta * self.total]

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        # GaussianDetector._score_windows: einsum("ij,ij->i", centred @ precision, centred) / width, to float64 rounding
        return np.asarray(terms[0] / len(self.mean), dtype=np.float64)


class _AutoencoderShift(_ShiftModel):
    """Cached per vector: the first layer's pre-activation ``z``, the last hidden layer's output ``h``,
    the residual ``r = reconstruction - x``'s projection ``g = W r`` on the output layer ``W`` and its sum
    ``s``, and the score ``|r|^2 / D``.

    Shifting ``x`` by ``-d``: ``z - d (1' W0)`` exactly (the first layer is linear), and the hidden
    layers run again from it. The residual moves by ``dr = W' dh + d 1`` (``dh`` the change of ``h``),
    so the output layer, the widest product (``64 x 320``), need not run again: ``|r|^2`` gains
    ``dr' (r_old + r_new) = [dh, d]' [g_old + g_new, s_old + s_new]``, and
    ``[g, s]`` gains ``[dh, d] [[G, W 1], [1' W', D]]`` with ``G = W W'`` (``65 x 65``). All of these
    are residual-sized, so float32 keeps the clip scorer's precision (the score accumulates in float64).
    New vectors run the network as :meth:`AutoencoderDetector.reconstruct` does, with the same
    arithmetic, plus one product for ``[g, s]``.
    """

    def __init__(self, detector: Any) -> None:
        weights = [np.asarray(w, dtype=np.float32) for w in detector.weights_]
        self.first, self.hidden = weights[0], weights[1:-2]  # hidden: bias 0, W1, bias 1, ..., the last hidden bias
        self.output, self.output_bias = weights[-2], weights[-1]
        self.column_sums = weights[0].sum(axis=0, dtype=np.float64)  # 1' W0
        out = self.output.astype(np.float64)  # (h, D)
        self.width = out.shape[1]
        row_sums = out.sum(axis=1)  # W 1
        self.project = np.ascontiguousarray(np.hstack([out.T, np.ones((self.width, 1))]), dtype=np.float32)
        self.gram = np.block([[out @ out.T, row_sums[:, None]], [row_sums[None, :], np.array([[self.width]])]])
        self.gram = self.gram.astype(np.float32)
        self._rows = 0
        self._tiles: list[FloatArray] = []
        self._zeros: FloatArray = np.zeros(0, dtype=np.float32)

    def _scratch(self, n: int) -> None:
        """Row-tiled biases and zeros for ``n`` rows (NumPy adds and compares whole arrays faster than rows)."""
        if n > self._rows:
            self._rows = max(n, 2 * self._rows, 64)
            biases = [*self.hidden[0::2], self.output_bias]
            self._tiles = [np.tile(b, (self._rows, 1)) for b in biases]
            self._zeros = np.zeros(self._rows * max(len(b) for b in biases), dtype=np.float32)

    def _last_hidden(self, z: FloatArray) -> FloatArray:
        """The last hidden layer's output from first-layer pre-activations ``z``, as ``reconstruct`` computes it."""
        n = len(z)
        self._scratch(n)
        x = np.add(z, self._tiles[0][:n])
        for i in range(len(self.hidden) // 2 + 1):
            if i:
                x = x @ self.hidden[2 * i - 1]
                x += self._tiles[i][:n]
            np.maximum(x, self._zeros[: x.size].reshape(x.shape), out=x)
        return x

    def terms(self, vectors: FloatArray) -> list[npt.NDArray[Any]]:
        z = vectors @ self.first
        h = self._last_hidden(z)
        residual = h @ self.output
        residual += self._tiles[-1][: len(h)]
        residual -= vectors  # reconstruction_error's diff, with the same arithmetic
        score = np.asarray(np.einsum("ij,ij->i", residual, residual) / self.width, dtype=np.float64)
        return [z, h, residual @ self.project, score]

    def shift(self, terms: list[npt.NDArray[Any]], delta: float) -> list[npt.NDArray[Any]]:
        z, h, projected, score = terms
        moved = np.subtract(z, delta * self.column_sums, dtype=np.float32, casting="same_kind")
        new_h = self._last_hidden(moved)
        change = np.empty(projected.shape, dtype=np.float32)  # [dh, d]
        np.subtract(new_h, h, out=change[:, :-1])
        change[:, -1] = delta
        new_projected = change @ self.gram
        new_projected += projected
        projected = projected + new_projected
        gain = np.einsum("ij,ij->i", change, projected)
        return [moved, new_h, new_projected, score + gain / self.width]

    def scores(self, terms: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        return np.asarray(terms[-1], dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Sources: iterables of (block, sr)
# ---------------------------------------------------------------------------------------------------------------
class WavFileSource:
    """Read an audio file as a stream of blocks, optionally paced in real time.

    Parameters
    ----------
    path : path
        Any file soundfile reads (WAV, FLAC, ...).
    block_seconds : float > 0, default 0.1
        Length of each block.
    realtime : bool, default False
        Sleep so that blocks arrive no faster than the audio plays (a recorded
        file standing in for a microphone).
    channel : int, default 0
        Channel of a multi-channel file.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> sf.write("tone.wav", np.zeros(16000, np.float32), 16000)
    >>> blocks = list(WavFileSource("tone.wav", block_seconds=0.25))
    >>> len(blocks), blocks[0][0].shape, blocks[0][1]
    (4, (4000,), 16000)
    """

    def __init__(self, path: PathLike, *, block_seconds: float = 0.1, realtime: bool = False, channel: int = 0) -> None:
        if not block_seconds > 0:
            raise ParameterError(f"block_seconds must be > 0, got {block_seconds!r}")
        self.path = os.fspath(path)
        self.block_seconds = float(block_seconds)
        self.realtime = realtime
        self.channel = channel
        self.target_sr: int | None = None  # set by scan: a file below the model's rate is refused with its name

    def __iter__(self) -> Iterator[Block]:
        from soundanomaly.recording import read_blocks  # the rules of audio.load: regular file, complete, finite

        started, sent = time.monotonic(), 0
        for block, sr in read_blocks(self.path, block_seconds=self.block_seconds, channel=self.channel,
                                     target_sr=self.target_sr):  # fmt: skip
            if self.realtime:
                ahead = started + sent / sr - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            sent += len(block)
            yield block, sr


class FolderSource:
    """Watch a folder for new audio clips and stream them, one after the other, as one stream.

    A recorder that drops a clip every few seconds into a folder becomes a
    continuous stream. A new file is read once its size is the same at two
    polls (files already there at the start: at once); files are taken in
    name order. A clip that cannot be read is logged and skipped.

    Parameters
    ----------
    folder : path
    pattern : str, default ``"*.wav"``
    poll_seconds : float > 0, default 1
        How often to look for new files.
    existing : bool, default True
        Also stream the files already there at the start.
    idle_timeout : float or None, default None
        Stop after this many seconds without a new file (``None``: watch until interrupted).
    block_seconds : float, default 1
    channel : int, default 0

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> from pathlib import Path
    >>> Path("incoming").mkdir()
    >>> sf.write("incoming/a.wav", np.zeros(8000, np.float32), 16000)
    >>> sf.write("incoming/b.wav", np.zeros(8000, np.float32), 16000)
    >>> source = FolderSource("incoming", poll_seconds=0.01, idle_timeout=0.05)
    >>> sum(len(block) for block, sr in source), source.seen
    (16000, ['a.wav', 'b.wav'])
    """

    def __init__(
        self,
        folder: PathLike,
        *,
        pattern: str = "*.wav",
        poll_seconds: float = 1.0,
        existing: bool = True,
        idle_timeout: float | None = None,
        block_seconds: float = 1.0,
        channel: int = 0,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ParameterError(f"folder {os.fspath(folder)!r} is not a directory")
        if not poll_seconds > 0:
            raise ParameterError(f"poll_seconds must be > 0, got {poll_seconds!r}")
        self.pattern = pattern
        self.poll_seconds = float(poll_seconds)
        self.existing = existing
        self.idle_timeout = idle_timeout
        self.block_seconds = block_seconds
        self.channel = channel
        self.seen: list[str] = []

    def __iter__(self) -> Iterator[Block]:
        initial = {p.name for p in self.folder.glob(self.pattern)}
        done: set[str] = set() if self.existing else set(initial)
        sizes: dict[str, int] = {}
        first_poll, last_new = True, time.monotonic()
        while True:
            ready = []
            for path in sorted(self.folder.glob(self.pattern)):
                name = path.name
                if name in done or not path.is_file():
                    continue
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # pragma: no cover - removed between glob and stat
                    continue
                if size > 0 and ((first_poll and name in initial) or sizes.get(name) == size):
                    ready.append(path)
                else:
                    sizes[name] = size
            first_poll = False
            for path in ready:
                done.add(path.name)
                sizes.pop(path.name, None)
                self.seen.append(path.name)
                last_new = time.monotonic()
                try:
                    yield from WavFileSource(path, block_seconds=self.block_seconds, channel=self.channel)
                except AudioError as exc:  # one bad clip must not end the watch
                    logger.warning("skipping %s", exc)
            if not ready:
                if self.idle_timeout is not None and time.monotonic() - last_new > self.idle_timeout:
                    return
                time.sleep(self.poll_seconds)


_PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


class PcmSource:
    """Raw interleaved PCM from a binary stream (e.g. stdin), as ``arecord`` or ``ffmpeg`` write it.

    Parameters
    ----------
    stream : binary file-like, default ``sys.stdin.buffer``
    sr : int, default 16000
        Sample rate in Hz (raw PCM carries no header: say what the recorder sends).
    format : {"s16le", "f32le"}, default "s16le"
        ``arecord -f S16_LE`` / ``ffmpeg -f s16le``, or 32-bit float.
    channels : int, default 1
    channel : int, default 0
        Channel to monitor.
    block_seconds : float, default 0.1

    Examples
    --------
    Pipe a microphone in: ``arecord -f S16_LE -r 16000 -c 1 | soundanomaly monitor model -``.

    >>> import io, numpy as np
    >>> raw = io.BytesIO(np.arange(3200, dtype="<i2").tobytes())
    >>> blocks = list(PcmSource(raw, sr=16000, block_seconds=0.1))
    >>> [len(b) for b, sr in blocks], float(blocks[0][0][1]) == 1 / 32768
    ([1600, 1600], True)
    """

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        sr: int = 16000,
        format: str = "s16le",
        channels: int = 1,
        channel: int = 0,
        block_seconds: float = 0.1,
    ) -> None:
        if format not in _PCM_FORMATS:
            raise ParameterError(f"format must be one of {sorted(_PCM_FORMATS)}, got {format!r}")
        if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_PCM_CHANNELS:
            raise ParameterError(f"channels must be an int in [1, {MAX_PCM_CHANNELS}], got {channels!r}")
        if not isinstance(channel, int) or not 0 <= channel < channels:
            raise ParameterError(f"channel {channel} out of range for {channels} channel(s)")
        try:
            check_rate("<stdin>", sr)
        except AudioError as exc:
            raise ParameterError(f"sr: {exc.problem}") from None
        if not isinstance(block_seconds, (int, float)) or not 0 < block_seconds <= 60:
            raise ParameterError(f"block_seconds must be in (0, 60], got {block_seconds!r}")
        self.stream = stream
        self.sr = sr
        self.format = format
        self.channels = channels
        self.channel = channel
        self.block_seconds = float(block_seconds)

    def __iter__(self) -> Iterator[Block]:
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        dtype = _PCM_FORMATS[self.format]
        frame_bytes = dtype.itemsize * self.channels
        want = max(1, round(self.block_seconds * self.sr)) * frame_bytes
        pending = b""
        while True:
            data = stream.read(want - len(pending)) if hasattr(stream, "read") else b""
            if not data:
                if len(pending) >= frame_bytes:  # pragma: no cover - only with odd short reads
                    yield self._decode(pending[: len(pending) // frame_bytes * frame_bytes], dtype), self.sr
                return
            pending += data
            usable = len(pending) // frame_bytes * frame_bytes
            if usable and (len(pending) >= want or usable == len(pending)):
                block, pending = pending[:usable], pending[usable:]
                yield self._decode(block, dtype), self.sr

    def _decode(self, data: bytes, dtype: np.dtype[Any]) -> FloatArray:
        frames = np.frombuffer(data, dtype=dtype).reshape(-1, self.channels)[:, self.channel]
        scale = 1.0 / 32768.0 if dtype.kind == "i" else 1.0
        decoded: FloatArray = np.multiply(frames, scale, dtype=np.float32)
        check_samples("<stdin>", decoded)  # f32le: NaN, inf and absurd magnitudes are refused as in a file
        return decoded


# ---------------------------------------------------------------------------------------------------------------
# Long recordings
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanResult:
    """Window scores and events of a long recording (see :func:`scan`).

    Attributes
    ----------
    recording : str
        The file scanned.
    sr : int
    duration : float
        Seconds of audio read.
    starts, ends, scores : np.ndarray
        One entry per window (seconds, seconds, score).
    threshold : float
    events : list of Event

    Examples
    --------
    >>> import numpy as np
    >>> result = ScanResult("x.wav", 16000, 3.0, np.array([0.0, 1.0]), np.array([2.0, 3.0]), np.array([0.5, 2.0]), 1.0, [])
    >>> result.to_rows()[1]
    {'start': 1.0, 'end': 3.0, 'score': 2.0, 'above': True}
    """

    recording: str
    sr: int
    duration: float
    starts: npt.NDArray[np.float64]
    ends: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    threshold: float
    events: list[Event]

    def to_rows(self) -> list[dict[str, Any]]:
        """Window scores as dicts (``start``, ``end``, ``score``, ``above``)."""
        return [
            {"start": float(s), "end": float(e), "score": float(v), "above": bool(v > self.threshold)}
            for s, e, v in zip(self.starts, self.ends, self.scores, strict=True)
        ]

    def plot(self, *, ax: Any = None) -> Any:
        """Score curve over time with the threshold and the events shaded; returns the figure.

        matplotlib is imported here (the ``plots`` dependency), never at import time.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(11, 3.5), layout="constrained")
        else:
            fig = ax.figure
        hours = self.duration >= 3 * 3600
        unit, scale = ("h", 3600.0) if hours else ("s", 1.0)
        ax.plot(self.ends / scale, self.scores, color="#1f77b4", linewidth=0.8, label="window score")
        ax.axhline(self.threshold, color="black", linestyle="--", linewidth=0.8, label="threshold")
        for i, event in enumerate(self.events):
            end = event.end if event.end is not None else self.duration
            ax.axvspan(event.start / scale, end / scale, color="#d62728", alpha=0.25,
                       label="event" if i == 0 else None)  # fmt: skip
        ax.set(
            xlabel=f"time [{unit}]",
            ylabel="anomaly score",
            title=f"{Path(self.recording).name}: {len(self.events)} event(s)",
        )
        ax.legend(loc="upper left")
        return fig


def scan(
    model: Any,
    path: PathLike,
    *,
    window_seconds: float = 10.0,
    hop_seconds: float = 1.0,
    threshold: float | None = None,
    raise_k: int = 2,
    raise_n: int = 3,
    clear_m: int = 3,
    channel: int = 0,
    group: str | None = None,
    block_seconds: float = 60.0,
) -> ScanResult:
    """Score a long recording window by window, reading it block by block.

    Memory stays flat in the recording's length (one window of samples, one
    float per window): a 10-hour file scans in the memory of a 10-second one.
    Parameters as in :class:`Monitor`.

    Returns
    -------
    ScanResult
        Ongoing events at the end of the file keep ``end=None``.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> train = ClipFeatures.from_arrays([rng.normal(size=(30, 320)).astype("float32")] * 3)
    >>> sf.write("long.wav", rng.normal(0, 0.1, 16000 * 5), 16000)
    >>> result = scan(GaussianDetector(threshold=2.0).fit(train), "long.wav", window_seconds=1.0, hop_seconds=0.5)
    >>> len(result.scores), result.duration
    (8, 5.0)
    """
    monitor = Monitor(
        model,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        threshold=threshold,
        raise_k=raise_k,
        raise_n=raise_n,
        clear_m=clear_m,
        channel=channel,
        group=group,
    )
    starts: list[float] = []
    ends: list[float] = []
    scores: list[float] = []
    sr = 0
    source = WavFileSource(path, block_seconds=block_seconds, channel=channel)
    source.target_sr = getattr(monitor.detector.features, "target_sr", None)  # refused with the file's name
    for window in monitor.run(source):
        starts.append(window.start)
        ends.append(window.end)
        scores.append(window.score)
    sr = monitor.sr_ or 0
    if not scores:
        raise AudioError(path, f"recording shorter than one window ({window_seconds} s)")
    return ScanResult(
        recording=os.fspath(path),
        sr=sr,
        duration=monitor.position,
        starts=np.asarray(starts),
        ends=np.asarray(ends),
        scores=np.asarray(scores),
        threshold=monitor.threshold,
        events=list(monitor.events),
    )


# ---------------------------------------------------------------------------------------------------------------
# Synthetic streams
# ---------------------------------------------------------------------------------------------------------------
def fault_onset_stream(
    machine_id: int = 0,
    *,
    anomaly: str = "imbalance",
    normal_seconds: float = 10.0,
    fault_seconds: float = 10.0,
    severity: float = 0.8,
    snr: float = 6.0,
    sr: int = 16000,
    seed: int = 0,
    clip_index: int = 0,
    crossfade_seconds: float = 0.05,
) -> tuple[FloatArray, float]:
    """A synthetic fan recording that turns faulty mid-way: normal audio, then the same fan with a fault.

    Both parts come from :func:`soundanomaly.datasets.synthetic.generate_clip`
    for the same fan model; a short equal-power crossfade joins them so the
    switch itself makes no click.

    Returns
    -------
    signal : np.ndarray [shape=(round((normal_seconds + fault_seconds) * sr),)], float32
    onset : float
        Seconds from the start at which the fault begins (the crossfade's middle).

    Examples
    --------
    >>> signal, onset = fault_onset_stream(0, normal_seconds=1.0, fault_seconds=1.0)
    >>> signal.shape, onset
    ((32000,), 1.0)
    """
    from soundanomaly.datasets.synthetic import generate_clip

    fade = round(crossfade_seconds * sr)
    n_normal, n_fault = round(normal_seconds * sr), round(fault_seconds * sr)
    if n_normal < fade or n_fault < fade:
        raise ParameterError("normal_seconds and fault_seconds must each be longer than crossfade_seconds")
    half = fade // 2
    total, cut = n_normal + n_fault, n_normal - half  # the crossfade spans [cut, cut + fade)
    normal = generate_clip(machine_id, duration=(cut + fade) / sr, snr=snr, sr=sr, seed=seed, clip_index=clip_index)
    faulty = generate_clip(
        machine_id,
        anomaly=anomaly,
        severity=severity,
        duration=(total - cut) / sr,
        snr=snr,
        sr=sr,
        seed=seed,
        clip_index=clip_index,
    )
    out = np.empty(total, dtype=np.float32)
    out[:cut] = normal[:cut]
    ramp = np.sin(np.linspace(0.0, np.pi / 2, fade)) ** 2
    out[cut : cut + fade] = np.sqrt(1 - ramp) * normal[cut : cut + fade] + np.sqrt(ramp) * faulty[:fade]
    out[cut + fade :] = faulty[fade : total - cut]
    return out, n_normal / sr
