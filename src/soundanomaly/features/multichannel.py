"""Use every microphone: delay-and-sum beamforming and per-channel features.

MIMII clips hold 8 channels from a small circular array; the reference recipe
keeps channel 0. :class:`MultiChannel` wraps any feature extractor and turns
an ``(n_channels, n_samples)`` signal (what a detector with ``channel=None``
hands its extractor) into features by one of four strategies:

``"delay_and_sum"``
    Align every channel on the reference channel (delays estimated by
    GCC-PHAT) and average: sound from the machine adds up coherently while
    noise that differs between microphones partly cancels, so the SNR rises
    (up to ``10 log10(n_channels)`` dB for fully independent noise).
``"mean"``
    The plain average of the channels, no alignment (the library's
    ``channel="mean"``). For a source much closer than a wavelength this is
    nearly delay-and-sum; at high frequencies the misalignment cancels signal.
``"per_channel"``
    The base features of each channel, stacked as extra windows: a detector
    scores every channel's windows and a clip's score is their mean (scores
    combined, one model for all channels).
``"feature_mean"``
    The base features averaged over channels: for log-spectral features this
    is spectral averaging in the log domain, which does not raise the SNR but
    lowers the variance of the noise floor.

Examples
--------
>>> import numpy as np
>>> from soundanomaly.features import LogMelFrames
>>> rng = np.random.default_rng(0)
>>> stereo = rng.normal(size=(2, 16000)).astype("float32")
>>> MultiChannel(LogMelFrames(), strategy="per_channel").transform(stereo, 16000).shape
(56, 320)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.fft

from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import BaseFeatureExtractor
from soundanomaly.typing import FloatArray

__all__ = ["STRATEGIES", "MultiChannel", "apply_delays", "delay_and_sum", "estimate_delays"]

Strategy = Literal["delay_and_sum", "mean", "per_channel", "feature_mean"]
#: The channel strategies :class:`MultiChannel` offers.
STRATEGIES: tuple[str, ...] = ("delay_and_sum", "mean", "per_channel", "feature_mean")


def _as_channels(signal: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 2:
        raise ParameterError(f"signal must be (n_channels, n_samples) or (n_samples,), got shape {x.shape}")
    return x


def estimate_delays(
    signal: npt.ArrayLike, sr: int, *, max_delay: float = 0.001, reference: int = 0
) -> npt.NDArray[np.float64]:
    """Delay of each channel relative to ``reference``, in samples, by GCC-PHAT.

    The peak of the phase-transform-weighted cross-correlation within
    ``max_delay``, refined to a fraction of a sample by a parabola.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_channels, n_samples)]
    sr : int
        Sample rate in Hz.
    max_delay : float, default 0.001
        Largest delay searched, in seconds (1 ms is 34 cm of path difference,
        more than a 10 cm array can produce).
    reference : int, default 0
        Channel the others are aligned on (its delay is 0).

    Returns
    -------
    np.ndarray [shape=(n_channels,)], float64
        Positive when a channel hears the sound later than the reference.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=4000)
    >>> estimate_delays(np.stack([x, np.roll(x, 3)]), 16000).round(2).tolist()
    [0.0, 3.0]
    """
    x = _as_channels(signal)
    if not -len(x) <= reference < len(x):
        raise ParameterError(f"reference must index one of the {len(x)} channels, got {reference!r}")
    n_fft = scipy.fft.next_fast_len(2 * x.shape[1], real=True)
    spectra = scipy.fft.rfft(x, n_fft, axis=1)
    cross = spectra * np.conj(spectra[reference])[None, :]
    cross /= np.abs(cross) + 1e-12
    corr = scipy.fft.irfft(cross, n_fft, axis=1)
    max_lag = max(1, min(round(max_delay * sr), x.shape[1] - 1))
    lags = np.arange(-max_lag, max_lag + 1)
    window = corr[:, lags]  # negative lags wrap around to the end
    best = np.argmax(window, axis=1)
    # Parabolic interpolation of the peak: sub-sample resolution.
    inner = np.clip(best, 1, len(lags) - 2)
    rows = np.arange(len(x))
    left, mid, right = window[rows, inner - 1], window[rows, inner], window[rows, inner + 1]
    denom = left - 2 * mid + right
    offset = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    offset = np.where(best == inner, np.clip(offset, -0.5, 0.5), 0.0)
    delays = lags[best] + offset
    delays[reference] = 0.0
    return np.asarray(delays, dtype=np.float64)


def apply_delays(signal: npt.ArrayLike, delays: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Advance each channel by its delay (samples, fractional, circular): undoes :func:`estimate_delays`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=64)
    >>> bool(np.allclose(apply_delays(np.stack([x, np.roll(x, 2)]), [0, 2])[1], x))
    True
    """
    x = _as_channels(signal)
    d = np.asarray(delays, dtype=np.float64)
    if d.shape != (len(x),):
        raise ParameterError(f"delays must have one value per channel ({len(x)}), got shape {d.shape}")
    n = x.shape[1]
    shifts = np.exp(2j * np.pi * np.outer(d, np.fft.rfftfreq(n)))
    return np.asarray(np.fft.irfft(np.fft.rfft(x, axis=1) * shifts, n, axis=1))


