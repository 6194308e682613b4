"""Explanations: which moments and which frequency bands make a clip's score high.

For detectors on log-mel frame features (:class:`~soundanomaly.features.LogMelFrames`)
a window's score is a sum over its feature values, so it splits exactly into
per-value contributions:

* **autoencoder**: the squared reconstruction error of each value, divided by
  the number of values (their sum is the window's mean squared error);
* **Gaussian / Mahalanobis**: each value's share ``(x - mu)_i (P (x - mu))_i / D``
  of the squared distance (their sum is the window's score; a share can be
  negative where a deviation is explained by its neighbours).

Summing over the stacked frames gives a ``(n_windows, n_mels)`` map of
contributions per time and mel band; summing over bands gives the score curve.
:meth:`Explanation.top_bands` ranks the bands that deviate (optionally against
a normal reference recording) and gives their frequency range in Hz;
:meth:`Explanation.plot` draws the spectrogram with the score curve under it
and the deviating bands highlighted.

The detector provides the split: a detector class takes part by defining a
``feature_contributions(windows)`` method returning an ``(n_windows,
n_features)`` array whose rows sum to its per-window scores
(:class:`~soundanomaly.detectors.GaussianDetector`,
:class:`~soundanomaly.detectors.AutoencoderDetector` and
:class:`~soundanomaly.detectors.ClipStatsDetector` with
``method="mahalanobis"`` do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError
from soundanomaly.features.logmel import LogMelFrames, log_mel_spectrogram
from soundanomaly.typing import FloatArray

__all__ = ["Band", "Explanation", "band_edges_hz", "explain", "feature_contributions"]

_F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Band:
    """One mel band that deviates.

    Attributes
    ----------
    index : int
        Mel band number (0 = lowest).
    low_hz, centre_hz, high_hz : float
        The band's mel filter: it spans ``low_hz`` to ``high_hz`` and peaks at ``centre_hz``.
    contribution : float
        Mean contribution of the band to the window scores (minus the
        reference's, when the explanation has one).
    share : float
        ``contribution`` as a fraction of the sum over all bands' positive contributions.

    Examples
    --------
    >>> band = Band(0, 0.0, 46.4, 92.8, 2.5, 0.4)
    >>> str(band)
    'band 0: 0-93 Hz (contribution 2.5, 40%)'
    """

    index: int
    low_hz: float
    centre_hz: float
    high_hz: float
    contribution: float
    share: float

    def contains(self, frequency_hz: float) -> bool:
        """Whether ``frequency_hz`` lies inside the band's filter."""
        return self.low_hz <= frequency_hz <= self.high_hz

    def __str__(self) -> str:
        return (
            f"band {self.index}: {self.low_hz:.0f}-{self.high_hz:.0f} Hz "
            f"(contribution {self.contribution:.3g}, {100 * self.share:.0f}%)"
        )


def band_edges_hz(sr: int, n_mels: int, *, fmin: float = 0.0, fmax: float | None = None) -> _F64:
    """Lower edge, centre and upper edge in Hz of each Slaney mel filter, shape ``(n_mels, 3)``.

    Examples
    --------
    >>> edges = band_edges_hz(16000, 64)
    >>> edges.shape, [round(float(v), 1) for v in edges[0]]
    ((64, 3), [0.0, 46.4, 92.8])
    """
    import librosa

    points = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=sr / 2 if fmax is None else fmax)
    return np.stack([points[:-2], points[1:-1], points[2:]], axis=1).astype(np.float64)


def feature_contributions(detector: Any, windows: FloatArray) -> _F64:
    """Per-value contributions to each window's score, shape ``(n_windows, n_features)``.

    Rows sum to the detector's per-window scores (to float precision).

    Raises
    ------
    ParameterError
        For a detector whose score does not split into per-value terms.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> detector = GaussianDetector(threshold=2.0).fit(ClipFeatures.from_arrays([rng.normal(size=(50, 6)).astype("float32")] * 2))
    >>> windows = rng.normal(size=(3, 6)).astype("float32")
    >>> clip = ClipFeatures.from_arrays([windows])
    >>> bool(np.isclose(feature_contributions(detector, windows).sum(axis=1).mean(), detector.score(clip)[0]))
    True
    """
    provide = getattr(detector, "feature_contributions", None)
    if not callable(provide):
        provide = getattr(detector, "_feature_contributions", None)  # its former, private name: still honoured
    if not callable(provide):
        raise ParameterError(
            f"{type(detector).__name__} has no per-feature contributions: explanations need a detector with a "
            "feature_contributions(windows) method (the autoencoder, the Gaussian detector, "
            "ClipStatsDetector(method='mahalanobis'))"
        )
    values = np.asarray(windows, dtype=np.float32)
    contributions = np.asarray(provide(values), dtype=np.float64)
    if contributions.shape != values.shape:
        raise ParameterError(
            f"{type(detector).__name__}.feature_contributions returned shape {contributions.shape} "
            f"for windows of shape {values.shape}"
        )
    return contributions


