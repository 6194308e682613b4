"""Where an export may write: never over an input, never over a file the library did not write (without force)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from soundanomaly import _safefiles
from soundanomaly.exceptions import OutputExistsError
from soundanomaly.typing import PathLike

__all__ = ["HEADER_MARK", "TFLITE_MARK", "write_export"]

#: First line of a C header the library writes.
HEADER_MARK = b"/* soundanomaly export"
#: Name of the output tensor of every TFLite file the library writes.
TFLITE_MARK = b"soundanomaly_score"
_ONNX_MARK = b"\x12\x0csoundanomaly"  # ModelProto.producer_name (field 2, 12 bytes)
_MAX_SNIFF = 512 << 20


def written_by_library(path: PathLike) -> bool:
    """Whether ``path`` is an ONNX, TFLite or C-header export the library wrote (so it may be replaced)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head.startswith(HEADER_MARK) or _ONNX_MARK in head:
                return True
            if head[4:8] != b"TFL3" or size > _MAX_SNIFF:
                return False
            return TFLITE_MARK in head + handle.read()
    except OSError:
        return False


def write_export(target: PathLike, data: bytes, *, inputs: Iterable[PathLike] = (), force: bool = False) -> Path:
    """Write ``data`` to ``target`` atomically (a temporary sibling renamed over it).

    Raises
    ------
    OutputExistsError
        ``target`` is or lies inside an input, is a folder, or is an existing
        file the library did not write (unless ``force``).
    """
    inputs = list(inputs)
    path = Path(target)
    resolved = Path(os.path.abspath(os.fspath(target))).resolve()
    for item in inputs:
        source = Path(os.path.abspath(os.fspath(item))).resolve()
        if source == resolved or source in resolved.parents:
            what = "is" if source == resolved else "lies inside"
            raise OutputExistsError(f"{target}: refusing to write there: the output {what} the input {item}")
    if path.is_file() and not force and not written_by_library(path):
        raise OutputExistsError(f"{target}: exists and was not written by soundanomaly; pass --force to replace it")
    replaceable = force or (path.is_file() and written_by_library(path))  # an export written before the ledger
    with _safefiles.atomic_file(target, "wb", inputs=inputs, overwrite=replaceable) as handle:
        handle.write(data)
    return path
