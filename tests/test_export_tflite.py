"""TFLite export (#25): float parity, int8 quality against float, size, the C header, the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets.synthetic import generate_clip
from soundanomaly.detectors import GaussianDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.export import save_tflite, to_tflite
from soundanomaly.export._tflite import tflite_scores
from soundanomaly.features import ClipFeatures, LogMelFrames

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

SR = 16000


def _set(first: int, n: int, anomaly: str | None = None) -> ClipFeatures:
    features = LogMelFrames()
    clips = [
        generate_clip(0, anomaly=anomaly, severity=0.8, snr=6.0, duration=2.0, seed=5, clip_index=first + i)
        for i in range(n)
    ]
    return ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())


@pytest.fixture(scope="module")
def data() -> dict[str, ClipFeatures]:
    return {"train": _set(0, 16), "normal": _set(100, 8), "abnormal": _set(200, 8, "imbalance")}


def _auc(normal: np.ndarray, abnormal: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([0] * len(normal) + [1] * len(abnormal), np.concatenate([normal, abnormal])))


def _clip_scores(model: bytes, features: ClipFeatures) -> np.ndarray:
    return features.mean_per_clip(tflite_scores(model, features.windows))


@pytest.fixture(scope="module")
def autoencoder(data: dict[str, ClipFeatures]) -> object:
    from soundanomaly.detectors import AutoencoderDetector

    return AutoencoderDetector(epochs=8, batch_size=128, threshold=30.0).fit(data["train"])


def test_float_tflite_scores_equal_the_library(autoencoder: object, data: dict[str, ClipFeatures]) -> None:
    gaussian = GaussianDetector(threshold=2.0).fit(data["train"])
    for detector in (autoencoder, gaussian):
        model = to_tflite(detector)
        np.testing.assert_allclose(
            _clip_scores(model, data["abnormal"]),
            detector.score(data["abnormal"]),  # type: ignore[attr-defined]
            rtol=1e-4,
        )


def test_int8_keeps_the_ranking_and_the_size_budget(autoencoder: object, data: dict[str, ClipFeatures]) -> None:
    model = to_tflite(autoencoder, int8=True, calibration=data["train"])
    assert len(model) <= 300_000
    float_auc = _auc(autoencoder.score(data["normal"]), autoencoder.score(data["abnormal"]))  # type: ignore[attr-defined]
    int8_auc = _auc(_clip_scores(model, data["normal"]), _clip_scores(model, data["abnormal"]))
    assert float_auc > 0.8  # the set separates, so the comparison means something
    assert abs(int8_auc - float_auc) <= 0.05  # the benchmark reports the exact figures on a frozen seed


def test_int8_needs_calibration_windows(data: dict[str, ClipFeatures]) -> None:
    detector = GaussianDetector(threshold=2.0).fit(data["train"])  # fitted from arrays: no training clips to read
    with pytest.raises(ParameterError, match="calibrated on training windows"):
        to_tflite(detector, int8=True)


def test_knn_and_clip_statistics_are_refused(data: dict[str, ClipFeatures]) -> None:
    from soundanomaly.detectors import ClipStatsDetector

    with pytest.raises(ParameterError, match="top-k"):
        to_tflite(ClipStatsDetector(threshold=1.0, features=LogMelFrames()).fit(data["train"]))
    rng = np.random.default_rng(0)
    clipstats = ClipStatsDetector(threshold=1.0).fit(  # default ClipStatistics features
        ClipFeatures.from_arrays([rng.normal(size=(1, 1152)).astype(np.float32) for _ in range(6)])
    )
    with pytest.raises(ParameterError, match="LogMelFrames"):
        to_tflite(clipstats)


def test_c_header_holds_model_and_front_end(data: dict[str, ClipFeatures], tmp_path: Path) -> None:
    detector = GaussianDetector(threshold=2.0).fit(data["train"])
    out = save_tflite(detector, tmp_path / "model.tflite", int8=True, calibration=data["train"])
    header = (tmp_path / "model.tflite.h").read_text()
    assert header.startswith("/* soundanomaly export")
    n_bytes = int(re.search(r"sa_model_len = (\d+);", header).group(1))  # type: ignore[union-attr]
    assert n_bytes == out.stat().st_size
    assert "#define SA_N_FEATURES 320" in header and "SA_INPUT_SCALE" in header
    from soundanomaly.features.logmel import mel_basis

    weights = re.search(r"sa_mel_weights\[(\d+)\]", header)
    assert weights is not None and int(weights.group(1)) == np.count_nonzero(mel_basis(SR, 1024, 64))
    assert "#define SA_THRESHOLD 2.0f" in header
    save_tflite(detector, out, int8=True, calibration=data["train"])  # replaces what it wrote


def test_cli_export_both_formats(tmp_path: Path, data: dict[str, ClipFeatures]) -> None:
    from soundanomaly.cli import main

    folder = GaussianDetector(threshold=2.0).fit(data["train"]).save(tmp_path / "model")
    assert main(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", str(folder), "--format", "tflite", "--out", str(tmp_path / "m.tflite")]) == 0
    assert (tmp_path / "m.tflite").stat().st_size > 1000 and (tmp_path / "m.tflite.h").is_file()
    assert main(["export", str(folder), "--format", "tflite", "--int8", "--out", str(tmp_path / "q.tflite")]) == 2
    assert main(["export", str(folder), "--format", "onnx", "--out", str(folder / "inside.onnx")]) == 2


def test_cli_int8_calibrates_on_the_models_training_clips(tiny_root: Path, tmp_path: Path) -> None:
    from soundanomaly.cli import main
    from soundanomaly.datasets import MIMII

    clips = MIMII(tiny_root)
    normal = [p for p, label in zip(clips.paths, clips.labels, strict=True) if label == 0]
    folder = GaussianDetector(holdout=0.0, threshold=2.0).fit(normal).save(tmp_path / "model")
    out = tmp_path / "q.tflite"
    assert main(["export", str(folder), "--format", "tflite", "--int8", "--out", str(out)]) == 0
    header = Path(str(out) + ".h").read_text()
    assert "SA_INPUT_SCALE" in header and out.read_bytes()[4:8] == b"TFL3"


C_MAIN = r"""
#include <stdio.h>
#include "model.tflite.h"
int main(void) {
    unsigned long sum = 0, bins = 0;
    for (unsigned int i = 0; i < sa_model_len; i++) sum += sa_model[i];
    for (int b = 0; b < SA_N_MELS; b++) bins += sa_mel_n_bins[b];
    printf("%u %lu %lu %.6f %.6f\n", sa_model_len, sum, bins, (double)sa_hann_window[SA_N_FFT / 2], (double)SA_THRESHOLD);
    return 0;
}
"""


def test_c_header_compiles_and_holds_the_bytes(data: dict[str, ClipFeatures], tmp_path: Path) -> None:
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler")
    from soundanomaly.features.logmel import mel_basis

    detector = GaussianDetector(threshold=2.0).fit(data["train"])
    out = save_tflite(detector, tmp_path / "model.tflite", int8=True, calibration=data["train"])
    (tmp_path / "main.c").write_text(C_MAIN)
    subprocess.run(
        [compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", "main", "main.c"], cwd=tmp_path, check=True
    )
    length, total, bins, middle, threshold = subprocess.run(
        [str(tmp_path / "main")], capture_output=True, text=True, check=True
    ).stdout.split()
    model = out.read_bytes()
    assert (int(length), int(total)) == (len(model), sum(model))
    assert int(bins) == np.count_nonzero(mel_basis(SR, 1024, 64))
    assert float(middle) == 1.0 and float(threshold) == 2.0  # the periodic Hann window peaks at n_fft / 2
