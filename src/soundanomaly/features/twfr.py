"""Time-weighted frequency representation (TWFR): one log-mel vector per clip, pooled by weighted ranking.

TWFR (Guan et al., ICASSP 2023; the front end of TWFR-GMM) pools each mel
band of a log-mel spectrogram over time by *global weighted ranking pooling*
(GWRP): the band's frames are sorted from loudest to quietest and averaged
with weights ``decay**i`` (i = rank). ``decay = 1`` is plain mean pooling,
``decay = 0`` max pooling; in between, the loudest moments of each band (the
ones a fault adds: impacts, tones that come and go) weigh more than the
steady floor. The result is a compact fingerprint of a clip (``n_mels``
values) that a Gaussian mixture, a Mahalanobis distance or a k-NN can score.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import check_finite_float
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, check_rate_matches, check_sample_rate
from soundanomaly.features.logmel import log_mel_spectrogram
from soundanomaly.typing import FloatArray

__all__ = ["TimeWeightedFrequency", "gwrp"]


@functools.lru_cache(maxsize=16)
def _rank_weights(n: int, decay: float) -> npt.NDArray[np.float64]:
    weights: npt.NDArray[np.float64] = np.power(decay, np.arange(n, dtype=np.float64)) if decay > 0 else np.eye(1, n)[0]
    weights /= weights.sum()
    weights.setflags(write=False)
    return weights


def gwrp(values: npt.ArrayLike, decay: float, *, axis: int = -1) -> npt.NDArray[np.float64]:
    """Global weighted ranking pooling of ``values`` along ``axis``.

    Sorts the values from largest to smallest and averages them with weights
    ``decay**rank`` (normalised to sum to 1).

    Parameters
    ----------
    values : array-like
        Any shape; pooled along ``axis``.
    decay : float in [0, 1]
        ``1`` gives the mean, ``0`` the maximum.
    axis : int, default -1

    Returns
    -------
    np.ndarray, float64
        ``values`` without ``axis``.

    Examples
    --------
    >>> [round(float(gwrp([1.0, 3.0, 2.0], decay)), 4) for decay in (1.0, 0.5, 0.0)]
    [2.0, 2.4286, 3.0]
    """
    if isinstance(decay, bool) or not 0.0 <= check_finite_float(decay, name="decay") <= 1.0:
        raise ParameterError(f"decay must be in [0, 1], got {decay!r}")
    x = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    if x.shape[-1] == 0:
        raise ParameterError("gwrp needs at least one value along the pooled axis")
    ranked = -np.sort(-x, axis=-1)
    return np.asarray(ranked @ _rank_weights(x.shape[-1], float(decay)))


class TimeWeightedFrequency(BaseFeatureExtractor):
    """One vector per clip: each log-mel band pooled over time by weighted ranking (TWFR).

    The log-mel spectrogram (dB relative to the clip's loudest bin, floored
    80 dB below it, as :class:`~soundanomaly.features.LogMelFrames`) is pooled
    per band with :func:`gwrp`. The output has shape ``(1, n_mels)``: one
    window per clip, loudness-independent (the reference is the clip's own
    peak).

    When to pick it: as the front end of
    :class:`~soundanomaly.detectors.twfr_gmm.TWFRGMMDetector`, or as a compact
    clip fingerprint (128 values instead of the 1152 of
    :class:`~soundanomaly.detectors.clipstats.ClipStatistics`) for
    covariance-based detectors trained on few clips.

    Parameters
    ----------
    decay : float in [0, 1], default 1.0
        GWRP decay: ``1`` averages every frame, smaller values weigh the
        loudest frames of each band more (``0``: the maximum). On the
        development seed of :mod:`soundanomaly.datasets.shift` (steady faults)
        1.0 ranked best for :class:`~soundanomaly.detectors.twfr_gmm.TWFRGMMDetector`
        (harmonic mean 0.971 against 0.930 at 0.9); on a set with bursts and
        impacts 0.9 did. Tune it per machine type, as the TWFR authors do.
    n_mels : int > 0, default 128
        Mel bands (the output width).
    n_fft : int > 0, default 1024
        FFT size in samples.
    hop_length : int > 0, default 512
        Samples between frames.
    sr : int, default 16000
        Sample rate (Hz) the features are computed at (files at higher rates
        are resampled, lower rates refused; see ``LogMelFrames``).

    Examples
    --------
    >>> import numpy as np
    >>> clip = np.random.default_rng(0).normal(size=16000).astype("float32")
    >>> TimeWeightedFrequency().transform(clip, 16000).shape
    (1, 128)
    """

    def __init__(
        self, *, decay: float = 1.0, n_mels: int = 128, n_fft: int = 1024, hop_length: int = 512, sr: int = 16000
    ) -> None:
        if isinstance(decay, bool) or not 0.0 <= check_finite_float(decay, name="decay") <= 1.0:
            raise ParameterError(f"decay must be in [0, 1], got {decay!r}")
        for name, value in (("n_mels", n_mels), ("n_fft", n_fft), ("hop_length", hop_length)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        self.decay = float(decay)
        self.n_mels = int(n_mels)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.sr = check_sample_rate(sr)

    @property
    def n_features(self) -> int:
        """Width of the vector: ``n_mels``."""
        return self.n_mels

    def params(self) -> dict[str, Any]:
        """Parameters that define the features (JSON-serialisable)."""
        return {
            "name": "TimeWeightedFrequency",
            "decay": self.decay,
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "sr": self.sr,
        }

    def _output_shape(self, n_samples: int) -> tuple[int, int] | None:
        return None

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        """The clip's TWFR vector, shape ``(1, n_mels)``, float32.

        Raises
        ------
        AudioError
            If the clip is shorter than ``n_fft`` samples.
        ParameterError
            If ``sr`` differs from :attr:`sr`, or the signal is not mono.
        """
        check_rate_matches(sr, self.sr, type(self).__name__)
        x = np.asarray(signal)
        if x.ndim != 1:
            raise ParameterError(f"signal must be mono (1-D), got shape {x.shape}; wrap the extractor in MultiChannel")
        if len(x) < self.n_fft:
            raise AudioError("<signal>", f"clip too short for TWFR: {len(x)} < n_fft={self.n_fft} samples")
        mel = log_mel_spectrogram(
            x.astype(np.float32, copy=False), sr, n_mels=self.n_mels, n_fft=self.n_fft, hop_length=self.hop_length
        )
        return gwrp(mel, self.decay, axis=1).astype(np.float32)[None, :]
