"""A small convolutional classifier on spectrogram images (the supervised route, offline)."""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Instance, Interval, Options
from soundanomaly.calibration import Calibration, ThresholdCalibrator, sweep
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import CalibrationWarning, ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.features.images import SpectrogramImages
from soundanomaly.typing import FloatArray

__all__ = ["SpectrogramCNNDetector", "balanced_threshold", "build_cnn"]

_log = logging.getLogger("soundanomaly.detectors.cnn")
_EPS = 1e-7


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


def balanced_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Probability threshold with the lowest balanced error (FPR + miss rate) on labelled clips.

    Among the thresholds that tie for the lowest error, the middle of their
    range is taken, in log-odds: when the classes separate, that is halfway
    (in log-odds) between the highest normal and the lowest anomalous score,
    which leaves the same margin on both sides.

    Examples
    --------
    >>> round(balanced_threshold([0.01, 0.02, 0.98, 0.99], [0, 0, 1, 1]), 3)
    0.5
    >>> round(balanced_threshold([0.001, 0.01, 0.2, 0.3], [0, 0, 1, 1]), 3)
    0.048

    """
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise ParameterError("balanced_threshold needs both normal (0) and anomalous (1) clips")
    z = np.log(p / (1 - p))
    unique = np.unique(z)
    candidates = np.concatenate([[unique[0] - 1.0], (unique[:-1] + unique[1:]) / 2, [unique[-1] + 1.0]])
    fpr = (z[~y][None, :] > candidates[:, None]).mean(axis=1)
    miss = (z[y][None, :] <= candidates[:, None]).mean(axis=1)
    error = fpr + miss
    best = np.flatnonzero(np.isclose(error, error.min(), rtol=0, atol=1e-12))
    if np.all(np.diff(best) == 1):  # one run of equally good thresholds: the middle of the gap it spans
        low = unique[best[0] - 1] if best[0] > 0 else unique[0] - 1.0
        high = unique[best[-1]] if best[-1] < len(unique) else unique[-1] + 1.0
        z_threshold = (low + high) / 2
    else:
        z_threshold = candidates[best[len(best) // 2]]
    return float(1 / (1 + np.exp(-z_threshold)))


class SpectrogramCNNDetector(BaseDetector):
    """Supervised image classifier on spectrogram images; score = P(anomaly).

    Unlike the autoencoder this route learns from labelled anomalies (as the
    reference's Rekognition Custom Labels model does). Scores are
    probabilities in [0, 1], higher = more anomalous. Needs the ``tf`` extra
    to train and to score.

    **Default threshold.** :meth:`fit` holds out a stratified, seeded share
    (``holdout``, seeded by ``random_state``) of the labelled clips, trains on
    the rest with class weights that balance normal and anomalous clips, then
    sets ``threshold_`` to the probability with the fewest errors (false-alarm
    rate + miss rate) on the held-out clips, in the middle of the gap between
    the classes when they separate (:func:`balanced_threshold`). A fixed
    ``threshold`` (e.g. 0.5) is used as given; a
    :class:`~soundanomaly.calibration.ThresholdCalibrator` runs on the
    held-out scores and labels.

    Parameters
    ----------
    features : SpectrogramImages, default SpectrogramImages()
    epochs : int, default 40
    batch_size : int, default 8
    learning_rate : float, default 3e-3
    class_weight : {"balanced"} or None, default "balanced"
        ``"balanced"`` weighs each class by ``n_clips / (2 * n_class)`` in the
        loss, so the rarer anomalies count as much as the normal clips.
    seed : int or None, default 0
        Seeds the weight initialisation and the shuffling. The caller's global
        ``random`` and ``numpy.random`` states are left as they were.
    verbose : int, default 0
        Keras' training output (0 = silent).
    threshold : float, ThresholdCalibrator or None, default None
        ``None``: calibrated on the held-out clips as described above.
    channel, holdout, aggregate, random_state
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Attributes
    ----------
    threshold_ : float
        Clips with ``score > threshold_`` are predicted anomalous.
    holdout_scores_, holdout_labels_ : np.ndarray
        Scores and labels of the held-out clips the threshold was chosen on.
    history_ : dict
        Keras' training history (``loss`` per epoch).

    Examples
    --------
    >>> from soundanomaly.datasets import synthetic, MIMII
    >>> clips = MIMII(synthetic.write_dataset("fans", ids=[0], n_normal=6, n_abnormal=6, duration=2.0))
    >>> detector = SpectrogramCNNDetector(epochs=2).fit(clips)
    >>> scores = detector.score(clips)
    >>> bool(((scores >= 0) & (scores <= 1)).all()), 0 < detector.threshold_ < 1
    (True, True)
    >>> detector.calibration_.source, detector.calibration_.strategy
    ('holdout', 'balanced_error')
    """

    supervised = True

    _parameter_constraints: ClassVar[Constraints] = {
        "features": [Instance(SpectrogramImages, text="SpectrogramImages"), None],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "class_weight": [Options("balanced", None)],
        "seed": [Interval(int, None, None), None],
        "verbose": [Options(0, 1, 2)],
    }

    def __init__(
        self,
        *,
        epochs: int = 40,
        batch_size: int = 8,
        learning_rate: float = 3e-3,
        class_weight: Literal["balanced"] | None = "balanced",
        seed: int | None = 0,
        verbose: int = 0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.seed = seed
        self.verbose = verbose

    @classmethod
    def _default_features(cls) -> Any:
        return SpectrogramImages()

    def _images(self, windows: FloatArray) -> FloatArray:
        height, width = self.image_shape_
        if windows.shape[1] != height * width:
            raise ParameterError(f"images have {windows.shape[1]} pixels, the detector was fitted on {height}x{width}")
        return windows.reshape(len(windows), height, width, 1)

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        if labels is None:
            raise ParameterError(f"{type(self).__name__} is supervised: pass labels (1 = anomaly) or a ClipSet")
        if np.any(np.diff(features.offsets) != 1):
            raise ParameterError("SpectrogramCNNDetector expects one image per clip")
        extractor = self.features
        assert isinstance(extractor, SpectrogramImages)
        height = extractor.size[1] if extractor.size else extractor.n_mels
        self.image_shape_ = (height, features.n_features // height)
        x = self._images(features.windows)
        y = np.asarray(labels).astype(np.float32)
        weights = None
        if self.class_weight == "balanced":
            counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)
            weights = {c: float(len(y) / (2 * counts[c])) for c in (0, 1) if counts[c]}
        with _seeded(self.seed):
            model = build_cnn(*self.image_shape_, learning_rate=self.learning_rate)
            history = model.fit(
                x,
                y,
                epochs=self.epochs,
                batch_size=self.batch_size,
                class_weight=weights,
                shuffle=True,
                verbose=self.verbose,
            )
        self.history_: dict[str, list[float]] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.weights_: list[FloatArray] = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
        self._model = model

    def _calibrate_threshold(
        self, calibrating: bool, train_labels: npt.NDArray[np.int8] | None, source: str = "holdout"
    ) -> None:
        if not calibrating or isinstance(self.threshold, ThresholdCalibrator):
            super()._calibrate_threshold(calibrating, train_labels, source)
            return
        scores, labels = self.holdout_scores_, self.holdout_labels_
        if labels is None or len(np.unique(labels)) < 2:
            scores, labels, source = self.train_scores_, train_labels, "training"
            warnings.warn(
                f"{type(self).__name__}: no held-out clips of both classes (holdout={self.holdout}); the threshold "
                "comes from the training scores (optimistic). Recalibrate with calibrate(labelled_clips).",
                CalibrationWarning,
                stacklevel=4,
            )
        assert labels is not None
        threshold = balanced_threshold(scores, labels)
        n_abnormal = int(np.sum(labels))
        self.calibration_ = Calibration(
            threshold, "balanced_error", sweep(scores, labels), len(labels) - n_abnormal, n_abnormal, source
        )
        self.threshold_ = threshold
        _log.info("threshold %.4g from %d %s clips (%d anomalous)", threshold, len(labels), source, n_abnormal)

    def _keras_model(self) -> Any:
        if getattr(self, "_model", None) is None:
            self._model = build_cnn(*self.image_shape_, learning_rate=self.learning_rate)
            self._model.set_weights(self.weights_)
        return self._model

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        model = self._keras_model()
        images = self._images(windows)
        if len(images) == 0:
            return np.empty(0, dtype=np.float64)
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


class _seeded:  # noqa: N801 - used like a function
    """Seed Python, NumPy and the Keras backend; put the caller's ``random``/``numpy.random`` states back after."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.python_state = random.getstate()
        self.numpy_state = np.random.get_state()  # noqa: NPY002 - saved to be put back
        if self.seed is not None:
            import keras

            keras.utils.set_random_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        random.setstate(self.python_state)
        np.random.set_state(self.numpy_state)  # noqa: NPY002
