"""Score audio at the edge with an exported detector: NumPy, ONNX Runtime and the standard library only.

A gateway installs ``numpy onnxruntime`` and this package with ``--no-deps``
(no SciPy, librosa, scikit-learn, matplotlib, soundfile or TensorFlow), then
scores WAV files or a live WAV stream with a file written by
:func:`soundanomaly.export.save_onnx` (``soundanomaly export MODEL --format onnx``)::

    python -m soundanomaly.edge model.onnx clip.wav other.wav     # one JSON line per window
    arecord -q -f S16_LE -r 16000 -c 1 | python -m soundanomaly.edge model.onnx -

An exported file is data, not instructions: :class:`EdgeModel` reads it whole
(size-capped), walks its protobuf with the standard library and refuses any
operator outside the small set the exporter writes, any subgraph, function,
external-data reference or other domain, checks the metadata (rate, window,
threshold, all bounded) and the input/output signature, and only then hands
it to ONNX Runtime. The streaming semantics are the library's ``Monitor``:
a window of ``window_samples`` every hop, alerts with hysteresis (``raise_k``
of ``raise_n`` windows above the threshold raise, ``clear_m`` below clear).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from soundanomaly.edge.check import MAX_MODEL_BYTES, METADATA_PREFIX, ModelInfo, check_onnx_bytes
from soundanomaly.edge.wav import WavStream, pick_channel
from soundanomaly.exceptions import AudioError, ModelFormatError, ParameterError, SoundAnomalyError
from soundanomaly.results import label_scores

__all__ = [
    "METADATA_PREFIX",
    "EdgeEvent",
    "EdgeModel",
    "EdgeMonitor",
    "ModelInfo",
    "WavStream",
    "check_onnx_bytes",
    "main",
    "score_file",
]


class EdgeModel:
    """An exported detector, checked and ready to score windows with ONNX Runtime.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.onnx`` file written by :func:`soundanomaly.export.save_onnx`.
    threads : int, default 1
        ONNX Runtime intra-op threads.

    Attributes
    ----------
    info : ModelInfo

    Raises
    ------
    ModelFormatError
        The file is not an exported soundanomaly model, or holds anything one never does.
    MissingDependencyError
        ONNX Runtime is not installed.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1) -> None:
        where = os.fspath(path)
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
            raise ParameterError(f"threads must be an int in [1, 256], got {threads!r}")
        try:
            with open(where, "rb") as handle:
                data = handle.read(MAX_MODEL_BYTES + 1)
        except OSError as exc:
            raise ModelFormatError(f"{where}: cannot read ({exc.strerror or exc})") from exc
        self.path = where
        self.info = ModelInfo.from_metadata(check_onnx_bytes(data, where), where)
        self._session = _session(data, threads, where)
        _check_signature(self._session, self.info.window_samples, where)

    def score_window(self, pcm: npt.ArrayLike) -> tuple[float, int]:
        """``(score, label)`` of one mono window of ``window_samples`` float32 samples (higher = more anomalous)."""
        x = np.ascontiguousarray(pcm, dtype=np.float32)
        if x.shape != (self.info.window_samples,):
            raise ParameterError(f"a window is {self.info.window_samples} mono samples, got shape {x.shape}")
        score = float(self._session.run(["score"], {"pcm": x})[0])
        return score, int(label_scores([score], self.info.threshold)[0])


def _session(data: bytes, threads: int, where: str) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from soundanomaly.exceptions import MissingDependencyError

        raise MissingDependencyError("onnxruntime", "edge", "scoring exported models") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types
        raise ModelFormatError(f"{where}: ONNX Runtime cannot load it: {exc}") from exc


def _check_signature(session: Any, window: int, where: str) -> None:
    inputs = [(i.name, i.type, list(i.shape)) for i in session.get_inputs()]
    outputs = [(o.name, o.type, list(o.shape)) for o in session.get_outputs()]
    if inputs != [("pcm", "tensor(float)", [window])]:
        raise ModelFormatError(f"{where}: input must be pcm float32 of {window} samples, got {inputs}")
    if outputs != [("score", "tensor(double)", []), ("label", "tensor(int8)", [])]:
        raise ModelFormatError(f"{where}: outputs must be score (float64) and label (int8), got {outputs}")


# -- streaming -------------------------------------------------------------------------------------------------------
@dataclass
class EdgeEvent:
    """One JSON-lines record: a scored window (``kind="window"``) or an alert raised / cleared.

    Times are seconds since the start of the source; ``score`` is higher = more anomalous.
    """

    kind: str
    source: str
    start: float
    end: float | None
    score: float
    threshold: float
    index: int | None = None
    label: int | None = None
    detected_at: float | None = None
    peak_score: float | None = None
    peak_time: float | None = None
    n_windows: int | None = None
    clip: str | None = None

    def to_json(self) -> str:
        """One line of JSON (NaN written as null), without the fields that do not apply."""
        out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return json.dumps({k: v for k, v in out.items() if v is not None or k in ("end", "score")})


