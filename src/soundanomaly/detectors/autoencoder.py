"""The reference recipe's dense autoencoder, trained on normal sound only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly import backends
from soundanomaly.audio import Channel
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.typing import FloatArray

__all__ = ["AutoencoderDetector", "EndpointScorer", "reconstruction_error"]


class AutoencoderDetector(BaseDetector):
    """Dense autoencoder on log-mel frames; score = reconstruction error.

    The network (``hidden=(64, 64, 8, 64, 64)``, ReLU, linear output) learns
    to reproduce the feature vectors of normal sound through an 8-unit
    bottleneck. A clip's **score** is the mean over its windows of each
    window's mean squared reconstruction error: higher = more anomalous.

    Parameters
    ----------
    features : BaseFeatureExtractor, default LogMelFrames()
    hidden : tuple of int, default (64, 64, 8, 64, 64)
        Units of the hidden Dense layers.
    epochs : int, default 30
    batch_size : int, default 512
    learning_rate : float, default 1e-3
        Adam's step size.
    validation_split : float in [0, 1), default 0.1
        Share of training windows Keras holds out to report ``val_loss``.
    early_stopping : int or None, default None
        Patience in epochs; ``None`` trains all ``epochs``.
    seed : int or None, default 0
        Seeds Keras/TensorFlow/NumPy for reproducible training.
    backend : str or backend object, default "local"
        Where to train: a registered name (``"local"``, ``"sagemaker"``; see
        :mod:`soundanomaly.backends`) or a backend instance such as
        :class:`~soundanomaly.backends.sagemaker.SageMakerBackend`.
    backend_options : dict, optional
        Keyword arguments for the named backend's constructor, e.g.
        ``{"role": ..., "bucket": ...}`` for SageMaker.
    verbose : int, default 0
        Keras progress output (0 silent, 1 bar, 2 one line per epoch).
    channel, threshold, chunk_size, progress
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Attributes
    ----------
    weights_ : list of np.ndarray
        Kernels and biases, ``[W0, b0, W1, b1, ...]``. Scoring uses them with
        NumPy directly: no TensorFlow needed once trained.
    history_ : dict of str to list of float
        Keras training history (``loss``, ``val_loss``).
    threshold_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> train = ClipFeatures.from_arrays([rng.normal(size=(50, 320)).astype("float32") for _ in range(4)])
    >>> detector = AutoencoderDetector(epochs=2, batch_size=64).fit(train)
    >>> detector.score(train).shape
    (4,)
    >>> detector.predict(train).dtype
    dtype('int8')
    """

    def __init__(
        self,
        *,
        features: BaseFeatureExtractor | None = None,
        hidden: tuple[int, ...] = (64, 64, 8, 64, 64),
        epochs: int = 30,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation_split: float = 0.1,
        early_stopping: int | None = None,
        seed: int | None = 0,
        backend: str | Any = "local",
        backend_options: dict[str, Any] | None = None,
        verbose: int = 0,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = None,
        chunk_size: int = 64,
        progress: bool = False,
    ) -> None:
        super().__init__(
            features=features, channel=channel, threshold=threshold, chunk_size=chunk_size, progress=progress
        )
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        if not hidden or any(int(u) < 1 for u in hidden):
            raise ParameterError(f"hidden must be a non-empty tuple of positive ints, got {hidden!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ParameterError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if not learning_rate > 0:
            raise ParameterError(f"learning_rate must be > 0, got {learning_rate!r}")
        self.hidden = tuple(int(u) for u in hidden)
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.seed = seed
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.verbose = verbose

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        return {
            "hidden": list(self.hidden),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_split": self.validation_split,
            "early_stopping": self.early_stopping,
            "seed": self.seed,
            "backend": self.backend if isinstance(self.backend, str) else self.backend.name,
            "backend_options": self.backend_options,
            "verbose": self.verbose,
            **super().get_params(),
        }

    def _backend(self) -> Any:
        if isinstance(self.backend, str):
            return backends.get(self.backend)(**self.backend_options)
        return self.backend

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        result = self._backend().train(
            features.windows,
            hidden=self.hidden,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            validation_split=self.validation_split,
            early_stopping=self.early_stopping,
            seed=self.seed,
            verbose=self.verbose,
            feature_params=self.features.params(),
        )
        self.weights_: list[FloatArray] = result.weights
        self.history_: dict[str, list[float]] = result.history
        #: S3 URI of the model artifact when a cloud backend trained it.
        self.model_data_: str | None = result.model_data

    def reconstruct(self, windows: FloatArray) -> FloatArray:
        """Run the trained network on ``windows`` (n, n_features) with NumPy, float32."""
        x = np.asarray(windows, dtype=np.float32)
        n_layers = len(self.weights_) // 2
        for i in range(n_layers):
            x = x @ self.weights_[2 * i]
            x += self.weights_[2 * i + 1]
            if i < n_layers - 1:
                np.maximum(x, 0.0, out=x)
        return x

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        out = np.empty(len(windows), dtype=np.float64)
        step = 8192  # bounded temporaries, whatever the number of windows
        for start in range(0, len(windows), step):
            block = windows[start : start + step]
            out[start : start + step] = reconstruction_error(block, self.reconstruct(block))
        return out

    @contextlib.contextmanager
    def deployed(self, **deploy_options: Any) -> Iterator[EndpointScorer]:
        """Serve the trained model from a SageMaker endpoint for the duration of a ``with`` block.

        The endpoint, its config and the model are deleted on exit, also on
        exceptions and Ctrl-C. Options go to :meth:`SageMakerBackend.deploy`
        (``instance_type="ml.c5.large"``, ``instance_count``, ``name``).

        Examples
        --------
        >>> with detector.deployed() as endpoint:  # doctest: +SKIP
        ...     scores = endpoint.score(clips)
        """
        self._check_fitted()
        backend = self._backend()
        if not hasattr(backend, "deploy"):
            raise ParameterError(f"backend {self.get_params()['backend']!r} cannot deploy endpoints; use 'sagemaker'")
        if not self.model_data_:
            raise ParameterError("no model artifact in S3: train with backend='sagemaker' first")
        with backend.deploy(self.model_data_, **deploy_options) as endpoint:
            yield EndpointScorer(self, endpoint)

    def batch_score(self, data: Any, **transform_options: Any) -> npt.NDArray[np.float64]:
        """Score clips with a SageMaker batch transform job (same scores as :meth:`score`).

        ``data`` as for :meth:`score`, or an S3 prefix (``"s3://bucket/clips/"``)
        whose ``.wav`` files are scored in key order; features are extracted
        here (reading ``s3://`` through s3fs), reconstructed by the job, and
        reduced to one score per clip exactly as locally. Options go to
        :meth:`SageMakerBackend.batch_transform`.
        """
        self._check_fitted()
        backend = self._backend()
        if not self.model_data_ or not hasattr(backend, "batch_transform"):
            raise ParameterError("batch_score needs a model trained with backend='sagemaker'")
        if isinstance(data, str) and data.startswith("s3://"):
            data = backend.list_clips(data)
        features = self._checked(self._features(data))
        reconstructed = backend.batch_transform(list(features), self.model_data_, **transform_options)
        per_window = reconstruction_error(features.windows, np.concatenate(reconstructed))
        return features.mean_per_clip(per_window)

    def to_keras(self) -> Any:
        """A compiled ``keras.Model`` with the trained weights (needs the ``tf`` extra)."""
        self._check_fitted()
        backends.get("local")  # clear error naming the 'tf' extra when Keras is missing
        from soundanomaly.backends.local import build_autoencoder

        model = build_autoencoder(self.n_features_in_, self.hidden, learning_rate=self.learning_rate)
        model.set_weights(self.weights_)
        return model

    def _get_state(self) -> dict[str, FloatArray]:
        return {f"w{i}": w for i, w in enumerate(self.weights_)}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.weights_ = [state[f"w{i}"] for i in range(len(state))]

    def _manifest_extra(self) -> dict[str, Any]:
        return {"history": self.history_, "model_data": self.model_data_}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        self.history_ = dict(extra.get("history", {}))
        self.model_data_ = extra.get("model_data")


def reconstruction_error(windows: FloatArray, reconstructed: FloatArray) -> npt.NDArray[np.float64]:
    """Mean squared error of each window, shape ``(n_windows,)``: the per-window anomaly score."""
    diff = np.asarray(reconstructed, dtype=np.float32) - windows
    return np.asarray(np.einsum("ij,ij->i", diff, diff) / windows.shape[1], dtype=np.float64)


class EndpointScorer:
    """Scores clips through a deployed endpoint, reducing exactly as :meth:`AutoencoderDetector.score`."""

    def __init__(self, detector: AutoencoderDetector, endpoint: Any) -> None:
        self.detector = detector
        self.endpoint = endpoint

    def score(self, data: Any) -> npt.NDArray[np.float64]:
        """One score per clip (higher = more anomalous), computed by the endpoint's model."""
        return self.detector._score_clips(data, lambda w: reconstruction_error(w, self.endpoint.reconstruct(w)))

    def predict(self, data: Any) -> npt.NDArray[np.int8]:
        """1 = anomaly, from the detector's ``threshold_``."""
        return (self.score(data) > self.detector.threshold_).astype(np.int8)