def delay_and_sum(signal: npt.ArrayLike, sr: int, *, max_delay: float = 0.001, reference: int = 0) -> FloatArray:
    """Align the channels on ``reference`` (GCC-PHAT) and average them: one mono signal.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    >>> mics = np.stack([np.roll(tone, k) for k in range(4)]) + rng.normal(0, 1, (4, 16000))
    >>> out = delay_and_sum(mics, 16000)
    >>> out.shape, bool(np.mean((out - tone) ** 2) < 0.5 * np.mean((mics[0] - tone) ** 2))
    ((16000,), True)
    """
    x = _as_channels(signal)
    if len(x) == 1:
        return np.asarray(x[0], dtype=np.float32)
    delays = estimate_delays(x, sr, max_delay=max_delay, reference=reference)
    return np.asarray(apply_delays(x, delays).mean(axis=0), dtype=np.float32)


class MultiChannel(BaseFeatureExtractor):
    """Feature extractor for all microphones of a clip, wrapping a single-channel one.

    Use it with a detector's ``channel=None`` so the extractor receives every
    channel; a mono clip passes straight to the wrapped extractor.

    Parameters
    ----------
    base : BaseFeatureExtractor or dict
        The single-channel extractor (e.g. :class:`~soundanomaly.features.LogMelFrames`),
        or its :meth:`params` (how a saved model rebuilds it).
    strategy : {"delay_and_sum", "mean", "per_channel", "feature_mean"}, default "delay_and_sum"
        See the module documentation.
    max_delay : float, default 0.001
        Largest inter-microphone delay searched by delay-and-sum, in seconds.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import LogMelFrames
    >>> rng = np.random.default_rng(0)
    >>> clip = rng.normal(size=(4, 16000)).astype("float32")
    >>> MultiChannel(LogMelFrames()).transform(clip, 16000).shape
    (28, 320)
    """

    def __init__(
        self,
        base: BaseFeatureExtractor | dict[str, Any],
        *,
        strategy: Strategy = "delay_and_sum",
        max_delay: float = 0.001,
    ) -> None:
        if isinstance(base, dict):  # the nested params of a saved model
            from soundanomaly.features.registry import features_from_params

            base = features_from_params(base)
        if not isinstance(base, BaseFeatureExtractor) or isinstance(base, MultiChannel):
            raise ParameterError(f"base must be a single-channel feature extractor, got {base!r}")
        if strategy not in STRATEGIES:
            raise ParameterError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if not max_delay > 0:
            raise ParameterError(f"max_delay must be > 0 seconds, got {max_delay!r}")
        self.base = base
        self.strategy = strategy
        self.max_delay = float(max_delay)

    @property
    def target_sr(self) -> int | None:
        """The wrapped extractor's rate: clips are resampled to it, or refused below it (one rule for all)."""
        return self.base.target_sr

    def params(self) -> dict[str, Any]:
        """Parameters that define the features (JSON-serialisable; the wrapped extractor's nested)."""
        return {
            "name": "MultiChannel",
            "base": self.base.params(),
            "strategy": self.strategy,
            "max_delay": self.max_delay,
        }

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        """Features of one clip, mono ``(n_samples,)`` or multichannel ``(n_channels, n_samples)``."""
        x = np.asarray(signal)
        if x.ndim == 1 or (x.ndim == 2 and len(x) == 1):
            return self.base.transform(np.asarray(x.reshape(-1), dtype=np.float32), sr)
        if x.ndim != 2:
            raise ParameterError(f"signal must be (n_channels, n_samples), got shape {x.shape}")
        if self.strategy == "delay_and_sum":
            return self.base.transform(delay_and_sum(x, sr, max_delay=self.max_delay), sr)
        if self.strategy == "mean":
            return self.base.transform(np.asarray(x.mean(axis=0), dtype=np.float32), sr)
        per = [self.base.transform(np.ascontiguousarray(c, dtype=np.float32), sr) for c in x]
        if self.strategy == "per_channel":
            return np.ascontiguousarray(np.concatenate(per), dtype=np.float32)
        return np.asarray(np.mean(per, axis=0), dtype=np.float32)
