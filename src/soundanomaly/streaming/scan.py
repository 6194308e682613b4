"""Long recordings scored block by block in flat memory, and synthetic streams with a fault onset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.streaming.events import Event
from soundanomaly.streaming.monitor import Monitor
from soundanomaly.streaming.sources import WavFileSource
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["ScanResult", "fault_onset_stream", "scan"]


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
