"""Plots for exploring machine sound and judging a detector (matplotlib).

Every function draws on ``ax`` when given, else on a new figure, and returns
the :class:`matplotlib.figure.Figure`. Anomaly is the positive class in every
plot; normal is drawn in blue, anomalous in red.

Importing this module never chooses a matplotlib backend. When your program
uses :mod:`matplotlib.pyplot` (a notebook, a script calling ``plt.show()``),
new figures are made through pyplot, so they display with *your* backend;
otherwise they are plain :class:`~matplotlib.figure.Figure` objects that need
no backend at all (:func:`save` writes them to PNG, as the demo does).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from soundanomaly.calibration import Calibration
from soundanomaly.evaluation import Metrics, roc_curve

__all__ = [
    "new_figure",
    "plot_confusion_matrix",
    "plot_errors_vs_threshold",
    "plot_roc",
    "plot_score_histogram",
    "plot_spectrogram",
    "plot_stft_window",
    "plot_threshold_sweep",
    "plot_waveforms",
    "save",
]

NORMAL_COLOUR = "#1f77b4"
ANOMALY_COLOUR = "#d62728"


def new_figure(figsize: tuple[float, float] = (7, 4)) -> Figure:
    """A new figure with constrained layout, through pyplot only if the program already imported it.

    Examples
    --------
    >>> fig = new_figure((4, 3))
    >>> ax = fig.subplots()
    >>> fig.get_size_inches().tolist()
    [4.0, 3.0]

    """
    if "matplotlib.pyplot" in sys.modules:  # the program uses pyplot: let its backend show the figure
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7, 4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = new_figure(figsize)
    return fig, fig.subplots()


def plot_waveforms(
    normal: npt.ArrayLike, abnormal: npt.ArrayLike, sr: int, *, titles: Sequence[str] = ("normal", "abnormal")
) -> Figure:
    """Two waveforms side by side, same amplitude scale (time in seconds).

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_waveforms(np.zeros(1600), np.ones(1600) * 0.1, 16000)
    >>> len(fig.axes)
    2

    """
    fig = new_figure((12, 3.5))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, signal, title, colour in zip(
        axes, (normal, abnormal), titles, (NORMAL_COLOUR, ANOMALY_COLOUR), strict=True
    ):
        y = np.asarray(signal)
        ax.plot(np.arange(len(y)) / sr, y, color=colour, linewidth=0.4)
        ax.set(title=title, xlabel="time [s]")
    axes[0].set_ylabel("amplitude")
    return fig


def plot_stft_window(
    signals: Sequence[npt.ArrayLike],
    sr: int,
    *,
    labels: Sequence[str] = ("normal", "abnormal"),
    n_fft: int = 1024,
    ax: Axes | None = None,
) -> Figure:
    """Magnitude spectrum (dB) of the first ``n_fft`` samples (64 ms at 16 kHz) of each signal.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> fig = plot_stft_window([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t)], 16000)

    """
    fig, ax = _axes(ax)
    window = np.hanning(n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    for signal, label, colour in zip(signals, labels, (NORMAL_COLOUR, ANOMALY_COLOUR, "C2", "C3"), strict=False):
        first = np.asarray(signal)[:n_fft]
        magnitude = np.abs(np.fft.rfft(first * window[: len(first)], n_fft))
        ax.plot(freqs, 20 * np.log10(magnitude + 1e-10), label=label, color=colour, linewidth=0.8)
    ax.set(
        title=f"Spectrum of the first {1000 * n_fft / sr:.0f} ms",
        xlabel="frequency [Hz]",
        ylabel="magnitude [dB]",
        xscale="log",
        xlim=(20, sr / 2),
    )
    ax.legend()
    return fig


def plot_spectrogram(
    signal: npt.ArrayLike, sr: int, *, title: str = "", n_fft: int = 1024, hop_length: int = 512, ax: Axes | None = None
) -> Figure:
    """STFT spectrogram: log-frequency axis in Hz, colour in dB relative to the loudest bin.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_spectrogram(np.random.default_rng(0).normal(size=16000), 16000, title="noise")

    """
    fig, ax = _axes(ax)
    y = np.asarray(signal, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::hop_length]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power, 1e-10) / max(power.max(), 1e-10))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    times = np.arange(len(frames)) * hop_length / sr
    mesh = ax.pcolormesh(times, freqs[1:], db[:, 1:].T, shading="auto", cmap="magma", vmin=-80, vmax=0)
    ax.set(
        title=title or "spectrogram", xlabel="time [s]", ylabel="frequency [Hz]", yscale="log", ylim=(freqs[1], sr / 2)
    )
    fig.colorbar(mesh, ax=ax, label="dB (ref = max)")
    return fig


def plot_score_histogram(
    scores: npt.ArrayLike, labels: npt.ArrayLike, *, threshold: float | None = None, ax: Axes | None = None
) -> Figure:
    """Histogram of anomaly scores per class, with the threshold as a line.

    Examples
    --------
    >>> fig = plot_score_histogram([1.0, 1.2, 3.5, 4.0], [0, 0, 1, 1], threshold=2.0)

    """
    fig, ax = _axes(ax)
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(int)
    bins = np.histogram_bin_edges(s, bins=min(40, max(10, len(s) // 3))).tolist()
    ax.hist(s[y == 0], bins=bins, alpha=0.6, color=NORMAL_COLOUR, label=f"normal ({int((y == 0).sum())})")
    ax.hist(s[y == 1], bins=bins, alpha=0.6, color=ANOMALY_COLOUR, label=f"anomaly ({int((y == 1).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(title="Anomaly scores per class", xlabel="score (higher = more anomalous)", ylabel="clips")
    ax.legend()
    return fig


def plot_threshold_sweep(
    scores: npt.ArrayLike, labels: npt.ArrayLike, *, threshold: float | None = None, ax: Axes | None = None
) -> Figure:
    """Each clip's score as a point (x: clip index), coloured by class, with the threshold.

    Examples
    --------
    >>> fig = plot_threshold_sweep([1.0, 1.2, 3.5, 4.0], [0, 0, 1, 1], threshold=2.0)

    """
    fig, ax = _axes(ax)
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(int)
    index = np.arange(len(s))
    ax.scatter(index[y == 0], s[y == 0], s=12, color=NORMAL_COLOUR, label="normal")
    ax.scatter(index[y == 1], s[y == 1], s=12, color=ANOMALY_COLOUR, label="anomaly")
    if threshold is not None:
        ax.axhline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(title="Scores and threshold", xlabel="clip", ylabel="score")
    ax.legend()
    return fig


def plot_errors_vs_threshold(calibration: Calibration, *, ax: Axes | None = None) -> Figure:
    """False positives and false negatives for every candidate threshold.

    Examples
    --------
    >>> from soundanomaly.calibration import ThresholdCalibrator
    >>> fig = plot_errors_vs_threshold(ThresholdCalibrator("min_errors").fit([0.1, 0.3, 0.6, 0.9], [0, 0, 1, 1]))

    """
    fig, ax = _axes(ax)
    sw = calibration.sweep
    ax.plot(sw.thresholds, sw.false_positives, color=NORMAL_COLOUR, label="false positives (false alarms)")
    if not np.all(sw.false_negatives == 0) or not np.all(np.isnan(sw.recall)):
        ax.plot(sw.thresholds, sw.false_negatives, color=ANOMALY_COLOUR, label="false negatives (missed faults)")
    ax.axvline(
        calibration.threshold, color="k", linestyle="--", label=f"{calibration.strategy}: {calibration.threshold:.4g}"
    )
    ax.set(title="Errors versus threshold", xlabel="threshold", ylabel="clips")
    ax.legend()
    return fig


def plot_confusion_matrix(metrics: Metrics, *, ax: Axes | None = None) -> Figure:
    """2x2 confusion matrix, anomaly as the positive class (rows: truth, columns: prediction).

    Examples
    --------
    >>> from soundanomaly.evaluation import Evaluator
    >>> metrics = Evaluator().evaluate([0, 1, 1], [0.1, 0.9, 0.2], threshold=0.5).overall
    >>> fig = plot_confusion_matrix(metrics)

    """
    fig, ax = _axes(ax, figsize=(4.5, 4))
    matrix = np.array([[metrics.tn, metrics.fp], [metrics.fn, metrics.tp]])
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    names = [["TN", "FP"], ["FN", "TP"]]
    for i in range(2):
        for j in range(2):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, f"{names[i][j]}\n{matrix[i, j]}", ha="center", va="center", color=colour, fontsize=13)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["normal", "anomaly"],
        yticklabels=["normal", "anomaly"],
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix (positive = anomaly)",
    )
    return fig


def plot_roc(labels: npt.ArrayLike, scores: npt.ArrayLike, *, max_fpr: float = 0.1, ax: Axes | None = None) -> Figure:
    """ROC curve (anomaly = positive) with the pAUC region shaded.

    Examples
    --------
    >>> fig = plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])

    """
    from soundanomaly.evaluation import partial_auc, roc_auc

    fig, ax = _axes(ax, figsize=(5, 5))
    fpr, tpr, _ = roc_curve(labels, scores)
    auc, pauc = roc_auc(labels, scores), partial_auc(labels, scores, max_fpr=max_fpr)
    ax.plot(fpr, tpr, color=ANOMALY_COLOUR, label=f"AUC {auc:.3f}, pAUC@{max_fpr:g} {pauc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.axvspan(0, max_fpr, color="grey", alpha=0.1)
    ax.set(title="ROC (positive = anomaly)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    return fig


def save(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Save ``fig`` as PNG (dpi 110) and release it (closing it in pyplot if pyplot holds it).

    Examples
    --------
    >>> fig = plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> save(fig, "roc.png")
    >>> from pathlib import Path
    >>> Path("roc.png").read_bytes()[1:4]
    b'PNG'

    """
    fig.savefig(path, dpi=110)
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close(fig)