class EdgeMonitor:
    """Score a stream window by window and raise alerts with hysteresis, as ``soundanomaly.Monitor`` does.

    Parameters
    ----------
    model : EdgeModel
    hop_seconds : float > 0, default 1
        Time between window starts, rounded to a whole number of the model's
        ``hop_quantum`` (the feature hop), at most one window.
    raise_k, raise_n, clear_m : int, default 2, 3, 3
        Raise when ``raise_k`` of the last ``raise_n`` windows are above the
        threshold; clear after ``clear_m`` windows in a row at or below it.
    source : str
        Name carried by the events.
    """

    def __init__(
        self,
        model: EdgeModel,
        *,
        hop_seconds: float = 1.0,
        raise_k: int = 2,
        raise_n: int = 3,
        clear_m: int = 3,
        source: str = "-",
        keep_seconds: float = 0.0,
    ) -> None:
        for name, value in (("raise_k", raise_k), ("raise_n", raise_n), ("clear_m", clear_m)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        if raise_k > raise_n:
            raise ParameterError(f"raise_k ({raise_k}) must be <= raise_n ({raise_n})")
        if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, (int, float)) or not hop_seconds > 0:
            raise ParameterError(f"hop_seconds must be a positive number, got {hop_seconds!r}")
        if (
            isinstance(keep_seconds, bool)
            or not isinstance(keep_seconds, (int, float))
            or not 0 <= keep_seconds <= 3600
        ):
            raise ParameterError(f"keep_seconds must be a number of seconds in [0, 3600], got {keep_seconds!r}")
        info = model.info
        self._keep = round(keep_seconds * info.sample_rate)
        self._history = np.empty(0, dtype=np.float32)  # the last keep_seconds of the stream
        self._pushed = 0  # samples pushed so far
        quantum = info.hop_quantum
        self.model, self.source = model, source
        self.hop_samples = min(max(1, round(hop_seconds * info.sample_rate / quantum)) * quantum, info.window_samples)
        self.raise_k, self.raise_n, self.clear_m = raise_k, raise_n, clear_m
        self._buffer = np.empty(0, dtype=np.float32)
        self._buffer_start = 0  # stream sample index of _buffer[0]
        self._next = 0  # index of the next window
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=raise_n)  # (end, score)
        self._open: EdgeEvent | None = None
        self._below = 0
        self._last_above = 0.0

    def push(self, samples: npt.ArrayLike) -> list[EdgeEvent]:
        """Add mono float32 samples at the model's rate; return the records they complete, in order."""
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, block]) if len(self._buffer) else block.copy()
        self._pushed += len(block)
        if self._keep:
            self._history = np.concatenate([self._history, block])[-self._keep :]
        out: list[EdgeEvent] = []
        info = self.model.info
        window, sr = info.window_samples, info.sample_rate
        while True:
            start = self._next * self.hop_samples
            offset = start - self._buffer_start
            if offset + window > len(self._buffer):
                break
            score, label = self.model.score_window(self._buffer[offset : offset + window])
            record = EdgeEvent("window", self.source, start / sr, (start + window) / sr, score, info.threshold)
            record.index, record.label = self._next, label
            out.append(record)
            out.extend(self._alert(record))
            self._next += 1
        keep = self._next * self.hop_samples - self._buffer_start
        if keep > 0:
            self._buffer = self._buffer[keep:]
            self._buffer_start += keep
        return out

    def audio(self, start: float, end: float) -> npt.NDArray[np.float32]:
        """The samples between ``start`` and ``end`` seconds of the stream that ``keep_seconds`` still holds.

        For the clip around an alert: ``audio(alert.start - window, alert.detected_at)``.
        """
        sr = self.model.info.sample_rate
        first = self._pushed - len(self._history)  # stream index of _history[0]
        lo, hi = max(round(start * sr), first), min(round(end * sr), self._pushed)
        return self._history[lo - first : hi - first].copy() if hi > lo else np.empty(0, dtype=np.float32)

    def _alert(self, window: EdgeEvent) -> list[EdgeEvent]:
        """The library's ``Alerter`` rule (a window is above when its score is strictly greater)."""
        assert window.end is not None
        threshold = window.threshold
        above = window.score > threshold
        event = self._open
        if event is None:
            self._recent.append((window.end, window.score))
            hits = [(end, score) for end, score in self._recent if score > threshold]
            if len(hits) < self.raise_k:
                return []
            peak = max(hits, key=lambda hit: hit[1])
            event = EdgeEvent("alert", self.source, hits[0][0], None, peak[1], threshold)
            event.detected_at, event.peak_score, event.peak_time, event.n_windows = (
                window.end,
                peak[1],
                peak[0],
                len(hits),
            )
            self._open, self._below, self._last_above = event, 0, window.end
            self._recent.clear()
            return [EdgeEvent(**asdict(event))]
        if above:
            self._below, self._last_above = 0, window.end
            event.n_windows = (event.n_windows or 0) + 1
            if window.score > (event.peak_score or -math.inf):
                event.peak_score, event.peak_time, event.score = window.score, window.end, window.score
            return []
        self._below += 1
        if self._below < self.clear_m:
            return []
        event.end, self._open = self._last_above, None
        self._recent.clear()
        cleared = EdgeEvent(**asdict(event))
        cleared.kind = "clear"
        return [cleared]


