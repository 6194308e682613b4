from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from soundanomaly import plots
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import synthetic
from soundanomaly.evaluation import Evaluator


@pytest.fixture(scope="module")
def signals() -> tuple[np.ndarray, np.ndarray]:
    return synthetic.generate_clip(0, duration=1.0), synthetic.generate_clip(0, anomaly="clogging", duration=1.0)


def test_every_plot_renders(signals: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.3, 0.2, 0.5, 0.25, 0.9])
    calibration = ThresholdCalibrator("min_errors").fit(scores, labels)
    metrics = Evaluator().evaluate(labels, scores, threshold=calibration.threshold).overall
    figures = {
        "waveforms": plots.plot_waveforms(*signals, 16000),
        "stft": plots.plot_stft_window(list(signals), 16000),
        "spectrogram": plots.plot_spectrogram(signals[0], 16000),
        "histogram": plots.plot_score_histogram(scores, labels, threshold=0.4),
        "sweep": plots.plot_threshold_sweep(scores, labels, threshold=0.4),
        "errors": plots.plot_errors_vs_threshold(calibration),
        "confusion": plots.plot_confusion_matrix(metrics),
        "roc": plots.plot_roc(labels, scores),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        plots.save(fig, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5000


def test_confusion_matrix_puts_anomaly_as_positive() -> None:
    metrics = Evaluator().evaluate([0, 1, 1], [0.9, 0.8, 0.1], threshold=0.5).overall
    fig = plots.plot_confusion_matrix(metrics)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["FN\n1", "FP\n1", "TN\n0", "TP\n1"]


_BACKEND_CHECK = """
import os, sys
import matplotlib
before = dict.__getitem__(matplotlib.rcParams, "backend")
import soundanomaly.plots as plots
after = dict.__getitem__(matplotlib.rcParams, "backend")
assert after is before or after == before, (before, after)
assert "matplotlib.pyplot" not in sys.modules, "importing soundanomaly.plots imported pyplot"
fig = plots.plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
plots.save(fig, os.path.join(sys.argv[1], "roc.png"))
assert "matplotlib.pyplot" not in sys.modules, "plotting without pyplot imported pyplot"
assert dict.__getitem__(matplotlib.rcParams, "backend") is before or after == before
print("backend", before if isinstance(before, str) else "auto")
"""


@pytest.mark.parametrize("backend", [None, "svg"])
def test_import_does_not_choose_a_backend(tmp_path: Path, backend: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if backend:
        env["MPLBACKEND"] = backend
    done = subprocess.run(
        [sys.executable, "-c", _BACKEND_CHECK, str(tmp_path)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"backend {backend or 'auto'}"
    assert (tmp_path / "roc.png").read_bytes()[1:4] == b"PNG"


def test_figures_go_through_pyplot_when_the_program_uses_it(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = plots.plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert fig.number in plt.get_fignums()  # so plt.show() and notebooks display it
    plots.save(fig, tmp_path / "roc.png")
    assert fig.number not in plt.get_fignums()
