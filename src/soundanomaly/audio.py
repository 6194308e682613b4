"""Reading and validating clips.

MIMII clips are 8-channel, 16 kHz, 16-bit WAVE_FORMAT_EXTENSIBLE files, which
the standard-library :mod:`wave` module cannot read; soundfile (libsndfile) can.

What a clip may be (the rest is refused with :class:`AudioError` naming the file):

* a regular local file or an ``s3://`` URL; ``http(s)://`` only inside
  :func:`allow_http` (a URL is never fetched because a file or model named it);
* at most :data:`MAX_CLIP_BYTES` bytes (FIFOs, devices such as ``/dev/zero``
  and larger files are refused before reading), and at most
  :data:`MAX_DECODED_BYTES` once decoded (checked from the header first);
* a sample rate in [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz;
* finite samples of plausible magnitude (float files: at most
  :data:`MAX_ABS_SAMPLE`; larger values overflow the features).
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import soundfile as sf

from soundanomaly._clipfiles import (
    ALLOW_HTTP,
    MAX_CLIP_BYTES,
    allow_http,
    check_regular_mode,
    find_clips,
    fsspec_module,
    is_url,
    read_bytes,
)
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.typing import FloatArray, PathLike

__all__ = [
    "MAX_ABS_SAMPLE",
    "MAX_CLIP_BYTES",
    "MAX_CLIP_SAMPLES",
    "MAX_DECODED_BYTES",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "Channel",
    "DecodedSamples",
    "allow_http",
    "check_rate",
    "check_regular_mode",
    "check_samples",
    "decode",
    "decode_samples",
    "find_clips",
    "is_url",
    "load",
    "read_bytes",
]

_LOG = logging.getLogger("soundanomaly.audio")
_ALLOW_HTTP, _fsspec = ALLOW_HTTP, fsspec_module  # the names earlier code imports from here
for _reexported in (allow_http, check_regular_mode, find_clips, is_url, read_bytes):
    _reexported.__module__ = __name__  # documented (and pickled) as soundanomaly.audio's

#: Which channel to return: an index, ``"mean"`` (mono down-mix) or ``None`` (all).
Channel: TypeAlias = int | Literal["mean"] | None

#: Most memory (bytes) one decoded clip may take as float32, all channels (compressed files expand): 4 GiB.
MAX_DECODED_BYTES = 4 * 1024**3
#: Most samples per channel in one clip: 2**26 (70 min at 16 kHz). Scoring a clip peaks at about 35 bytes per
#: sample (decoded signal, spectrogram, feature vectors; a 10-minute mono 16 kHz WAV of 19 MB peaked at 459 MB,
#: the process included), so about 2.4 GB at this limit; longer recordings are scored in windows, in flat
#: memory, by :func:`soundanomaly.streaming.scan` (``soundanomaly scan``).
MAX_CLIP_SAMPLES = 2**26
#: Lowest and highest sample rates (Hz) accepted in a file header.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
#: Largest sample magnitude accepted from a float file (nominal range is [-1, 1]).
MAX_ABS_SAMPLE = 65536.0


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
    _check_args(channel, sr)
    if not data:
        raise AudioError(name, "file is empty (0 bytes)")
    fast = _decode_pcm16_wav(name, data, channel, sr)
    if fast is not None:
        return fast
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate = int(handle.samplerate)
            _check_rate(name, rate)
            _check_length(name, int(handle.frames), int(handle.channels), rate)
            samples = _read_all(handle)
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, AudioError):
            raise
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(name, f"not a readable audio file ({reason})") from exc
    if samples.shape[0] == 0:
        raise AudioError(name, "audio has zero length (no samples)")
    check_samples(name, samples)
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
        signal = _resample(signal, int(rate), sr, name)
        rate = sr
    return signal, int(rate)


def _read_all(handle: sf.SoundFile) -> npt.NDArray[np.float32]:
    """Every frame as float32 ``(frames, channels)``; in blocks for formats libsndfile cannot seek (GSM 6.10)."""
    if handle.seekable():
        return np.asarray(handle.read(dtype="float32", always_2d=True), dtype=np.float32)
    blocks = []
    while True:
        block = handle.read(1 << 16, dtype="float32", always_2d=True)
        if not len(block):
            break
        blocks.append(block)
    if not blocks:
        return np.zeros((0, int(handle.channels)), dtype=np.float32)
    return np.concatenate(blocks).astype(np.float32, copy=False)


def _check_length(name: str, frames: int, channels: int, rate: int) -> None:
    """Refuse, from the header, a clip too long to score in memory (see :data:`MAX_CLIP_SAMPLES`)."""
    needed = frames * channels * 4
    if needed > MAX_DECODED_BYTES:
        raise AudioError(name, f"decoded audio would take {needed} bytes (limit {MAX_DECODED_BYTES}): too long a clip")
    if frames > MAX_CLIP_SAMPLES:
        raise AudioError(
            name,
            f"{frames / rate / 60:.0f} min of audio is too long to score as one clip (limit {MAX_CLIP_SAMPLES} "
            f"samples, {MAX_CLIP_SAMPLES / rate / 60:.0f} min at {rate} Hz): score it in windows with "
            "'soundanomaly scan' (soundanomaly.streaming.scan), in flat memory",
        )


def _check_args(channel: Channel, sr: int | None) -> None:
    if sr is not None and (
        not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE
    ):
        raise ParameterError(f"sr must be an int in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz or None, got {sr!r}")
    if not (channel is None or channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool))):
        raise ParameterError(f"channel must be an int, 'mean' or None, got {channel!r}")


def check_rate(name: str, rate: Any, *, target_sr: int | None = None) -> int:
    """The one sample-rate rule of every path (clips, features, monitor, scan, raw PCM): the rate to work at.

    A rate outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz is
    refused. When the model's features are computed at ``target_sr``, audio
    recorded above it is resampled down to it (the returned rate), and audio
    recorded below it is refused: its band above ``rate / 2`` is missing, so
    its features are not comparable (upsampling would hide that).

    Parameters
    ----------
    name : str
        The file (or ``"<stdin>"``) named in the error.
    rate : int
        The audio's own sample rate in Hz (a file header, ``--rate``).
    target_sr : int or None, default None
        The rate the model's features use; ``None``: any accepted rate is used as is.

    Returns
    -------
    int
        ``target_sr`` when given, else ``rate``.

    Raises
    ------
    AudioError
        Naming ``name``: an implausible rate, or one below ``target_sr``.

    Examples
    --------
    >>> check_rate("a.wav", 44100, target_sr=16000)
    16000
    >>> check_rate("a.wav", 8000, target_sr=16000)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: a.wav: recorded at 8000 Hz, below the 16000 Hz the model's features use: its band above 4000 Hz is missing, so it cannot be scored like a 16000 Hz clip
    """
    if (
        not isinstance(rate, (int, np.integer))
        or isinstance(rate, bool)
        or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
    ):
        raise AudioError(name, f"implausible sample rate {rate} Hz (accepted: {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)")
    if target_sr is None:
        return int(rate)
    if rate < target_sr:
        raise AudioError(
            name,
            f"recorded at {rate} Hz, below the {target_sr} Hz the model's features use: its band above "
            f"{int(rate) // 2} Hz is missing, so it cannot be scored like a {target_sr} Hz clip",
        )
    return int(target_sr)


def check_samples(name: str, samples: npt.NDArray[Any]) -> None:
    """The one rule for sample values of every path: finite, and at most :data:`MAX_ABS_SAMPLE` in magnitude.

    NaN or infinite samples, and finite ones so large that the features
    overflow (``1e19`` squared is past float32's range: NaN windows), are
    refused; a NaN never turns into a "normal" score. Integer samples always pass.

    Raises
    ------
    AudioError
        Naming ``name``.

    Examples
    --------
    >>> check_samples("a.wav", np.array([0.5, -0.25], dtype=np.float32))
    >>> check_samples("a.wav", np.array([1e19], dtype=np.float32))
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: a.wav: samples of absurd magnitude (peak 1e+19, nominal range [-1, 1]; limit 65536)
    """
    if samples.dtype.kind != "f" or samples.size == 0:
        return
    low, high = float(samples.min()), float(samples.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise AudioError(name, "audio contains NaN or infinite samples")
    peak = max(-low, high)
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            name, f"samples of absurd magnitude (peak {peak:.3g}, nominal range [-1, 1]; limit {MAX_ABS_SAMPLE:g})"
        )


def _check_rate(name: str, rate: int) -> None:
    check_rate(name, rate)


def _resample(signal: FloatArray, rate: int, sr: int, name: str) -> FloatArray:
    """``signal`` (``(n,)`` or ``(channels, n)``) from ``rate`` to ``sr`` Hz with soxr (high quality)."""
    import soxr

    _LOG.debug("%s: resampling from %d Hz to %d Hz", name, rate, sr)
    resampled = np.asarray(soxr.resample(signal.T, rate, sr, quality="HQ").T, dtype=np.float32)
    if resampled.shape[-1] == 0:
        raise AudioError(name, f"audio too short to resample from {rate} Hz to {sr} Hz")
    return np.ascontiguousarray(resampled)


_PCM = 1
_EXTENSIBLE = 0xFFFE
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_PCM16_SCALE = 1.0 / 32768.0  # int16 sample to float in [-1, 1); a power of two, so scaling is exact
_KNOWN_CHUNKS = (b"fmt ", b"data", b"fact", b"LIST")


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
    signal: FloatArray
    if channel is None:
        signal = np.multiply(frames.T, _PCM16_SCALE, dtype=np.float32)
    elif channel == "mean":
        signal = (frames.astype(np.float32) * _PCM16_SCALE).mean(axis=1, dtype=np.float32)
    else:
        signal = np.multiply(_pick(name, frames, channel), _PCM16_SCALE, dtype=np.float32)  # one pass, one array
    if sr is not None and sr != rate:
        return _resample(signal, rate, sr, name), sr
    return signal, rate


class DecodedSamples(NamedTuple):
    """One decoded channel: the signal is ``samples * gain`` at ``sr`` Hz; ``source_sr`` is the file's own rate.

    Examples
    --------
    >>> import numpy as np
    >>> DecodedSamples(np.zeros(4, np.int16), 1 / 32768, 16000, 16000).source_sr
    16000
    """

    samples: npt.NDArray[Any]
    gain: float
    sr: int
    source_sr: int


def decode_samples(
    data: bytes, *, name: str = "<bytes>", channel: Channel = 0, sr: int | None = None, upsample: bool = True
) -> DecodedSamples:
    """Decode one channel without converting it: signal = ``samples * gain`` (what feature extractors read).

    For a 16-bit PCM WAV at rate ``sr`` (or any rate when ``sr`` is None) and
    an int ``channel`` this is a read-only int16 view of the file's bytes
    (strided when the file has several channels) with ``gain = 1 / 32768``;
    consumers fold the gain into a later multiplication (the log-mel window)
    and save a full pass over the clip. Anything else is :func:`decode`'s
    float32 signal (resampled to ``sr``) with ``gain = 1.0``. With
    ``upsample=False`` a file recorded below ``sr`` is refused: its upper band
    is missing, and features made from it are not comparable. ``source_sr``
    is the rate the file was recorded at, before any resampling. Errors as in :func:`decode`.

    Examples
    --------
    >>> import io, numpy as np, soundfile as sf
    >>> buffer = io.BytesIO()
    >>> sf.write(buffer, np.zeros(4800, np.float32), 48000, format="WAV", subtype="FLOAT")
    >>> decoded = decode_samples(buffer.getvalue(), sr=16000)
    >>> len(decoded.samples), decoded.sr, decoded.source_sr
    (1600, 16000, 48000)
    """
    _check_args(channel, sr)
    if isinstance(channel, int) and data:
        found = _pcm16_frames(name, data)
        if found is not None and (sr is None or found[1] == sr):
            return DecodedSamples(_pick(name, found[0], channel), _PCM16_SCALE, found[1], found[1])
    signal, rate = decode(data, name=name, channel=channel)
    source = rate
    if sr is not None and rate != sr:
        if not upsample:
            check_rate(name, rate, target_sr=sr)
        signal, rate = _resample(signal, rate, sr, name), sr
    return DecodedSamples(signal, 1.0, rate, source)


def _decode_samples(
    data: bytes, *, name: str = "<bytes>", channel: Channel = 0, sr: int | None = None, upsample: bool = True
) -> tuple[npt.NDArray[Any], float, int]:
    """``(samples, gain, sr)`` of :func:`decode_samples` (kept for existing callers)."""
    samples, gain, rate, _ = decode_samples(data, name=name, channel=channel, sr=sr, upsample=upsample)
    return samples, gain, rate


def _pick(name: str, frames: npt.NDArray[np.int16], channel: int) -> npt.NDArray[np.int16]:
    n_channels = frames.shape[1]
    if not -n_channels <= channel < n_channels:
        raise AudioError(name, f"channel {channel} out of range: the file has {n_channels} channel(s)")
    return frames[:, channel]


def _pcm16_frames(name: str, data: bytes) -> tuple[npt.NDArray[np.int16], int] | None:
    """``(frames [n_frames, n_channels] int16 view, rate)`` of a plain 16-bit PCM WAV, else None.

    Only a file laid out the plain way is taken: a RIFF size that matches the
    file, one complete ``fmt `` chunk (PCM, or EXTENSIBLE with the PCM GUID and
    16 valid bits) before one ``data`` chunk, only ``fact``/``LIST`` chunks
    besides, nothing after the last chunk. Anything else returns None and
    goes through libsndfile, so this path never accepts what libsndfile
    rejects, nor reads a file differently (see ``tests/test_decoder_fuzz.py``).

    Raises :class:`AudioError` for a truncated data chunk, a missing data
    chunk, no samples, or an implausible sample rate.
    """
    size_all = len(data)
    if size_all < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    plain = int.from_bytes(data[4:8], "little") + 8 == size_all
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    found: tuple[int, int] | None = None  # (offset, size) of the data chunk
    while offset + 8 <= size_all:
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        body = offset + 8
        if chunk_id == b"data":
            available = size_all - body
            if size != 0xFFFFFFFF and available < size:
                raise AudioError(
                    name, f"truncated WAV file: header declares {size} data bytes, only {available} present"
                )
            if found is not None:
                plain = False
            found = (body, size)
        elif chunk_id == b"fmt ":
            if fmt is not None or found is not None or size < 16 or body + size > size_all:
                plain = False
            else:
                fmt = _parse_fmt(data[body : body + size])
        elif chunk_id not in _KNOWN_CHUNKS:
            plain = False
        offset = body + size + (size & 1)
    if found is None:
        raise AudioError(name, "truncated WAV file: no data chunk")
    if not plain or offset not in (size_all, size_all + 1) or fmt is None or fmt[0] != _PCM or fmt[3] != 16:
        return None
    body, size = found
    _, n_channels, rate, _ = fmt
    if n_channels < 1 or size == 0xFFFFFFFF:
        return None
    _check_rate(name, rate)
    n_frames = size // (2 * n_channels)
    if n_frames == 0:
        raise AudioError(name, "audio has zero length (no samples)")
    _check_length(name, n_frames, n_channels, rate)
    frames = np.frombuffer(data, dtype="<i2", count=n_frames * n_channels, offset=body)
    return frames.reshape(n_frames, n_channels), int(rate)


def _parse_fmt(chunk: bytes) -> tuple[int, int, int, int]:
    """``(format tag, channels, rate, bits)`` of a ``fmt `` chunk body (>= 16 bytes); bits -1 when inconsistent."""
    tag, n_channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", chunk[:16])
    if tag == _EXTENSIBLE:
        if len(chunk) < 40:
            return (-1, n_channels, rate, -1)
        (valid_bits,) = struct.unpack("<H", chunk[18:20])
        tag = struct.unpack("<H", chunk[24:26])[0] if chunk[26:40] == _PCM_GUID_TAIL else -1
        if valid_bits != bits:
            bits = -1
    elif tag == _PCM and len(chunk) not in (16, 18):
        bits = -1
    return (tag, n_channels, rate, bits if block_align == n_channels * bits // 8 else -1)