def score_file(model: EdgeModel, path: str, *, hop_seconds: float = 1.0, **alerts: int) -> list[EdgeEvent]:
    """Every window record and alert of one WAV file (``"-"``: standard input).

    A file of exactly one window (a 10 s clip with a 10 s window) gives one
    window whose score is the library's clip score.

    Raises
    ------
    AudioError
        Unreadable, another sample rate than the model's, or shorter than one window.
    """
    monitor = EdgeMonitor(model, hop_seconds=hop_seconds, source=path, **alerts)
    out: list[EdgeEvent] = []
    for record in _stream(monitor, path):
        out.append(record)
    if not out:
        raise AudioError(path, f"shorter than one window ({model.info.window_samples / model.info.sample_rate:g} s)")
    return out


def _stream(monitor: EdgeMonitor, path: str) -> Iterator[EdgeEvent]:
    info = monitor.model.info
    try:
        handle: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AudioError(path, f"cannot read ({exc.strerror or exc})") from exc
    try:
        wav = WavStream(handle, path)
        if wav.sample_rate != info.sample_rate:
            raise AudioError(path, f"recorded at {wav.sample_rate} Hz; the model needs {info.sample_rate} Hz")
        for block in wav.blocks():
            yield from monitor.push(pick_channel(block, info.channel, path))
    finally:
        if path != "-":
            handle.close()


# -- command line -------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soundanomaly.edge",
        description="Score WAV files or a WAV stream ('-') with an exported model; one JSON line per record.",
    )
    parser.add_argument("model", help="an exported .onnx file")
    parser.add_argument("audio", nargs="+", help="WAV files, or - for a WAV stream on standard input")
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between windows (default 1)")
    parser.add_argument("--events-only", action="store_true", help="print alerts only, not every window")
    parser.add_argument("--raise-k", type=int, default=2, help="alert when K of the last N windows are above (2)")
    parser.add_argument("--raise-n", type=int, default=3, help="... of the last N windows (3)")
    parser.add_argument("--clear-m", type=int, default=3, help="clear after M windows in a row at or below (3)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument(
        "--clips",
        metavar="DIR",
        help="write the audio around each alert (one window before it started to its detection) as WAV files here",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m soundanomaly.edge``; returns the exit status (1: some input failed)."""
    args = _parser().parse_args(argv)
    try:
        model = EdgeModel(args.model, threads=args.threads)
    except SoundAnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.audio:
        monitor_options = {"raise_k": args.raise_k, "raise_n": args.raise_n, "clear_m": args.clear_m}
        try:
            keep = model.info.window_samples / model.info.sample_rate + 60.0 if args.clips else 0.0
            monitor = EdgeMonitor(model, hop_seconds=args.hop, source=path, keep_seconds=keep, **monitor_options)
            records = _stream(monitor, path)
            if args.clips:
                records = _with_clips(records, monitor, args.clips, inputs=[args.model, *args.audio])
            _write(records, events_only=args.events_only)
        except SoundAnomalyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


def _with_clips(
    records: Iterable[EdgeEvent], monitor: EdgeMonitor, folder: str, *, inputs: Sequence[str]
) -> Iterator[EdgeEvent]:
    """Pass records through; for each alert, write the audio around it to ``folder`` and name the file in it."""
    for record in records:
        if record.kind == "alert" and record.detected_at is not None:
            info = monitor.model.info
            samples = monitor.audio(record.start - info.window_samples / info.sample_rate, record.detected_at)
            stem = os.path.splitext(os.path.basename(record.source))[0] if record.source != "-" else "stream"
            record.clip = write_wav(
                os.path.join(folder, f"{stem}-alert-{record.start:010.3f}s.wav"), samples, info.sample_rate, inputs
            )
        yield record


def write_wav(path: str, samples: npt.ArrayLike, sr: int, inputs: Sequence[str] = ()) -> str:
    """Write mono float samples as a 16-bit PCM WAV, atomically, never over an input or a file the library did not write."""
    import wave

    from soundanomaly import _safefiles

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    with _safefiles.atomic_file(path, "wb", inputs=inputs) as handle, wave.open(handle, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(pcm.tobytes())
    return path


def _write(records: Iterable[EdgeEvent], *, events_only: bool) -> None:
    for record in records:
        if not events_only or record.kind != "window":
            sys.stdout.write(record.to_json() + "\n")
            sys.stdout.flush()
