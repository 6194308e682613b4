"""Reading and validating clips.

MIMII clips are 8-channel, 16 kHz, 16-bit WAVE_FORMAT_EXTENSIBLE files, which
the standard-library :mod:`wave` module cannot read; soundfile (libsndfile) can.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import soundfile as sf

from soundanomaly.exceptions import AudioError, MissingDependencyError, ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = ["Channel", "decode", "is_url", "load", "read_bytes"]

#: Which channel to return: an index, ``"mean"`` (mono down-mix) or ``None`` (all).
Channel: TypeAlias = int | Literal["mean"] | None


def is_url(path: PathLike) -> bool:
    """True for fsspec URLs such as ``s3://bucket/key.wav`` (``file://`` included).

    Examples
    --------
    >>> is_url("s3://bucket/fan.wav"), is_url("data/fan.wav")
    (True, False)

    """
    return "://" in os.fspath(path)


def read_bytes(path: PathLike) -> bytes:
    """Read a local file or an fsspec URL into memory, raising :class:`AudioError`.

    Examples
    --------
    >>> read_bytes("missing.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: missing.wav: file not found

    """
    name = os.fspath(path)
    if is_url(name):
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - fsspec ships with the aws extra
            raise MissingDependencyError("fsspec", "aws", f"reading {name}") from exc
        try:
            with fsspec.open(name, "rb") as handle:
                return bytes(handle.read())
        except FileNotFoundError as exc:
            raise AudioError(name, "file not found") from exc
        except ImportError as exc:
            raise MissingDependencyError("s3fs", "aws", f"reading {name}") from exc
    try:
        with open(name, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise AudioError(name, "file not found") from exc
    except IsADirectoryError as exc:
        raise AudioError(name, "is a directory, not an audio file") from exc


def load(
    path: PathLike,
    *,
    channel: Channel = 0,
    sr: int | None = None,
) -> tuple[FloatArray, int]:
    """Load one clip as float32 samples in [-1, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A local file or an fsspec URL (``s3://`` needs ``soundanomaly[aws]``).
    channel : int, ``"mean"`` or None, default 0
        Microphone to return (MIMII has 8; the reference recipe uses 0),
        ``"mean"`` to down-mix all channels, or ``None`` for every channel.
    sr : int > 0 or None, default None
        Resample to this rate (Hz) with soxr; ``None`` keeps the file's rate.

    Returns
    -------
    signal : np.ndarray [shape=(n_samples,) or (n_channels, n_samples)], float32
    sr : int
        Sample rate of ``signal`` in Hz.

    Raises
    ------
    AudioError
        Naming the file: missing, not audio, truncated, zero length, NaN/inf
        samples, or ``channel`` out of range.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> sf.write("tone.wav", np.zeros((1600, 2)), 16000)
    >>> signal, rate = load("tone.wav", channel=1)
    >>> signal.shape, signal.dtype, rate
    ((1600,), dtype('float32'), 16000)
    """
    name = os.fspath(path)
    return decode(read_bytes(name), name=name, channel=channel, sr=sr)


def decode(
    data: bytes, *, name: str = "<bytes>", channel: Channel = 0, sr: int | None = None
) -> tuple[FloatArray, int]:
    """Decode an in-memory audio file; same contract as :func:`load`.

    ``name`` is only used in error messages.

    Examples
    --------
    >>> import io, numpy as np, soundfile as sf
    >>> buffer = io.BytesIO()
    >>> sf.write(buffer, np.zeros((800, 8)), 16000, format="WAV", subtype="PCM_16")
    >>> signal, rate = decode(buffer.getvalue(), name="in-memory", channel=3)
    >>> signal.shape, rate
    ((800,), 16000)

    """
    if sr is not None and (not isinstance(sr, int) or sr <= 0):
        raise ParameterError(f"sr must be a positive int or None, got {sr!r}")
    if not (channel is None or channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool))):
        raise ParameterError(f"channel must be an int, 'mean' or None, got {channel!r}")
    if not data:
        raise AudioError(name, "file is empty (0 bytes)")
    fast = _decode_pcm16_wav(name, data, channel, sr)
    if fast is not None:
        return fast
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(name, f"not a readable audio file ({reason})") from exc
    if samples.shape[0] == 0:
        raise AudioError(name, "audio has zero length (no samples)")
    if not np.isfinite(samples).all():
        raise AudioError(name, "audio contains NaN or infinite samples")
    n_channels = samples.shape[1]
    signal: FloatArray
    if channel is None:
        signal = np.ascontiguousarray(samples.T)
    elif channel == "mean":
        signal = samples.mean(axis=1, dtype=np.float32)
    else:
        assert isinstance(channel, int)
        if not -n_channels <= channel < n_channels:
            raise AudioError(name, f"channel {channel} out of range: the file has {n_channels} channel(s)")
        signal = np.ascontiguousarray(samples[:, channel])
    if sr is not None and sr != rate:
        import soxr

        signal = np.asarray(soxr.resample(signal.T, rate, sr).T, dtype=np.float32)
        rate = sr
    return signal, int(rate)


_PCM = 1
_EXTENSIBLE = 0xFFFE
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_PCM16_SCALE = 1.0 / 32768.0  # int16 sample to float in [-1, 1); a power of two, so scaling is exact


def _decode_pcm16_wav(name: str, data: bytes, channel: Channel, sr: int | None) -> tuple[FloatArray, int] | None:
    """Decode only the requested channel of a 16-bit PCM WAV, straight from its bytes.

    MIMII clips hold 8 interleaved channels; the recipe uses one. Converting
    only that one is several times faster than decoding all eight, and gives
    the same float32 values as libsndfile (``sample / 32768``, exact).
    Returns ``None`` for anything else (other formats go through soundfile),
    after checking that a RIFF/WAVE file is not truncated.
    """
    found = _pcm16_frames(name, data)
    if found is None:
        return None
    frames, rate = found
    if sr is not None and sr != rate:
        return None  # resampling goes through the general path
    signal: FloatArray
    if channel is None:
        signal = np.multiply(frames.T, _PCM16_SCALE, dtype=np.float32)
    elif channel == "mean":
        signal = (frames.astype(np.float32) * _PCM16_SCALE).mean(axis=1, dtype=np.float32)
    else:
        signal = np.multiply(_pick(name, frames, channel), _PCM16_SCALE, dtype=np.float32)  # one pass, one array
    return signal, rate


def _decode_samples(data: bytes, *, name: str = "<bytes>", channel: Channel = 0) -> tuple[npt.NDArray[Any], float, int]:
    """Decode one channel without converting it: ``(samples, gain, sr)``, signal = ``samples * gain``.

    For a 16-bit PCM WAV and an int ``channel`` this is a read-only int16 view
    of the file's bytes (strided when the file has several channels) with
    ``gain = 1 / 32768``; consumers fold the gain into a later multiplication
    (the log-mel window) and save a full pass over the clip. Anything else is
    :func:`decode`'s float32 signal with ``gain = 1.0``. Errors as in :func:`decode`.
    """
    if isinstance(channel, int) and not isinstance(channel, bool) and data:
        found = _pcm16_frames(name, data)
        if found is not None:
            return _pick(name, found[0], channel), _PCM16_SCALE, found[1]
    signal, rate = decode(data, name=name, channel=channel)
    return signal, 1.0, rate


def _pick(name: str, frames: npt.NDArray[np.int16], channel: int) -> npt.NDArray[np.int16]:
    n_channels = frames.shape[1]
    if not -n_channels <= channel < n_channels:
        raise AudioError(name, f"channel {channel} out of range: the file has {n_channels} channel(s)")
    return frames[:, channel]


def _pcm16_frames(name: str, data: bytes) -> tuple[npt.NDArray[np.int16], int] | None:
    """``(frames [n_frames, n_channels] int16 view, rate)`` of a 16-bit PCM WAV, else None.

    Raises :class:`AudioError` for a truncated RIFF/WAVE file or one without samples.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        body = offset + 8
        if chunk_id == b"fmt " and size >= 16:
            tag, n_channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            if tag == _EXTENSIBLE and size >= 40 and data[body + 26 : body + 40] == _PCM_GUID_TAIL:
                (tag,) = struct.unpack("<H", data[body + 24 : body + 26])
            fmt = (tag, n_channels, rate, bits if block_align == n_channels * bits // 8 else -1)
        elif chunk_id == b"data":
            available = len(data) - body
            if size != 0xFFFFFFFF and available < size:
                raise AudioError(
                    name, f"truncated WAV file: header declares {size} data bytes, only {available} present"
                )
            if fmt is None or fmt[0] != _PCM or fmt[3] != 16 or fmt[1] < 1 or size == 0xFFFFFFFF:
                return None
            _, n_channels, rate, _ = fmt
            n_frames = size // (2 * n_channels)
            if n_frames == 0:
                raise AudioError(name, "audio has zero length (no samples)")
            frames = np.frombuffer(data, dtype="<i2", count=n_frames * n_channels, offset=body)
            return frames.reshape(n_frames, n_channels), int(rate)
        offset = body + size + (size & 1)
    raise AudioError(name, "truncated WAV file: no data chunk")
