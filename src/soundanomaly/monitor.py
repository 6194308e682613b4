"""Continuous monitoring (this module re-exports :mod:`soundanomaly.streaming`, where the code lives).

``from soundanomaly.monitor import Monitor, scan, ...`` keeps working; see
:mod:`soundanomaly.streaming` for the parts (events, sources, the incremental
front end, scan).
"""

from __future__ import annotations

from soundanomaly.streaming import (
    Alerter,
    Event,
    FolderSource,
    Monitor,
    MonitorCalibration,
    PcmSource,
    ScanResult,
    WavFileSource,
    WindowScore,
    count_events,
    fault_onset_stream,
    scan,
)

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
