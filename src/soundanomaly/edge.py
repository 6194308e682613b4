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
import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

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

#: Version of the exported-file conventions (metadata keys, input and output names).
FORMAT = "1"
METADATA_PREFIX = "soundanomaly."
#: Metadata every exported file carries (keys without the prefix).
METADATA_KEYS = (
    "format",
    "library_version",
    "detector",
    "sample_rate",
    "window_samples",
    "hop_quantum",
    "threshold",
    "channel",
    "features",
    "aggregate",
    "group",
    "training_fingerprint",
    "training_clips",
)
#: The only operators an exported file may hold (default ONNX domain, no subgraphs).
ALLOWED_OPS = frozenset(
    {
        "Add", "Cast", "Concat", "CumSum", "DFT", "Div", "Gather", "Identity", "IsInf", "IsNaN", "LessOrEqual",
        "Log", "MatMul", "Max", "Mul", "Not", "Or", "Pad", "Pow", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape",
        "Slice", "Sqrt", "Squeeze", "Sub", "TopK", "Transpose", "Unsqueeze", "Where",
    }
)  # fmt: skip
MAX_MODEL_BYTES = 256 << 20
MAX_WINDOW_SECONDS = 600.0
MAX_METADATA_BYTES = 1 << 16
MAX_OPSET = 21
#: Most samples of one channel block read from a WAV stream at a time.
_BLOCK_FRAMES = 1 << 15


