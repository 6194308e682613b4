"""Read a model's ``state.npz`` safely: every array header checked against the expected shapes first.

numpy's ``.npz`` is a zip of ``.npy`` arrays. A model file is data from
elsewhere, so nothing is unpickled, member count and declared sizes are
capped, and each header (dtype, shape) is compared with what the detector
expects *before* its payload is read (the safetensors habit).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly.exceptions import ModelFormatError
from soundanomaly.typing import FloatArray

__all__ = ["MAX_FREE_ELEMENTS", "MAX_STATE_BYTES", "MAX_STATE_MEMBERS", "Spec", "read_state"]

#: Limits when reading ``state.npz``: total declared bytes, elements of an array with a free dimension, members.
MAX_STATE_BYTES = 1 << 30
MAX_FREE_ELEMENTS = 50_000_000
MAX_STATE_MEMBERS = 4096
#: Expected arrays: name -> (shape with None for a free dimension, required).
Spec = dict[str, tuple[tuple[int | None, ...], bool]]


def read_state(
    path: Path,
    spec: Spec | None,
    base_spec: Spec,
) -> dict[str, FloatArray]:
    """The float arrays of ``path``; ``spec`` None accepts any float arrays (``base_spec`` still required)."""
    try:
        if not path.is_file():
            raise ModelFormatError(f"{path}: missing (the model folder is incomplete)")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_STATE_MEMBERS:
                raise ModelFormatError(f"{path}: {len(infos)} arrays; refusing (limit {MAX_STATE_MEMBERS})")
            names = [info.filename for info in infos]
            if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                raise ModelFormatError(f"{path}: members must be unique .npy arrays, got {names[:10]}")
            keys = [n[: -len(".npy")] for n in names]
            expected = spec if spec is not None else base_spec
            if spec is not None:
                unexpected = sorted(set(keys) - set(spec))
                if unexpected:
                    raise ModelFormatError(f"{path}: unexpected array(s) {unexpected}")
            missing = sorted(k for k, (_, required) in expected.items() if required and k not in keys)
            if missing:
                raise ModelFormatError(f"{path}: missing array(s) {missing}")
            headers = []
            total = 0
            for info, key in zip(infos, keys, strict=True):
                with archive.open(info) as handle:
                    shape, fortran, dtype, start = _npy_header(handle, path, key)
                if key in expected:
                    shape_spec: tuple[int | None, ...] | None = expected[key][0]
                else:
                    shape_spec = (None,) * len(shape) if spec is None else None
                nbytes = _check_shape(path, key, shape, shape_spec, dtype, spec is None)
                if info.file_size != start + nbytes:
                    raise ModelFormatError(
                        f"{path}: array {key!r} declares {nbytes} bytes but its member holds {info.file_size - start}"
                    )
                total += nbytes
                if total > MAX_STATE_BYTES:
                    raise ModelFormatError(f"{path}: arrays declare more than {MAX_STATE_BYTES} bytes; refusing")
                headers.append((info, key, shape, fortran, dtype, nbytes))
            state: dict[str, FloatArray] = {}
            for info, key, shape, fortran, dtype, nbytes in headers:
                with archive.open(info) as handle:
                    _npy_header(handle, path, key)
                    payload = handle.read(nbytes)
                    if len(payload) != nbytes or handle.read(1):
                        raise ModelFormatError(f"{path}: array {key!r} is truncated or too long")
                array = np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")
                if not np.isfinite(array).all():
                    raise ModelFormatError(f"{path}: array {key!r} holds NaN or infinite values")
                state[key] = np.array(array, dtype=dtype.newbyteorder("="), order="C")
            return state
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise ModelFormatError(f"{path}: not a valid state archive ({type(exc).__name__}: {exc})") from exc


def _npy_header(handle: Any, path: Path, key: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(handle, max_header_size=10_000)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(handle, max_header_size=10_000)
        else:
            raise ModelFormatError(f"{path}: array {key!r} has unsupported .npy version {version}")
    except ModelFormatError:
        raise
    except Exception as exc:  # untrusted bytes: numpy's parser raises ValueError, SyntaxError, TokenError...
        raise ModelFormatError(f"{path}: array {key!r} has an invalid .npy header ({exc})") from exc
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype), int(handle.tell())


def _check_shape(
    path: Path,
    key: str,
    shape: tuple[int, ...],
    expected: tuple[int | None, ...] | None,
    dtype: np.dtype[Any],
    loose: bool,
) -> int:
    if dtype.hasobject or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise ModelFormatError(f"{path}: array {key!r} has dtype {dtype}; only float32/float64 arrays are read")
    if expected is None or len(shape) != len(expected):
        raise ModelFormatError(f"{path}: array {key!r} has shape {shape}, expected {expected}")
    for size, want in zip(shape, expected, strict=True):
        if want is not None and size != want:
            raise ModelFormatError(f"{path}: array {key!r} has shape {shape}, expected {expected}")
    elements = math.prod(shape)
    if (loose or None in expected) and elements > MAX_FREE_ELEMENTS:
        raise ModelFormatError(
            f"{path}: array {key!r} declares {elements} elements; refusing (limit {MAX_FREE_ELEMENTS})"
        )
    return int(elements * dtype.itemsize)
