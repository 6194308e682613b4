"""Explanations: contributions add up to the scores, the top band matches the fault's physics, the plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from soundanomaly.datasets.synthetic import fan_model, generate_clip
from soundanomaly.detectors import BaseDetector, GaussianDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.explain import Band, band_edges_hz, explain, feature_contributions
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.features.logmel import mel_basis

SR = 16000
MACHINE = 2


def _train(n_clips: int = 12) -> ClipFeatures:
    features = LogMelFrames()
    clips = [generate_clip(MACHINE, duration=2.0, clip_index=100 + i) for i in range(n_clips)]
    return ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())


@pytest.fixture(scope="module")
def gaussian() -> GaussianDetector:
    return GaussianDetector(shrinkage=0.2, threshold=1.5).fit(_train())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return generate_clip(MACHINE, duration=4.0, clip_index=900)


def test_contributions_add_up_to_scores(gaussian: GaussianDetector) -> None:
    clip = generate_clip(MACHINE, anomaly="clogging", duration=2.0, clip_index=1)
    explanation = explain(gaussian, clip, SR)
    n_windows = 1 + len(clip) // 512 - 5 + 1
    assert explanation.contributions.shape == (n_windows, 64)
    windows = gaussian.features.transform(clip, SR)
    np.testing.assert_allclose(explanation.scores, gaussian._score_windows(windows), rtol=1e-9)
    np.testing.assert_allclose(explanation.contributions.sum(axis=1), explanation.scores, rtol=1e-9)
    clip_score = gaussian.score(ClipFeatures.from_arrays([windows]))[0]
    assert explanation.scores.mean() == pytest.approx(clip_score, rel=1e-9)
    assert explanation.times[0] == pytest.approx(2 * 512 / SR)  # centre of frames 0..4
    assert explanation.log_mel.shape == (len(clip) // 512 + 1, 64) and explanation.log_mel.max() == 0.0
    assert explanation.threshold == 1.5


@pytest.mark.parametrize(
    ("anomaly", "severity", "physics_hz"),
    [
        ("imbalance", 0.5, (fan_model(MACHINE).shaft_hz, fan_model(MACHINE).shaft_hz)),  # the shaft tone
        ("bearing_wear", 0.8, (2600.0, 3400.0)),  # the ringing structural resonance
    ],
)
def test_top_band_matches_the_fault_physics(
    gaussian: GaussianDetector, reference: np.ndarray, anomaly: str, severity: float, physics_hz: tuple[float, float]
) -> None:
    clip = generate_clip(MACHINE, anomaly=anomaly, severity=severity, snr=6.0, duration=3.0, clip_index=5)
    explanation = explain(gaussian, clip, SR, reference=reference)
    top = explanation.top_bands(3)
    assert [b.contribution for b in top] == sorted((b.contribution for b in top), reverse=True)
    low, high = physics_hz
    assert top[0].low_hz <= high and top[0].high_hz >= low, f"top band {top[0]} misses {physics_hz} Hz"
    assert 0 < top[0].share <= 1
    assert explanation.baseline is not None and explanation.baseline.shape == (64,)
    # the fault raises the score in the first place
    assert explanation.scores.mean() > explain(gaussian, reference, SR).scores.mean()


def test_band_edges_cover_the_mel_filters() -> None:
    edges = band_edges_hz(SR, 64)
    assert edges.shape == (64, 3) and np.all(np.diff(edges[:, 1]) > 0)
    bin_hz = np.arange(513) * SR / 1024
    for index, row in enumerate(mel_basis(SR, 1024, 64)):
        support = bin_hz[row > 0]
        assert edges[index, 0] <= support.min() and support.max() <= edges[index, 2]
    band = Band(3, 100.0, 150.0, 200.0, 1.0, 0.5)
    assert band.contains(120.0) and not band.contains(250.0) and "100-200 Hz" in str(band)


def test_time_window_and_errors(gaussian: GaussianDetector) -> None:
    clip = generate_clip(MACHINE, duration=2.0, clip_index=3)
    explanation = explain(gaussian, clip, SR)
    late = explanation.band_scores(start=1.0)
    assert late.shape == (64,) and not np.allclose(late, explanation.band_scores(end=1.0))
    with pytest.raises(ParameterError, match="no window"):
        explanation.band_scores(start=50.0)
    with pytest.raises(ParameterError, match="k must"):
        explanation.top_bands(0)
    with pytest.raises(ParameterError, match="mono"):
        explain(gaussian, np.zeros((2, 16000), np.float32), SR)

    class Opaque(BaseDetector):
        def _fit(self, features: ClipFeatures, labels: Any = None) -> None:
            pass

        def _score_windows(self, windows: np.ndarray) -> np.ndarray:
            return np.zeros(len(windows))

    opaque = Opaque(threshold=1.0).fit(_train(2))
    with pytest.raises(ParameterError, match="no per-feature contributions"):
        explain(opaque, clip, SR)

    class WithHook(Opaque):
        def _feature_contributions(self, windows: np.ndarray) -> np.ndarray:
            return np.ones_like(windows, dtype=np.float64)

    hooked = explain(WithHook(threshold=1.0).fit(_train(2)), clip, SR)
    np.testing.assert_allclose(hooked.scores, 320.0)


def test_plot_keeps_the_backend(gaussian: GaussianDetector, reference: np.ndarray) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    clip = generate_clip(MACHINE, anomaly="bearing_wear", severity=0.8, duration=2.0, clip_index=5)
    fig = explain(gaussian, clip, SR, reference=reference).plot(k=2, start=0.5, end=1.5)
    assert matplotlib.get_backend() == backend
    spectrogram, curve = fig.axes[0], fig.axes[1]
    assert "spectrogram" in spectrogram.get_title() and curve.get_xlabel() == "time [s]"
    labels = [t.get_text() for t in spectrogram.get_legend().get_texts()]
    assert len(labels) == 2 and all(" Hz" in label for label in labels)  # the highlighted bands, labelled
    assert curve.get_lines()  # the score curve
    plt.close(fig)


@pytest.mark.tf
def test_autoencoder_contributions_are_the_reconstruction_error() -> None:
    from soundanomaly.detectors import AutoencoderDetector
    from soundanomaly.detectors.autoencoder import reconstruction_error

    detector = AutoencoderDetector(epochs=1, batch_size=64, threshold=1.0).fit(_train(3))
    windows = detector.features.transform(generate_clip(MACHINE, duration=1.0, clip_index=8), SR)
    per_value = feature_contributions(detector, windows)
    np.testing.assert_allclose(
        per_value.sum(axis=1), reconstruction_error(windows, detector.reconstruct(windows)), rtol=1e-5
    )
    assert (per_value >= 0).all()
    explanation = explain(detector, generate_clip(MACHINE, duration=1.0, clip_index=8), SR)
    np.testing.assert_allclose(explanation.scores, detector._score_windows(windows), rtol=1e-5)


def test_clipstats_contributions_sum_to_the_score_with_std_scaling() -> None:
    """Defect 3 (#21): with scaling="std" the contributions must use the detector's scale_ (c91f061 ignored it)."""
    from soundanomaly.detectors import ClipStatsDetector

    rng = np.random.default_rng(3)
    spread = np.geomspace(0.1, 10.0, 6)  # features on very different scales: the scaling matters
    normal = ClipFeatures.from_arrays([(rng.normal(size=(20, 6)) * spread).astype("float32") for _ in range(6)])
    detector = ClipStatsDetector(method="mahalanobis", scaling="std", threshold=1.0).fit(normal)
    assert not np.allclose(detector.scale_, 1.0)
    windows = (rng.normal(size=(5, 6)) * spread * 2.0).astype("float32")
    per_value = feature_contributions(detector, windows)
    clip_scores = detector.score(ClipFeatures.from_arrays([w[None, :] for w in windows]))
    np.testing.assert_allclose(per_value.sum(axis=1), clip_scores, rtol=1e-9)


def test_clipstats_knn_cannot_be_explained_and_says_so() -> None:
    """Defect 3 (#21): a k-NN ClipStatsDetector gives a clear ParameterError, not a raw NumPy ValueError."""
    from soundanomaly.detectors import ClipStatsDetector

    rng = np.random.default_rng(4)
    normal = ClipFeatures.from_arrays([rng.normal(size=(20, 6)).astype("float32") for _ in range(6)])
    detector = ClipStatsDetector(method="knn", threshold=1.0).fit(normal)
    with pytest.raises(ParameterError, match="mahalanobis"):
        feature_contributions(detector, rng.normal(size=(3, 6)).astype("float32"))


def test_contributions_of_an_unfitted_detector_raise_not_fitted() -> None:
    from soundanomaly.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        feature_contributions(GaussianDetector(), np.zeros((2, 6), np.float32))


def test_a_detector_provides_its_contributions_through_a_public_method() -> None:
    class Uniform(BaseDetector):
        def _fit(self, features: ClipFeatures, labels: Any = None) -> None:
            pass

        def _score_windows(self, windows: np.ndarray) -> np.ndarray:
            return np.full(len(windows), float(windows.shape[1]))

        def feature_contributions(self, windows: np.ndarray) -> np.ndarray:
            return np.ones_like(windows, dtype=np.float64)

    clip = generate_clip(MACHINE, duration=1.0, clip_index=6)
    explanation = explain(Uniform(threshold=1.0).fit(_train(2)), clip, SR)
    np.testing.assert_allclose(explanation.scores, 320.0)

    class Misshapen(Uniform):
        def feature_contributions(self, windows: np.ndarray) -> np.ndarray:
            return np.ones((len(windows), 3))

    with pytest.raises(ParameterError, match="shape"):
        explain(Misshapen(threshold=1.0).fit(_train(2)), clip, SR)