# -- the file check: a standard-library walk over the protobuf ------------------------------------------------------
def _fields(data: bytes, where: str) -> Iterator[tuple[int, int, Any]]:
    """``(field, wire type, value)`` of one protobuf message; length-delimited values are bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos, where)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos, where)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos, where)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ModelFormatError(f"{where}: not an ONNX file (protobuf wire type {wire})")
        if pos > end:
            raise ModelFormatError(f"{where}: truncated ONNX file")
        yield number, wire, value


def _varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ModelFormatError(f"{where}: truncated or malformed ONNX file")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, bytes):
        raise ModelFormatError(f"{where}: malformed ONNX file (expected a string)")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{where}: malformed ONNX file (invalid UTF-8)") from exc


def check_onnx_bytes(data: bytes, where: str = "<model>") -> dict[str, str]:
    """Check an exported file's structure without running it; return its ``soundanomaly.*`` metadata.

    Raises
    ------
    ModelFormatError
        Not an exported soundanomaly file, or holds something an exported file never does.
    """
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFormatError(f"{where}: {len(data)} bytes, more than an exported model may have ({MAX_MODEL_BYTES})")
    metadata: dict[str, str] = {}
    graphs = 0
    for number, wire, value in _fields(data, where):
        if number == 8 and wire == 2:  # opset_import
            domain, version = "", 0
            for f, _, v in _fields(value, where):
                domain, version = (_text(v, where), version) if f == 1 else (domain, v if f == 2 else version)
            if domain not in ("", "ai.onnx") or not 1 <= version <= MAX_OPSET:
                raise ModelFormatError(f"{where}: operator set {domain or 'ai.onnx'} {version} is not allowed")
        elif number == 7 and wire == 2:
            graphs += 1
            _check_graph(value, where)
        elif number == 14 and wire == 2:
            entry = {f: _text(v, where) for f, _, v in _fields(value, where) if f in (1, 2)}
            key = entry.get(1, "")
            if key.startswith(METADATA_PREFIX):
                metadata[key[len(METADATA_PREFIX) :]] = entry.get(2, "")
        elif number in (20, 25):
            raise ModelFormatError(f"{where}: holds training information or functions; an exported file never does")
    if graphs != 1:
        raise ModelFormatError(f"{where}: not an ONNX model with one graph")
    return metadata


def _check_graph(data: bytes, where: str) -> None:
    for number, wire, value in _fields(data, where):
        if number == 1 and wire == 2:  # node
            op_type, domain = "", ""
            for f, w, v in _fields(value, where):
                if f == 4:
                    op_type = _text(v, where)
                elif f == 7:
                    domain = _text(v, where)
                elif f == 5 and w == 2 and any(g in (6, 11) for g, _, _ in _fields(v, where)):
                    raise ModelFormatError(f"{where}: node {op_type or '?'} holds a subgraph; not allowed")
            if domain not in ("", "ai.onnx") or op_type not in ALLOWED_OPS:
                raise ModelFormatError(f"{where}: operator {domain + '.' if domain else ''}{op_type} is not allowed")
        elif number == 5 and wire == 2:  # initializer
            for f, _, v in _fields(value, where):
                if f == 13 or (f == 14 and v == 1):
                    raise ModelFormatError(f"{where}: refers to external data files; not allowed")
        elif number == 15:
            raise ModelFormatError(f"{where}: holds sparse initializers; not allowed")


def _bounded_int(metadata: dict[str, str], key: str, lo: int, hi: int, where: str) -> int:
    try:
        value = int(metadata[key])
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"{where}: metadata {key!r} must be an integer") from exc
    if not lo <= value <= hi:
        raise ModelFormatError(f"{where}: metadata {key!r}={value} is outside [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class ModelInfo:
    """The checked metadata of an exported file.

    Attributes
    ----------
    sample_rate : int
        Hz; audio must be at this rate (the edge runtime does not resample).
    window_samples : int
        Samples per scored window (one model input).
    hop_quantum : int
        A streaming hop is rounded to a multiple of this many samples (the feature hop).
    threshold : float
        ``score > threshold`` (or a NaN score) labels a window anomalous.
    channel : int or "mean"
        Channel of a multi-channel file the model was trained on.
    metadata : dict of str to str
        Every ``soundanomaly.*`` entry (detector, features, version, training fingerprint, ...).
    """

    sample_rate: int
    window_samples: int
    hop_quantum: int
    threshold: float
    channel: int | str
    metadata: dict[str, str]

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], where: str) -> ModelInfo:
        """Check the ``soundanomaly.*`` metadata (without the prefix) of file ``where`` and bound every value."""
        missing = [k for k in METADATA_KEYS if k not in metadata]
        if missing:
            raise ModelFormatError(f"{where}: not a soundanomaly export (metadata {missing} missing)")
        if metadata["format"] != FORMAT:
            raise ModelFormatError(f"{where}: export format {metadata['format']!r}; this runtime reads {FORMAT!r}")
        if sum(len(k) + len(v) for k, v in metadata.items()) > MAX_METADATA_BYTES:
            raise ModelFormatError(f"{where}: metadata larger than {MAX_METADATA_BYTES} bytes")
        sr = _bounded_int(metadata, "sample_rate", 1000, 384_000, where)
        window = _bounded_int(metadata, "window_samples", 1, int(sr * MAX_WINDOW_SECONDS), where)
        quantum = _bounded_int(metadata, "hop_quantum", 1, window, where)
        try:
            threshold = float(metadata["threshold"])
        except ValueError as exc:
            raise ModelFormatError(f"{where}: metadata 'threshold' must be a number") from exc
        if not math.isfinite(threshold):
            raise ModelFormatError(f"{where}: metadata 'threshold' must be finite")
        channel: int | str = metadata["channel"]
        if channel != "mean":
            channel = _bounded_int(metadata, "channel", 0, 1023, where)
        return cls(sr, window, quantum, threshold, channel, dict(metadata))


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


# -- WAV input ---------------------------------------------------------------------------------------------------
_PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


class WavStream:
    """Read a RIFF/WAVE file or stream block by block (16/32-bit PCM or 32-bit float, any channel count).

    A data chunk of unknown size (``arecord`` on a pipe writes 0 or 0xFFFFFFFF) is read to the end.

    Parameters
    ----------
    handle : binary file object
    name : str
        Shown in errors.
    """

    def __init__(self, handle: BinaryIO, name: str) -> None:
        self.handle, self.name = handle, name
        head = self._read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioError(name, "not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int] | None = None
        while True:
            chunk = self._read(8)
            if len(chunk) < 8:
                raise AudioError(name, "no data chunk")
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"data":
                break
            if size > 1 << 20:
                raise AudioError(name, f"{kind!r} chunk of {size} bytes before the audio; refusing")
            body = self._read(size + (size & 1))
            if kind == b"fmt ":
                fmt = self._format(body)
        if fmt is None:
            raise AudioError(name, "no fmt chunk before the data")
        self.tag, self.channels, self.sample_rate, self.bits = fmt
        self._frame_bytes = self.channels * self.bits // 8
        self._left = None if size in (0, 0xFFFFFFFF) else size

    def _read(self, n: int) -> bytes:
        return self.handle.read(n)

    def _format(self, body: bytes) -> tuple[int, int, int, int]:
        if len(body) < 16:
            raise AudioError(self.name, "fmt chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == 0xFFFE and len(body) >= 40 and body[26:40] == _PCM_GUID_TAIL:
            tag = struct.unpack("<H", body[24:26])[0]  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
        if (tag, bits) not in ((1, 16), (1, 32), (3, 32)):
            raise AudioError(self.name, f"unsupported WAV encoding (format tag {tag}, {bits} bits); use 16-bit PCM")
        if not 1 <= channels <= 1024 or not 1 <= rate <= 384_000:
            raise AudioError(self.name, f"implausible WAV header ({channels} channels at {rate} Hz)")
        return tag, channels, rate, bits

    def blocks(self, frames: int = _BLOCK_FRAMES) -> Iterator[npt.NDArray[np.float32]]:
        """Float32 blocks of shape ``(n, channels)``, PCM scaled to [-1, 1) as the library reads it."""
        while self._left is None or self._left > 0:
            want = frames * self._frame_bytes
            if self._left is not None:
                want = min(want, self._left)
            data = self._read(want)
            data = data[: len(data) - len(data) % self._frame_bytes]
            if not data:
                return
            if self._left is not None:
                self._left -= len(data)
            yield self._decode(data)

    def _decode(self, data: bytes) -> npt.NDArray[np.float32]:
        if self.tag == 3:
            values = np.frombuffer(data, dtype="<f4").astype(np.float32)
        elif self.bits == 16:
            values = np.frombuffer(data, dtype="<i2") * np.float32(1.0 / 32768.0)
        else:
            values = (np.frombuffer(data, dtype="<i4") * (1.0 / 2147483648.0)).astype(np.float32)
        return values.reshape(-1, self.channels)


def _mono(block: npt.NDArray[np.float32], channel: int | str, name: str) -> npt.NDArray[np.float32]:
    if channel == "mean":
        return np.asarray(block.mean(axis=1, dtype=np.float32), dtype=np.float32)
    assert isinstance(channel, int)
    if channel >= block.shape[1]:
        raise AudioError(name, f"the model listens to channel {channel}; the audio has {block.shape[1]}")
    return np.ascontiguousarray(block[:, channel])


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
    ) -> None:
        for name, value in (("raise_k", raise_k), ("raise_n", raise_n), ("clear_m", clear_m)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        if raise_k > raise_n:
            raise ParameterError(f"raise_k ({raise_k}) must be <= raise_n ({raise_n})")
        if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, (int, float)) or not hop_seconds > 0:
            raise ParameterError(f"hop_seconds must be a positive number, got {hop_seconds!r}")
        info = model.info
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
            yield from monitor.push(_mono(block, info.channel, path))
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
    parser.add_argument("--raise-k", type=int, default=2)
    parser.add_argument("--raise-n", type=int, default=3)
    parser.add_argument("--clear-m", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
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
            monitor = EdgeMonitor(model, hop_seconds=args.hop, source=path, **monitor_options)
            _write(_stream(monitor, path), events_only=args.events_only)
        except SoundAnomalyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


def _write(records: Iterable[EdgeEvent], *, events_only: bool) -> None:
    for record in records:
        if not events_only or record.kind != "window":
            sys.stdout.write(record.to_json() + "\n")
            sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    sys.exit(main())
