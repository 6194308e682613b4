"""Clip statistics: one high-resolution spectral fingerprint per clip (what :class:`ClipStatsDetector` scores).

Stationary machines (fans, pumps) have a steady spectrum: narrow tones at the
shaft and blade-pass rates, hum, a broadband floor. Averaged over a whole clip,
a fine Welch spectrum shows those tones far above a broadband factory
background, even at -6 dB where frame-level features drown.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.signal

from soundanomaly._validation import Interval, validate_params
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, check_rate_matches, check_sample_rate
from soundanomaly.features.logmel import log_mel_by_frame
from soundanomaly.typing import FloatArray

__all__ = ["ClipStatistics"]


@functools.lru_cache(maxsize=16)
def _band_ranges(n_bins: int, sr: int, n_bands: int, fmin: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and end Welch bin of each log-spaced band; a band narrower than a bin takes its nearest bin."""
    freqs = np.linspace(0.0, sr / 2, n_bins)
    edges = np.geomspace(max(fmin, freqs[1]), sr / 2, n_bands + 1)
    lo = np.searchsorted(freqs, edges[:-1], side="left")
    hi = np.searchsorted(freqs, edges[1:], side="left")
    hi[-1] = n_bins
    nearest = np.clip(np.searchsorted(freqs, np.sqrt(edges[:-1] * edges[1:])), 0, n_bins - 1)
    empty = hi <= lo
    lo[empty], hi[empty] = nearest[empty], nearest[empty] + 1
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> FloatArray:
    window = np.asarray(scipy.signal.get_window("hann", n), dtype=np.float32)
    window.setflags(write=False)
    return window


def _welch(x: FloatArray, n_fft: int) -> npt.NDArray[np.float64]:
    """Mean periodogram of half-overlapping Hann segments (Welch's method, unscaled), float32 FFTs."""
    hop = n_fft // 2
    n_segments = 1 + (len(x) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_segments, n_fft), strides=(hop * x.strides[0], x.strides[0]), writeable=False
    )
    segments = frames - frames.mean(axis=1, keepdims=True)  # detrend="constant", as scipy's welch
    segments *= _hann(n_fft)
    spectrum = scipy.fft.rfft(segments, axis=1)
    return np.asarray((spectrum.real**2 + spectrum.imag**2).mean(axis=0), dtype=np.float64)


class ClipStatistics(BaseFeatureExtractor):
    """One vector per clip: a fine log-frequency Welch spectrum plus log-mel mean and spread.

    * ``n_bands`` values: the Welch power spectrum (``n_fft`` samples per
      segment, half overlap, Hann) averaged into
      log-spaced bands from ``fmin`` to Nyquist, in dB, minus the clip's mean
      (so loudness does not matter, the spectrum's shape does). Bands are as
      narrow as the FFT bins at low frequencies, where the machine tones are.
    * ``n_mels`` values: the mean over time of each log-mel band (dB).
    * ``n_mels`` values: the standard deviation over time of each log-mel band
      (bursts, impacts, modulation).

    The output has shape ``(1, n_bands + 2 * n_mels)``: one window per clip.

    Parameters
    ----------
    n_fft : int, default 8192
        Welch segment length in samples (1.95 Hz resolution at 16 kHz).
    n_bands : int, default 1024
        Log-spaced spectrum bands (0.65 % wide each from 10 Hz to 8 kHz).
    fmin : float, default 10
        Lowest band edge in Hz.
    n_mels : int, default 64
        Mel bands of the log-mel statistics (0 leaves them out).
    sr : int, default 16000
        Rate (Hz) the statistics are computed at: a clip recorded above it is
        resampled to it, one recorded below it is refused (the one rule of
        :func:`soundanomaly.audio.check_rate`), so every clip's bands mean the
        same frequencies.

    Examples
    --------
    >>> import numpy as np
    >>> clip = np.random.default_rng(0).normal(size=32000).astype("float32")
    >>> ClipStatistics().transform(clip, 16000).shape
    (1, 1152)
    """

    def __init__(
        self, *, n_fft: int = 8192, n_bands: int = 1024, fmin: float = 10.0, n_mels: int = 64, sr: int = 16000
    ) -> None:
        validate_params(
            {"n_fft": n_fft, "n_bands": n_bands, "fmin": fmin, "n_mels": n_mels},
            {
                "n_fft": [Interval(int, 16, 1 << 20)],
                "n_bands": [Interval(int, 2, 65536)],
                "fmin": [Interval(float, 0, 100_000, closed="right")],
                "n_mels": [Interval(int, 0, 1024)],
            },
        )
        self.n_fft = n_fft
        self.n_bands = n_bands
        self.fmin = float(fmin)
        self.n_mels = n_mels
        self.sr = check_sample_rate(sr)

    @property
    def n_features(self) -> int:
        """Width of the vector: ``n_bands + 2 * n_mels``."""
        return self.n_bands + 2 * self.n_mels

    def params(self) -> dict[str, Any]:
        """Parameters that define the features (JSON-serialisable)."""
        return {
            "name": "ClipStatistics",
            "n_fft": self.n_fft,
            "n_bands": self.n_bands,
            "fmin": self.fmin,
            "n_mels": self.n_mels,
            "sr": self.sr,
        }

    def _output_shape(self, n_samples: int) -> tuple[int, int] | None:
        return (1, self.n_features)

    def band_ranges(self, sr: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """First and end Welch bin of each band at rate ``sr`` Hz: band ``i`` averages bins ``lo[i]:hi[i]``."""
        return _band_ranges(self.n_fft // 2 + 1, sr, self.n_bands, self.fmin)

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        """The clip's statistics vector, shape ``(1, n_features)``, float32.

        Raises
        ------
        AudioError
            If the clip is shorter than ``n_fft`` samples.
        """
        check_rate_matches(sr, self.sr, "ClipStatistics")
        x = np.asarray(signal, dtype=np.float32)
        if x.ndim != 1:
            raise ParameterError(f"signal must be mono (1-D), got shape {x.shape}; wrap the extractor in MultiChannel")
        if len(x) < self.n_fft:
            raise AudioError("<signal>", f"clip too short for clip statistics: {len(x)} < n_fft={self.n_fft} samples")
        psd = _welch(x, self.n_fft)
        lo, hi = _band_ranges(len(psd), sr, self.n_bands, self.fmin)
        cumulative = np.concatenate([[0.0], np.cumsum(psd, dtype=np.float64)])
        bands = (cumulative[hi] - cumulative[lo]) / (hi - lo)  # mean power of each band's bins
        spectrum = 10.0 * np.log10(np.maximum(bands, 1e-20))
        spectrum -= spectrum.mean()
        parts = [spectrum]
        if self.n_mels:
            mel = log_mel_by_frame(x, sr, self.n_mels, 1024, 512, 80.0)  # (frames, mels), dB re the loudest bin
            parts += [mel.mean(axis=0), mel.std(axis=0)]
        return np.concatenate(parts).astype(np.float32)[None, :]
