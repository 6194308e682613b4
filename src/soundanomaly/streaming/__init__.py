"""Continuous monitoring: score live audio as it arrives, alert without flicker (the ``streaming`` package).

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

Modules: ``events`` (:class:`WindowScore`, :class:`Event`, :class:`Alerter`),
``monitor`` (:class:`Monitor`), ``frontend`` (the incremental log-mel front
end, built on the public steps of :mod:`soundanomaly.features.logmel`),
``scorers`` (streaming scorers that detectors provide through
``stream_scorer()``), ``sources`` and ``scan``. ``soundanomaly.monitor``
re-exports the public names.
"""

from __future__ import annotations

from soundanomaly.streaming.events import Alerter, Event, MonitorCalibration, WindowScore, count_events
from soundanomaly.streaming.monitor import Monitor
from soundanomaly.streaming.scan import ScanResult, fault_onset_stream, scan
from soundanomaly.streaming.sources import FolderSource, PcmSource, WavFileSource

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
