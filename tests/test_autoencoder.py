from __future__ import annotations

import numpy as np
import pytest

from soundanomaly import backends
from soundanomaly.detectors import AutoencoderDetector
from soundanomaly.exceptions import MissingDependencyError, ParameterError
from soundanomaly.features import ClipFeatures


def _features(seed: int = 0, n_clips: int = 6) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, 320)).astype(np.float32)
    return ClipFeatures.from_arrays(
        [base + 0.1 * rng.normal(size=(40, 320)).astype(np.float32) for _ in range(n_clips)]
    )


@pytest.mark.tf
def test_numpy_inference_equals_keras() -> None:
    features = _features()
    detector = AutoencoderDetector(epochs=2, batch_size=64, threshold=1.0).fit(features)
    model = detector.to_keras()
    expected = model.predict(features.windows, verbose=0)
    np.testing.assert_allclose(detector.reconstruct(features.windows), expected, rtol=1e-4, atol=1e-5)
    per_window = np.mean((expected - features.windows) ** 2, axis=1)
    np.testing.assert_allclose(detector.score(features), features.mean_per_clip(per_window), rtol=1e-5)


@pytest.mark.tf
def test_architecture_is_the_reference_one() -> None:
    detector = AutoencoderDetector(epochs=1, batch_size=64, threshold=1.0).fit(_features())
    shapes = [w.shape for w in detector.weights_[::2]]
    assert shapes == [(320, 64), (64, 64), (64, 8), (8, 64), (64, 64), (64, 320)]
    assert detector.to_keras().layers[1].activation.__name__ == "relu"


@pytest.mark.tf
def test_seeded_training_is_reproducible() -> None:
    a = AutoencoderDetector(epochs=2, batch_size=64, seed=7, threshold=1.0).fit(_features())
    b = AutoencoderDetector(epochs=2, batch_size=64, seed=7, threshold=1.0).fit(_features())
    for wa, wb in zip(a.weights_, b.weights_, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert len(a.history_["loss"]) == 2
    assert "val_loss" in a.history_


@pytest.mark.tf
def test_training_reduces_loss_and_early_stopping() -> None:
    detector = AutoencoderDetector(epochs=40, batch_size=32, early_stopping=2, learning_rate=1e-2, threshold=1.0).fit(
        _features()
    )
    losses = detector.history_["loss"]
    assert losses[-1] < losses[0]
    assert len(losses) <= 40


def test_unknown_backend_is_refused_at_construction() -> None:
    for name in ("cloud9", "sagemkr"):
        with pytest.raises(ParameterError, match=f"unknown backend '{name}'; known backends: local"):
            AutoencoderDetector(backend=name)
    with pytest.raises(ParameterError, match="backend must be"):
        AutoencoderDetector(backend=42)


def test_missing_backend_dependency_names_extra() -> None:
    backends.register("fake", "soundanomaly_fake.mod:Backend", extra="fake-extra", package="soundanomaly_fake_pkg")
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'soundanomaly\[fake-extra\]'"):
            AutoencoderDetector(backend="fake", threshold=1.0).fit(_features())
        with pytest.raises(ParameterError, match="already registered"):
            backends.register("fake", "x.y:Z", extra="e", package="p")
    finally:
        backends._REGISTRY.pop("fake")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"hidden": "64"}, "hidden"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"early_stopping": 0}, "early_stopping"),
        ({"seed": 1.5}, "seed"),
        ({"verbose": 3}, "verbose"),
        ({"backend_options": "role"}, "backend_options"),
        ({"threshold": "high"}, "threshold"),
        ({"chunk_size": 2.5}, "chunk_size"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        AutoencoderDetector(**kwargs)  # type: ignore[arg-type]


def test_saved_backend_options_are_not_trusted(tmp_path: object) -> None:
    from pathlib import Path

    from soundanomaly.detectors import load_model

    detector = AutoencoderDetector(threshold=1.0, backend_options={"role": "arn:aws:iam::1:role/x"})
    detector.weights_ = [
        np.zeros((4, 2), np.float32),
        np.zeros(2, np.float32),
        np.zeros((2, 4), np.float32),
        np.zeros(4, np.float32),
    ]
    detector.hidden = (2,)
    detector.n_features_in_, detector.threshold_, detector.train_scores_ = 4, 1.0, np.zeros(3)
    detector.history_, detector.model_data_ = {}, None
    target = detector.save(Path(str(tmp_path)) / "m")
    assert load_model(target).backend_options is None
    assert load_model(target, trust_endpoints=True).backend_options == {"role": "arn:aws:iam::1:role/x"}
    assert load_model(target, backend_options={"role": "mine"}).backend_options == {"role": "mine"}
