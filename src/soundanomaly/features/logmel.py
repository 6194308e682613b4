"""Log-mel frame features: the reference recipe, computed fast.

Reference recipe (AWS "sound anomaly detection" blog, DCASE 2020 baseline):
mel power spectrogram (librosa defaults: Hann window, centred frames with zero
padding, Slaney mel filters), ``power_to_db(ref=np.max)`` (``top_db=80``), then
``frames`` consecutive frames concatenated into one vector.

This implementation frames the signal with strides (PCM-16 samples straight
from the file's bytes), runs one real FFT over all frames
(:func:`scipy.fft.rfft`) and applies a cached mel basis as a few block matrix
products. It matches librosa's result to float32 precision (see the parity test)
without librosa's per-call overhead or its first-call numba compilation.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.signal

from soundanomaly._validation import validate_params
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.features.base import (
    SPECTRAL_LIMITS,
    BaseFeatureExtractor,
    check_rate_matches,
    check_sample_rate,
)
from soundanomaly.typing import FloatArray

__all__ = [
    "AMIN",
    "LogMelFrames",
    "hann_window",
    "log_mel_by_frame",
    "log_mel_spectrogram",
    "mel_basis",
    "mel_db",
    "power_spectrum",
]

#: Floor of the mel power before the logarithm (librosa's ``amin``): silence gives -100 dB, never -inf.
AMIN = 1e-10
_AMIN = AMIN


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> FloatArray:
    """Slaney-normalised mel filterbank, shape ``(n_mels, 1 + n_fft // 2)``, float32.

    Identical to :func:`librosa.filters.mel` with its defaults (it is computed
    by it, once per parameter set, and cached).
    """
    import librosa

    basis = np.asarray(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax), dtype=np.float32)
    basis.setflags(write=False)
    return basis


def log_mel_spectrogram(
    signal: FloatArray,
    sr: int,
    *,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 512,
    top_db: float | None = 80.0,
) -> FloatArray:
    """Log-mel spectrogram in dB relative to the clip's loudest bin.

    Equivalent to ``librosa.power_to_db(librosa.feature.melspectrogram(y=signal,
    sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels), ref=np.max)``.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)], float32
    sr : int > 0
        Sample rate in Hz.
    n_mels, n_fft, hop_length : int > 0
    top_db : float >= 0 or None, default 80
        Floor the result at ``max - top_db`` dB, as librosa does.

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_samples // hop_length)], float32
        Values in dB, at most 0 (the loudest bin). An all-silent clip gives
        all zeros, never NaN or -inf.

    Examples
    --------
    >>> import numpy as np
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    >>> log_mel_spectrogram(tone, 16000).shape
    (64, 32)
    """
    return np.ascontiguousarray(log_mel_by_frame(signal, sr, n_mels, n_fft, hop_length, top_db).T)


def log_mel_by_frame(
    samples: npt.NDArray[Any],
    sr: int,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    top_db: float | None,
    gain: float = 1.0,
) -> FloatArray:
    """:func:`log_mel_spectrogram` laid out ``(n_frames, n_mels)``, the order the frames are stacked in.

    The signal is ``samples * gain``: ``samples`` may be float32 or the int16
    view :func:`soundanomaly.audio.decode_samples` gives, with the gain folded
    into the window (a power of two, so the result is bit-identical).

    Frames that lie inside the clip are windowed straight from ``samples``
    (no padded copy of the clip); only the few frames that reach into the
    centring pad are built from zero-padded copies.

    Examples
    --------
    >>> import numpy as np
    >>> log_mel_by_frame(np.zeros(16000, np.float32), 16000, 64, 1024, 512, 80.0).shape
    (32, 64)
    """
    if samples.dtype not in (np.float32, np.int16):
        samples = np.asarray(samples, dtype=np.float32)
    n, pad = len(samples), n_fft // 2
    n_frames = 1 + n // hop_length
    windowed, power = _workspace(n_frames, n_fft)
    window = _window(n_fft, float(gain))
    # Frame i covers samples[i * hop - pad : i * hop - pad + n_fft]; frames first..last need no padding.
    first = -(-pad // hop_length)
    last = min((n + pad - n_fft) // hop_length, n_frames - 1)
    if first <= last:
        step = samples.strides[0]
        inside = np.lib.stride_tricks.as_strided(  # frames first..last, overlapping views of samples
            samples[first * hop_length - pad :],
            shape=(last - first + 1, n_fft),
            strides=(hop_length * step, step),
            writeable=False,
        )
        np.multiply(inside, window, out=windowed[first : last + 1])
        edges = [*range(first), *range(last + 1, n_frames)]
    else:
        edges = list(range(n_frames))
    frame = np.empty(n_fft, dtype=np.float32)
    for i in edges:
        lo = i * hop_length - pad
        frame[:] = 0.0
        frame[max(0, -lo) : max(0, min(n_fft, n - lo))] = samples[max(0, lo) : max(0, lo + n_fft)]
        np.multiply(frame, window, out=windowed[i])
    db = mel_db(power_spectrum(windowed, out=power), sr=sr, n_mels=n_mels)  # small, returned
    db -= db.max()
    if top_db is not None:
        np.maximum(db, -top_db, out=db)
    return db


def hann_window(n_fft: int, *, gain: float = 1.0) -> FloatArray:
    """Periodic Hann window of ``n_fft`` samples (librosa's STFT window), float32, times ``gain``; read-only, cached.

    Examples
    --------
    >>> w = hann_window(1024)
    >>> w.shape, float(w[0]), float(w[512])
    ((1024,), 0.0, 1.0)
    """
    return _window(int(n_fft), float(gain))


def power_spectrum(frames: FloatArray, *, out: FloatArray | None = None) -> FloatArray:
    """Power spectrum ``|rfft(frame)|^2`` of each windowed frame, in float32.

    The first step of :func:`log_mel_spectrogram`, for frames already cut and
    windowed (e.g. by a streaming front end that keeps its own frames).

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_fft)], float32
        Windowed frames (multiplied by :func:`hann_window`).
    out : np.ndarray [shape=(n_frames, 1 + n_fft // 2)], float32, optional
        Where to write the result.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1 + n_fft // 2)], float32

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.ones((2, 8), dtype=np.float32)
    >>> power_spectrum(frames)[:, :2].tolist()
    [[64.0, 0.0], [64.0, 0.0]]
    """
    spectrum = scipy.fft.rfft(frames, axis=-1)
    squares = spectrum.view(np.float32)  # re, im interleaved
    np.square(squares, out=squares)
    power: FloatArray = np.add(squares[:, 0::2], squares[:, 1::2], out=out)
    return power


def mel_db(power: FloatArray, *, sr: int, n_mels: int, amin: float = AMIN, out: FloatArray | None = None) -> FloatArray:
    """Un-referenced mel power in dB, ``10 log10(max(power @ mel_basis.T, amin))``, of a power spectrogram.

    :func:`log_mel_spectrogram` is this, less its maximum (``ref=np.max``),
    floored at ``-top_db``; a caller that keeps frames from one window to the
    next (the monitor's front end) applies the reference itself.

    Parameters
    ----------
    power : np.ndarray [shape=(n_frames, 1 + n_fft // 2)], float32
        Power spectrum per frame (:func:`power_spectrum`).
    sr : int > 0
        Sample rate in Hz.
    n_mels : int > 0
        Mel bands.
    amin : float > 0, default 1e-10
        Floor of the mel power (:data:`AMIN`).
    out : np.ndarray [shape=(n_frames, n_mels)], float32, optional
        Where to write the result.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mels)], float32
        dB values (not referenced to the loudest bin).

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.zeros((3, 1024), dtype=np.float32)
    >>> round(float(mel_db(power_spectrum(frames), sr=16000, n_mels=64).max()), 3)  # silence: the amin floor
    -100.0
    """
    n_fft = 2 * (power.shape[-1] - 1)
    db = np.empty((len(power), n_mels), dtype=np.float32) if out is None else out
    for bands, bins, block in _mel_blocks(sr, n_fft, n_mels):
        np.matmul(power[:, bins], block, out=db[:, bands])
    np.maximum(db, _floor(len(db), n_mels, float(amin)), out=db)
    np.log10(db, out=db)
    db *= 10.0
    return db


_FLOORS: dict[tuple[int, float], FloatArray] = {}


def _floor(n: int, n_mels: int, amin: float) -> FloatArray:
    """A read-only ``(n, n_mels)`` array of ``amin`` (``np.maximum`` against an array runs several times faster
    than against a scalar at these sizes); one per parameter pair, grown as needed."""
    floor = _FLOORS.get((n_mels, amin))
    if floor is None or len(floor) < n:
        floor = np.full((max(n, 64), n_mels), amin, dtype=np.float32)
        floor.setflags(write=False)
        if len(_FLOORS) >= 16:  # a bounded cache, whatever parameters callers try
            _FLOORS.clear()
        _FLOORS[(n_mels, amin)] = floor
    return floor[:n]


@functools.lru_cache(maxsize=16)
def _window(n_fft: int, gain: float) -> FloatArray:
    """Periodic Hann window (librosa's) in float32, times ``gain``."""
    window = np.asarray(scipy.signal.get_window("hann", n_fft, fftbins=True), dtype=np.float32) * np.float32(gain)
    window.setflags(write=False)
    return window


_BLOCK_OVERHEAD = 1000  # one extra matrix product costs about as much as this many (bin x band) products


@functools.lru_cache(maxsize=16)
def _mel_blocks(sr: int, n_fft: int, n_mels: int) -> tuple[tuple[slice, slice, FloatArray], ...]:
    """The mel product ``power @ basis.T`` as a few products of diagonal blocks.

    Each Slaney filter covers a handful of neighbouring FFT bins, so the dense
    ``(n_bins, n_mels)`` product is mostly multiplications by zero. Consecutive
    bands are grouped (an exact dynamic programme over the band ranges, which
    trades the bins a group spans against the cost of one more product), and
    each group multiplies only the bins it covers. Same non-zero terms; for the
    recipe's 64 mels, 5 blocks and a fifth of the dense product's arithmetic.
    Returns ``(bands, bins, block)`` triples with ``block = basis[bands, bins].T``.
    """
    basis = mel_basis(sr, n_fft, n_mels)
    lo = np.zeros(n_mels, dtype=np.int64)
    hi = np.zeros(n_mels, dtype=np.int64)
    for band, row in enumerate(basis):
        nonzero = np.flatnonzero(row)
        if len(nonzero):
            lo[band], hi[band] = nonzero[0], nonzero[-1] + 1
        else:  # an empty filter (too many mels for n_fft) spans nothing, wherever its neighbours are
            lo[band], hi[band] = (lo[band - 1], lo[band - 1]) if band else (0, 0)
    cost = [0.0] + [np.inf] * n_mels  # cost[j]: best split of bands [0, j)
    start = [0] * (n_mels + 1)
    for j in range(1, n_mels + 1):
        low, high = int(lo[j - 1]), int(hi[j - 1])
        for i in range(j - 1, -1, -1):  # group = bands i..j-1, widened one band at a time
            low, high = min(low, int(lo[i])), max(high, int(hi[i]))
            candidate = cost[i] + max(0, high - low) * (j - i) + _BLOCK_OVERHEAD
            if candidate < cost[j]:
                cost[j], start[j] = candidate, i
    blocks = []
    j = n_mels
    while j > 0:
        i = start[j]
        first, stop = int(lo[i:j].min()), max(int(lo[i:j].min()), int(hi[i:j].max()))
        block = np.ascontiguousarray(basis[i:j, first:stop].T)
        block.setflags(write=False)
        blocks.append((slice(i, j), slice(first, stop), block))
        j = i
    return tuple(reversed(blocks))


_WORKSPACES = threading.local()


def _workspace(n_frames: int, n_fft: int) -> tuple[FloatArray, FloatArray]:
    """Per-thread scratch arrays (windowed frames, power), reused while the clip length stays the same.

    Fresh multi-megabyte temporaries are page-faulted in by the kernel on
    every clip; reusing them makes the log-mel step markedly cheaper.
    """
    key = (n_frames, n_fft)
    cached: tuple[tuple[int, int], tuple[FloatArray, FloatArray]] | None = getattr(_WORKSPACES, "arrays", None)
    if cached is None or cached[0] != key:
        arrays = (
            np.empty((n_frames, n_fft), dtype=np.float32),
            np.empty((n_frames, 1 + n_fft // 2), dtype=np.float32),
        )
        cached = (key, arrays)
        _WORKSPACES.arrays = cached
    return cached[1]


class LogMelFrames(BaseFeatureExtractor):
    """Log-mel spectrogram frames, ``frames`` consecutive ones per vector.

    For a clip of ``n_samples`` this gives ``n_windows = 1 + n_samples //
    hop_length - frames + 1`` vectors of ``n_mels * frames`` values: vector
    ``i`` is frames ``i .. i + frames - 1`` of the log-mel spectrogram
    concatenated (frame-major). A 10 s, 16 kHz MIMII clip gives ``(309, 320)``.

    Parameters
    ----------
    n_mels : int > 0, default 64
        Mel bands per frame.
    frames : int > 0, default 5
        Consecutive frames per feature vector (context of
        ``(frames - 1) * hop_length + n_fft`` samples, 160 ms at 16 kHz).
    n_fft : int > 0, default 1024
        FFT size in samples (64 ms at 16 kHz).
    hop_length : int > 0, default 512
        Samples between frames (32 ms at 16 kHz).
    sr : int, default 16000
        Sample rate (Hz) the features are computed at; part of :meth:`params`,
        so it is saved with a model (a model saved without it means 16000).
        :meth:`extract` and :meth:`transform_file` resample a file recorded
        at a higher rate to ``sr`` with soxr and refuse one recorded at a lower
        rate (its upper band is missing), so a model never scores a clip at a
        rate it was not made for. :meth:`transform` refuses other rates.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.standard_normal(160000).astype(np.float32) * 0.1
    >>> LogMelFrames().transform(noise, 16000).shape
    (309, 320)
    """

    def __init__(
        self, *, n_mels: int = 64, frames: int = 5, n_fft: int = 1024, hop_length: int = 512, sr: int = 16000
    ) -> None:
        validate_params({"n_mels": n_mels, "frames": frames, "n_fft": n_fft, "hop_length": hop_length}, SPECTRAL_LIMITS)
        self.n_mels = int(n_mels)
        self.frames = int(frames)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.sr = check_sample_rate(sr)

    @property
    def n_features(self) -> int:
        """Width of one vector: ``n_mels * frames``."""
        return self.n_mels * self.frames

    @property
    def min_samples(self) -> int:
        """Shortest clip (in samples) that yields at least one vector."""
        return (self.frames - 1) * self.hop_length

    def params(self) -> dict[str, Any]:
        """Parameters that define the features (JSON-serialisable)."""
        return {
            "name": "LogMelFrames",
            "n_mels": self.n_mels,
            "frames": self.frames,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "sr": self.sr,
        }

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        """Feature vectors of one mono clip.

        Parameters
        ----------
        signal : np.ndarray [shape=(n_samples,)], float
        sr : int
            Sample rate in Hz; must equal :attr:`sr` (resample first, or use
            :meth:`transform_file` / :meth:`extract`, which do).

        Returns
        -------
        np.ndarray [shape=(n_windows, n_mels * frames)], float32

        Raises
        ------
        AudioError
            If the clip is shorter than :attr:`min_samples`.
        ParameterError
            If ``sr`` differs from :attr:`sr`.
        """
        check_rate_matches(sr, self.sr, type(self).__name__)
        signal = np.asarray(signal)
        if signal.ndim != 1:
            raise ParameterError(f"signal must be mono (1-D), got shape {signal.shape}")
        if len(signal) < self.min_samples:
            raise AudioError(
                "<signal>",
                f"clip too short: {len(signal)} samples, LogMelFrames needs at least {self.min_samples} "
                f"({self.frames} frames of hop {self.hop_length})",
            )
        db = log_mel_by_frame(signal, sr, self.n_mels, self.n_fft, self.hop_length, 80.0)
        return stack_frames(db, self.frames)

    def _output_shape(self, n_samples: int) -> tuple[int, int] | None:
        if n_samples < self.min_samples:
            return None  # transform() raises the clear "too short" error
        return 1 + n_samples // self.hop_length - self.frames + 1, self.n_features

    def _transform_into(self, samples: npt.NDArray[Any], gain: float, sr: int, out: FloatArray) -> None:
        db = log_mel_by_frame(samples, sr, self.n_mels, self.n_fft, self.hop_length, 80.0, gain)
        stack_frames(db, self.frames, out=out)


def stack_frames(frames_by_mel: npt.NDArray[np.float32], frames: int, *, out: FloatArray | None = None) -> FloatArray:
    """Concatenate ``frames`` consecutive rows: ``(n_frames, n_mels)`` → ``(n_windows, frames * n_mels)``.

    Writes into ``out`` (shape ``(n_windows, frames * n_mels)``) when given.
    """
    n_frames, n_mels = frames_by_mel.shape
    n_windows = n_frames - frames + 1
    rows, cols = frames_by_mel.strides
    view = np.lib.stride_tricks.as_strided(  # (n_windows, frames, n_mels): window i is rows i .. i + frames - 1
        frames_by_mel, shape=(n_windows, frames, n_mels), strides=(rows, rows, cols), writeable=False
    )
    if out is None:
        out = np.empty((n_windows, frames * n_mels), dtype=np.float32)
    np.copyto(out.reshape(n_windows, frames, n_mels), view)
    return out


_log_mel_by_frame = log_mel_by_frame  # the former private name (kept for existing callers)
