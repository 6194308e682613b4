"""Checks on an exported file before anything runs it: a standard-library walk over its protobuf and its metadata.

Only the standard library (and nothing of ONNX or ONNX Runtime): the bytes are
read once, every operator, domain, subgraph and external-data reference is
looked at, and the ``soundanomaly.*`` metadata is bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from soundanomaly.exceptions import ModelFormatError

__all__ = [
    "ALLOWED_OPS",
    "FORMAT",
    "MAX_MODEL_BYTES",
    "METADATA_KEYS",
    "METADATA_PREFIX",
    "ModelInfo",
    "check_onnx_bytes",
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
        "Add", "Cast", "Concat", "CumSum", "DFT", "Div", "Exp", "Gather", "Identity", "IsInf", "IsNaN", "LessOrEqual",
        "Log", "MatMul", "Max", "Mul", "Not", "Or", "Pad", "Pow", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape",
        "Slice", "Sqrt", "Squeeze", "Sub", "TopK", "Transpose", "Unsqueeze", "Where",
    }
)  # fmt: skip
MAX_MODEL_BYTES = 256 << 20
MAX_WINDOW_SECONDS = 600.0
MAX_METADATA_BYTES = 1 << 16
MAX_OPSET = 21


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


#: AttributeProto fields that hold a tensor or a graph (t, g, tensors, graphs, sparse_tensor, sparse_tensors):
#: an export's operators take only numbers, strings and integer lists as attributes.
_TENSOR_ATTRIBUTES = frozenset({5, 6, 10, 11, 22, 23})


def _check_graph(data: bytes, where: str) -> None:
    for number, wire, value in _fields(data, where):
        if number == 1 and wire == 2:  # node
            op_type, domain = "", ""
            for f, w, v in _fields(value, where):
                if f == 4:
                    op_type = _text(v, where)
                elif f == 7:
                    domain = _text(v, where)
                elif f == 5 and w == 2 and any(g in _TENSOR_ATTRIBUTES for g, _, _ in _fields(v, where)):
                    raise ModelFormatError(
                        f"{where}: node {op_type or '?'} holds a subgraph or a tensor attribute; not allowed"
                    )
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
            channel = _bounded_int(metadata, "channel", -1024, 1023, where)  # negative: from the last, as the library
        return cls(sr, window, quantum, threshold, channel, dict(metadata))
