"""A small convolutional classifier on spectrogram images (the supervised route, offline)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import Channel
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.images import SpectrogramImages
from soundanomaly.typing import FloatArray

__all__ = ["SpectrogramCNNDetector", "build_cnn"]


def build_cnn(height: int, width: int, *, learning_rate: float = 1e-3) -> Any:
    """Conv(16)-pool-Conv(32)-pool-Conv(32), average over time, Dense(32), sigmoid output.

    Averaging over time (not frequency) keeps *where* in the spectrum energy
    sits, which is what tells a fan's faults apart; the output is P(anomaly).
    """
    import keras

    inputs = keras.Input(shape=(height, width, 1), name="spectrogram")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(pool_size=(1, x.shape[2]))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.2)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_anomaly")(x)
    model = keras.Model(inputs, outputs, name="spectrogram_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="binary_crossentropy")
    return model


class SpectrogramCNNDetector(BaseDetector):
    """Supervised image classifier on spectrogram images; score = P(anomaly).

    Unlike the autoencoder this route learns from labelled anomalies (as the
    reference's Rekognition Custom Labels model does). Scores are
    probabilities in [0, 1], higher = more anomalous; the default threshold is
    0.5. Needs the ``tf`` extra to train and to score.

    Parameters
    ----------
    features : SpectrogramImages, default SpectrogramImages()
    epochs : int, default 20
    batch_size : int, default 32
    learning_rate : float, default 1e-3
    validation_split : float, default 0.1
    seed : int or None, default 0
    threshold : float or ThresholdCalibrator, default 0.5
    channel, chunk_size, progress
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Examples
    --------
    >>> from soundanomaly.datasets import synthetic, MIMII
    >>> clips = MIMII(synthetic.write_dataset("fans", ids=[0], n_normal=6, n_abnormal=6, duration=2.0))
    >>> detector = SpectrogramCNNDetector(epochs=2).fit(clips)
    >>> scores = detector.score(clips)
    >>> bool(((scores >= 0) & (scores <= 1)).all()), detector.threshold_
    (True, 0.5)
    """

    supervised = True

    def __init__(
        self,
        *,
        features: BaseFeatureExtractor | None = None,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        validation_split: float = 0.1,
        seed: int | None = 0,
        verbose: int = 0,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = 0.5,
        chunk_size: int = 64,
        progress: bool = False,
    ) -> None:
        super().__init__(
            features=features if features is not None else SpectrogramImages(),
            channel=channel,
            threshold=threshold,
            chunk_size=chunk_size,
            progress=progress,
        )
        if not isinstance(self.features, SpectrogramImages):
            raise ParameterError("SpectrogramCNNDetector needs SpectrogramImages features")
        if not isinstance(epochs, int) or epochs < 1:
            raise ParameterError(f"epochs must be a positive int, got {epochs!r}")
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_split = validation_split
        self.seed = seed
        self.verbose = verbose

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_split": self.validation_split,
            "seed": self.seed,
            "verbose": self.verbose,
            **super().get_params(),
        }

    def _images(self, windows: FloatArray) -> FloatArray:
        height, width = self.image_shape_
        if windows.shape[1] != height * width:
            raise ParameterError(f"images have {windows.shape[1]} pixels, the detector was fitted on {height}x{width}")
        return windows.reshape(len(windows), height, width, 1)

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        import keras

        assert labels is not None
        if np.any(np.diff(features.offsets) != 1):
            raise ParameterError("SpectrogramCNNDetector expects one image per clip")
        assert isinstance(self.features, SpectrogramImages)
        height = self.features.size[1] if self.features.size else self.features.n_mels
        self.image_shape_ = (height, features.n_features // height)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        model = build_cnn(*self.image_shape_, learning_rate=self.learning_rate)
        x = self._images(features.windows)
        # shuffle once so Keras' validation split (the last rows) holds both classes
        order = np.random.default_rng(self.seed).permutation(len(x))
        history = model.fit(
            x[order],
            labels[order].astype(np.float32),
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_split=self.validation_split if len(x) >= 10 else 0.0,
            verbose=self.verbose,
        )
        self.history_: dict[str, list[float]] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.weights_: list[FloatArray] = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
        self._model = model

    def _keras_model(self) -> Any:
        if getattr(self, "_model", None) is None:
            self._model = build_cnn(*self.image_shape_, learning_rate=self.learning_rate)
            self._model.set_weights(self.weights_)
        return self._model

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        model = self._keras_model()
        images = self._images(windows)
        out = [np.asarray(model(images[i : i + 256], training=False)) for i in range(0, len(images), 256)]
        return np.concatenate(out).reshape(-1).astype(np.float64)

    def _get_state(self) -> dict[str, FloatArray]:
        return {f"w{i}": w for i, w in enumerate(self.weights_)}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.weights_ = [state[f"w{i}"] for i in range(len(state))]
        self._model = None

    def _manifest_extra(self) -> dict[str, Any]:
        return {"history": self.history_, "image_shape": list(self.image_shape_)}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        self.history_ = dict(extra.get("history", {}))
        self.image_shape_ = tuple(extra["image_shape"])
