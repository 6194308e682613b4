"""The reference recipe's dense autoencoder, trained on normal sound only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly import backends
from soundanomaly._validation import Constraints, Instance, Interval, Options, Satisfies, int_tuple
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.results import label_scores
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
        Seeds Keras/TensorFlow for reproducible training; the caller's global
        NumPy and ``random`` states are put back after ``fit``.
    backend : str or backend object, default "local"
        Where to train: a registered name (``"local"``, ``"sagemaker"``; see
        :mod:`soundanomaly.backends`) or a backend instance such as
        :class:`~soundanomaly.backends.sagemaker.SageMakerBackend`.
    backend_options : dict, optional
        Keyword arguments for the named backend's constructor, e.g.
        ``{"role": ..., "bucket": ...}`` for SageMaker.
    verbose : int, default 0
        Keras progress output (0 silent, 1 bar, 2 one line per epoch).
    channel, threshold, holdout, aggregate, random_state
        See :class:`~soundanomaly.detectors.base.BaseDetector`: by default 20 %
        of the clips are held out to calibrate ``threshold_`` to 1 % false alarms.
        A saved model's ``backend_options`` (roles, buckets) are not used on
        load unless ``trust_endpoints=True`` (see :meth:`BaseDetector.load`).

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
    >>> train = ClipFeatures.from_arrays([rng.normal(size=(50, 320)).astype("float32") for _ in range(6)])
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:  # 2 held-out clips cannot resolve 1 % false alarms
    ...     warnings.simplefilter("always")
    ...     detector = AutoencoderDetector(epochs=2, batch_size=64).fit(train)
    >>> any(w.category.__name__ == "CalibrationWarning" for w in caught)
    True
    >>> detector.score(train).shape
    (6,)
    >>> detector.predict(train).dtype
    dtype('int8')
    """

    _untrusted_params = BaseDetector._untrusted_params | {"backend_options"}

    _parameter_constraints: ClassVar[Constraints] = {
        "hidden": [Satisfies(int_tuple, "a non-empty tuple of positive ints")],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "validation_split": [Interval(float, 0, 1, closed="left")],
        "early_stopping": [Interval(int, 1, None), None],
        "seed": [Interval(int, None, None), None],
        "verbose": [Options(0, 1, 2)],
        "backend_options": [Instance(dict, text="a dict"), None],
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        if isinstance(self.backend, str):
            if self.backend not in backends.available():
                known = ", ".join(backends.available())
                raise ParameterError(f"unknown backend {self.backend!r}; known backends: {known}")
        elif not callable(getattr(self.backend, "train", None)):
            raise ParameterError(f"backend must be a backend name or an object with train(), got {self.backend!r}")

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (64, 64, 8, 64, 64),
        epochs: int = 30,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        validation_split: float = 0.1,
        early_stopping: int | None = None,
        seed: int | None = 0,
        backend: str | Any = "local",
        backend_options: dict[str, Any] | None = None,
        verbose: int = 0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.seed = seed
        self.backend = backend
        self.backend_options = backend_options
        self.verbose = verbose

    def _persisted_params(self) -> dict[str, Any]:
        params = super()._persisted_params()
        if not isinstance(self.backend, str):
            params["backend"] = str(getattr(self.backend, "name", "local"))
        return params

    def _backend(self) -> Any:
        if isinstance(self.backend, str):
            return backends.get(self.backend)(**(self.backend_options or {}))
        return self.backend

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        result = self._backend().train(
            features.windows,
            hidden=tuple(int(u) for u in self.hidden),
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

    def feature_contributions(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        """Each value's squared reconstruction error over ``D`` (rows sum to the window's score), for ``explain``."""
        self._check_fitted()
        windows = np.asarray(windows, dtype=np.float32)
        diff = np.asarray(self.reconstruct(windows), dtype=np.float64) - windows
        return np.asarray(diff * diff / windows.shape[1])

    def stream_scorer(self) -> Any:
        """The monitor's incremental scorer of this model (:mod:`soundanomaly.streaming.scorers`), or None.

        None for a network without a hidden layer, or a subclass that scores or reconstructs otherwise.
        """
        from soundanomaly.streaming.scorers import AutoencoderStreamScorer

        cls = type(self)
        own = (
            cls._score_windows is AutoencoderDetector._score_windows
            and cls.reconstruct is AutoencoderDetector.reconstruct
        )
        return AutoencoderStreamScorer(self.weights_) if own and len(self.weights_) >= 4 else None

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
            raise ParameterError(
                f"backend {self._persisted_params()['backend']!r} cannot deploy endpoints; use 'sagemaker'"
            )
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
        return self._reduce(per_window, features.offsets)

    def to_keras(self) -> Any:
        """A compiled ``keras.Model`` with the trained weights (needs the ``tf`` extra)."""
        self._check_fitted()
        backends.get("local")  # clear error naming the 'tf' extra when Keras is missing
        from soundanomaly.backends.local import build_autoencoder

        model = build_autoencoder(
            self.n_features_in_, tuple(int(u) for u in self.hidden), learning_rate=self.learning_rate
        )
        model.set_weights(self.weights_)
        return model

    def _get_state(self) -> dict[str, FloatArray]:
        return {f"w{i}": w for i, w in enumerate(self.weights_)}

    def _state_spec(self) -> dict[str, tuple[int | None, ...]]:
        dims = [self.n_features_in_, *(int(u) for u in self.hidden), self.n_features_in_]
        spec: dict[str, tuple[int | None, ...]] = {}
        for i in range(len(dims) - 1):
            spec[f"w{2 * i}"] = (dims[i], dims[i + 1])
            spec[f"w{2 * i + 1}"] = (dims[i + 1],)
        return spec

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.weights_ = [state[f"w{i}"].astype(np.float32) for i in range(len(state))]

    def _export_parts(self) -> dict[str, Any]:
        return {"kind": "autoencoder", "weights": list(self.weights_)}

    def _manifest_extra(self) -> dict[str, Any]:
        return {"history": self.history_, "model_data": self.model_data_}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        history = extra.get("history", {})
        if not isinstance(history, dict):
            raise TypeError("history must be an object")
        self.history_ = dict(history)
        model_data = extra.get("model_data")
        if model_data is not None and not isinstance(model_data, str):
            raise TypeError("model_data must be a string or null")
        self.model_data_ = model_data


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
        """1 = anomaly, from the detector's ``threshold_`` (a NaN score gives 1)."""
        return label_scores(self.score(data), self.detector.threshold_)