@dataclass(frozen=True)
class Explanation:
    """Where (time) and in which mel bands a recording's score comes from.

    Attributes
    ----------
    contributions : np.ndarray [shape=(n_windows, n_mels)], float64
        Contribution of each mel band to each window's score (summed over
        the window's stacked frames). Rows sum to ``scores``.
    scores : np.ndarray [shape=(n_windows,)], float64
        Per-window scores; their mean is the clip score of a mean-reducing detector.
    times : np.ndarray [shape=(n_windows,)], float64
        Centre of each window in seconds.
    log_mel : np.ndarray [shape=(n_frames, n_mels)], float32
        The spectrogram the detector saw (dB relative to the loudest bin).
    frame_times : np.ndarray [shape=(n_frames,)], float64
        Centre of each frame in seconds.
    bands : np.ndarray [shape=(n_mels, 3)], float64
        Lower edge, centre, upper edge of each band in Hz.
    baseline : np.ndarray [shape=(n_mels,)] or None
        Mean band contributions on the normal reference recording, if one was given.
    threshold : float or None
        The detector's threshold (for the plot).

    Examples
    --------
    See :func:`explain`.
    """

    contributions: _F64
    scores: _F64
    times: _F64
    log_mel: FloatArray = field(repr=False)
    frame_times: _F64 = field(repr=False)
    bands: _F64 = field(repr=False)
    baseline: _F64 | None = field(default=None, repr=False)
    threshold: float | None = None

    def band_scores(self, *, start: float | None = None, end: float | None = None) -> _F64:
        """Mean contribution per band over windows centred in ``[start, end]`` seconds, minus the baseline."""
        mask = np.ones(len(self.times), dtype=bool)
        if start is not None:
            mask &= self.times >= start
        if end is not None:
            mask &= self.times <= end
        if not mask.any():
            raise ParameterError(f"no window is centred between start={start} and end={end}")
        mean = self.contributions[mask].mean(axis=0)
        return np.asarray(mean - self.baseline if self.baseline is not None else mean, dtype=np.float64)

    def top_bands(self, k: int = 3, *, start: float | None = None, end: float | None = None) -> list[Band]:
        """The ``k`` bands that contribute most (most above the reference, when there is one).

        Parameters
        ----------
        k : int >= 1
        start, end : float, optional
            Only windows centred in this time span (seconds), e.g. an event's.

        Returns
        -------
        list of Band
            Highest contribution first.
        """
        if not isinstance(k, int) or k < 1:
            raise ParameterError(f"k must be a positive int, got {k!r}")
        scores = self.band_scores(start=start, end=end)
        total = float(np.clip(scores, 0, None).sum()) or 1.0
        order = np.argsort(-scores, kind="stable")[:k]
        bands = []
        for i in order:
            low, centre, high = (float(v) for v in self.bands[i])
            bands.append(Band(int(i), low, centre, high, float(scores[i]), float(max(scores[i], 0.0) / total)))
        return bands

    def plot(self, *, k: int = 3, start: float | None = None, end: float | None = None, fig: Any = None) -> Any:
        """Spectrogram with the top ``k`` deviating bands highlighted, and the score curve under it.

        matplotlib is imported here; the figure is drawn through pyplot (so
        notebooks and sphinx-gallery show it) without changing the backend.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if fig is None:
            fig = plt.figure(figsize=(10, 6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
        n_mels = self.log_mel.shape[1]
        hop = float(self.frame_times[1] - self.frame_times[0]) if len(self.frame_times) > 1 else 0.032
        extent = (self.frame_times[0] - hop / 2, self.frame_times[-1] + hop / 2, -0.5, n_mels - 0.5)
        image = top.imshow(self.log_mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-80, vmax=0)
        fig.colorbar(image, ax=top, label="dB (ref = max)")
        ticks = np.linspace(0, n_mels - 1, 6).round().astype(int)
        top.set_yticks(ticks, [f"{self.bands[i, 1]:.0f}" for i in ticks])
        top.set(ylabel="mel band centre [Hz]", title="spectrogram and the bands that deviate")
        colours = ["#00e5ff", "#7CFC00", "#ffffff", "#ff69b4", "#ffd700"]
        for rank, band in enumerate(self.top_bands(k, start=start, end=end)):
            top.axhspan(band.index - 0.5, band.index + 0.5, color=colours[rank % len(colours)], alpha=0.45,
                        linewidth=0, label=f"{rank + 1}. {band.low_hz:.0f}-{band.high_hz:.0f} Hz")  # fmt: skip
        top.legend(loc="upper right", fontsize=8, title="deviating bands", title_fontsize=8)
        if start is not None or end is not None:
            top.axvspan(start if start is not None else extent[0], end if end is not None else extent[1],
                        ymin=0, ymax=0.02, color="#d62728")  # fmt: skip
        bottom.plot(self.times, self.scores, color="#1f77b4", linewidth=0.9, label="feature-vector score")
        if self.threshold is not None:
            bottom.axhline(self.threshold, color="black", linestyle="--", linewidth=0.8,
                           label="detector threshold (for the mean over a clip)")  # fmt: skip
        bottom.set(xlabel="time [s]", ylabel="score")
        bottom.legend(loc="upper left", fontsize=8)
        return fig


def explain(
    detector: Any,
    signal: npt.ArrayLike,
    sr: int,
    *,
    reference: npt.ArrayLike | None = None,
) -> Explanation:
    """Explain a recording's score by time and mel band.

    The recording is featurised as one clip, exactly as ``detector.score``
    would (its own dB reference), so the explanation's scores are the ones
    the detector gives.

    Parameters
    ----------
    detector : fitted detector on :class:`~soundanomaly.features.LogMelFrames`
        Any detector with a ``feature_contributions(windows)`` method (the
        autoencoder, the Gaussian detector, ``ClipStatsDetector(method="mahalanobis")``).
    signal : np.ndarray [shape=(n_samples,)]
        Mono audio.
    sr : int
        Sample rate in Hz.
    reference : np.ndarray [shape=(n_samples,)], optional
        Normal audio of the same machine. Its mean band contributions become
        the baseline that :meth:`Explanation.top_bands` subtracts, so bands
        that are always noisy do not rank first.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures, LogMelFrames
    >>> sr, rng = 16000, np.random.default_rng(0)
    >>> t = np.arange(sr) / sr
    >>> hum = [np.float32(0.3) * np.sin(2 * np.pi * 300 * t + p).astype("float32") + rng.normal(0, 0.05, sr).astype("float32")
    ...        for p in rng.uniform(0, 6, 8)]
    >>> f = LogMelFrames()
    >>> detector = GaussianDetector(threshold=2.0).fit(ClipFeatures.from_arrays([f.transform(h, sr) for h in hum]))
    >>> whine = hum[0] + np.float32(0.2) * np.sin(2 * np.pi * 3000 * t).astype("float32")
    >>> top = explain(detector, whine, sr).top_bands(1)[0]
    >>> top.contains(3000.0)
    True
    """
    features = getattr(detector, "features", None)
    if not isinstance(features, LogMelFrames):
        raise ParameterError(
            f"explanations need log-mel frame features (LogMelFrames); the detector uses {type(features).__name__}"
        )
    contributions, scores, log_mel = _band_contributions(detector, features, signal, sr)
    baseline = None
    if reference is not None:
        baseline = _band_contributions(detector, features, reference, sr)[0].mean(axis=0)
    n_windows = len(scores)
    hop = features.hop_length / sr
    frame_times = np.arange(log_mel.shape[0], dtype=np.float64) * hop
    times = (np.arange(n_windows, dtype=np.float64) + (features.frames - 1) / 2) * hop
    threshold = getattr(detector, "threshold_", None)
    return Explanation(
        contributions=contributions,
        scores=scores,
        times=times,
        log_mel=log_mel,
        frame_times=frame_times,
        bands=band_edges_hz(sr, features.n_mels),
        baseline=baseline,
        threshold=None if threshold is None else float(threshold),
    )


def _band_contributions(
    detector: Any, features: LogMelFrames, signal: npt.ArrayLike, sr: int
) -> tuple[_F64, _F64, FloatArray]:
    samples = np.asarray(signal, dtype=np.float32)
    if samples.ndim != 1:
        raise ParameterError(f"signal must be mono (1-D), got shape {samples.shape}")
    windows = features.transform(samples, sr)
    log_mel = log_mel_spectrogram(
        samples, sr, n_mels=features.n_mels, n_fft=features.n_fft, hop_length=features.hop_length
    ).T
    per_value = feature_contributions(detector, windows)
    per_band = per_value.reshape(len(windows), features.frames, features.n_mels).sum(axis=1)
    return per_band, per_band.sum(axis=1), log_mel
