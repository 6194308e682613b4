"""The :class:`Monitor`: score a stream in overlapping windows with a fitted detector; raise alerts."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import check_rate
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.features.logmel import LogMelFrames
from soundanomaly.streaming.events import Alerter, Event, MonitorCalibration, WindowScore, count_events
from soundanomaly.streaming.frontend import FramePipeline, SampleBuffer, as_mono
from soundanomaly.streaming.scorers import clip_score
from soundanomaly.streaming.sources import Block
from soundanomaly.typing import PathLike

__all__ = ["MAX_WINDOW_SECONDS", "Monitor", "group_detector", "load_model"]

#: Longest window or hop (seconds) a monitor accepts: one window of samples is held in memory.
MAX_WINDOW_SECONDS = 3600.0


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
            model = load_model(model)
        if not isinstance(model, BaseDetector):
            raise ParameterError(f"model must be a fitted detector or a model folder, got {type(model).__name__}")
        model.check_is_fitted()
        detector, self.group, self._offset = group_detector(model, group)
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
        self._threshold_given = threshold is not None
        self.raise_k, self.raise_n, self.clear_m = raise_k, raise_n, clear_m
        self.channel = channel
        self.alerter = Alerter(self.threshold, raise_k=raise_k, raise_n=raise_n, clear_m=clear_m)
        self.sr_: int | None = None
        self.input_sr_: int | None = None
        self._resampler: Any = None
        self._frames: FramePipeline | None = None
        self._buffer = SampleBuffer()
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
        samples = as_mono(block, self.channel)
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
        self._buffer = SampleBuffer()
        self._next_window = 0
        self._next_end = 0  # the buffer's end at which the next window is due (0: not known yet)
        self._stream_samples = 0

    def adapt(self, samples: npt.ArrayLike, sr: int, *, session: str = "adapted") -> int:
        """Mark a stretch of audio as normal: the detector adapts to it (a maintenance, a speed change).

        The audio is cut into consecutive windows of ``window_seconds``; the detector's
        :meth:`~soundanomaly.detectors.base.BaseDetector.adapt` takes them as normal clips of
        ``session`` (memory banks and thresholds updated, no retraining), and the alert
        threshold follows the detector's unless one was given to the monitor. The stream
        goes on where it was.

        Parameters
        ----------
        samples : array-like [shape=(n_samples,) or (n_samples, n_channels)]
            At least two windows of normal sound (the monitor's ``channel`` of a multichannel block).
        sr : int
            Sample rate in Hz: the detector's features' rate (no resampling here).
        session : str, default "adapted"

        Returns
        -------
        int
            The number of windows the detector adapted on.

        Raises
        ------
        ParameterError
            Fewer than two windows, another sample rate, or a detector that cannot adapt.

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.detectors import ClipStatsDetector
        >>> from soundanomaly.features import ClipFeatures
        >>> from soundanomaly.detectors import ClipStatistics
        >>> rng = np.random.default_rng(0)
        >>> extractor = ClipStatistics(n_fft=256, n_bands=16, sr=4000)
        >>> train = ClipFeatures.from_arrays([extractor.transform(rng.normal(0, 0.1, 4000).astype("f4"), 4000)
        ...                                   for _ in range(20)])
        >>> monitor = Monitor(ClipStatsDetector(features=extractor, threshold=1.0).fit(train), window_seconds=1.0)
        >>> monitor.adapt(rng.normal(0, 0.3, 12000).astype("f4"), 4000, session="after maintenance")
        3
        """
        signal = as_mono(np.asarray(samples, dtype=np.float32), self.channel)
        features = self.detector.features
        model_sr = getattr(features, "target_sr", getattr(features, "sr", None))
        if model_sr is not None and int(sr) != int(model_sr):
            raise ParameterError(f"adapt needs audio at the features' rate, {model_sr} Hz; got {sr} Hz")
        window = round(self.window_seconds * sr)
        count = len(signal) // window if window > 0 else 0
        if count < 2:
            raise ParameterError(
                f"adapt needs at least 2 windows of {self.window_seconds:g} s, got {len(signal) / sr:.3g} s of audio"
            )
        vectors = [features.transform(np.array(signal[i * window : (i + 1) * window]), int(sr)) for i in range(count)]
        before = float(self.detector.threshold_)
        self.detector.adapt(ClipFeatures.from_arrays(vectors), sessions=[session] * count)
        if self._frames is not None and self.sr_ is not None:  # a frame pipeline may hold the old model's terms
            self._frames = FramePipeline(features, self.sr_, self._sizes[0], self.detector)
        if not self._threshold_given:
            self.set_threshold(self.threshold + float(self.detector.threshold_) - before)
        return count

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
            self._frames = FramePipeline(features, self.sr_, window, self.detector)
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
                score = clip_score(self.detector, self.detector.score_windows(vectors))
            score += self._offset  # a PerGroup's group model: less its threshold, as PerGroup.score
            out.append(WindowScore(self._next_window, start / sr, (start + window) / sr, score, self.threshold,
                                   time.monotonic()))  # fmt: skip
            self._next_window += 1
            keep = self._next_window * hop
            if self._frames is not None:
                keep = min(keep, self._frames.oldest_needed_sample())
            self._buffer.discard_before(keep)
        return out


def load_model(path: PathLike) -> Any:
    """Load a saved detector of any class."""
    from soundanomaly import detectors

    loader = getattr(detectors, "load_model", None) or detectors.load
    return loader(path)


def group_detector(model: Any, group: str | None) -> tuple[Any, str | None, float]:
    """The detector that scores a stream, the group it stands for, and the offset added to its scores.

    The model's :meth:`~soundanomaly.detectors.base.BaseDetector.group_member`: a
    :class:`~soundanomaly.detectors.PerGroup` scores a clip with its group's model, less that model's
    threshold; a stream comes from one microphone, so one group (named, or the model's only one).
    """
    member, offset, key = model.group_member(group)
    return member, key, offset
