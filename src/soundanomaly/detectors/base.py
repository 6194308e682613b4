"""The detector base class: input handling, held-out calibration, predict, save/load.

A detector subclass writes only how it fits (``_fit``) and how it scores
feature windows (``_score_windows``); this class does everything else.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import numbers
import os
import random
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import numpy.typing as npt

from soundanomaly import _safeio
from soundanomaly import sessions as _sessions
from soundanomaly._progress import ProgressBar
from soundanomaly._validation import check_finite_float, check_labels, check_positive_int
from soundanomaly.audio import Channel
from soundanomaly.calibration import Calibration, ThresholdCalibrator, sweep
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import group_keys, session_keys
from soundanomaly.exceptions import (
    AudioError,
    CalibrationWarning,
    InvalidScoreError,
    InvalidScoreWarning,
    ModelFormatError,
    NotFittedError,
    ParameterError,
    SoundAnomalyError,
)
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.logmel import LogMelFrames
from soundanomaly.results import ClipScore, clip_scores, label_scores
from soundanomaly.typing import ClipData, FloatArray, PathLike

__all__ = [
    "DEFAULT_TARGET_FPR",
    "FORMAT_VERSION",
    "BaseDetector",
    "features_from_params",
    "find_training_clips",
    "load_model",
    "register_extractor",
]

_log = logging.getLogger("soundanomaly.detectors")

#: Version of the on-disk model format written by :meth:`BaseDetector.save` (1: before 0.2; still read).
FORMAT_VERSION = 2
#: False-alarm rate the default threshold aims at on held-out normal clips.
DEFAULT_TARGET_FPR = 0.01
#: Fewest clips ``fit`` holds out, and fewest it keeps for training after the hold-out.
MIN_HOLDOUT_CLIPS = 2
#: Most training clips recorded (path + content hash) in a saved model.
MAX_RECORDED_CLIPS = 20_000
#: Limits when reading ``state.npz``: total declared bytes, elements of an array with a free dimension, members.
MAX_STATE_BYTES = 1 << 30
MAX_FREE_ELEMENTS = 50_000_000
MAX_STATE_MEMBERS = 4096
_MAX_MANIFEST_BYTES = 64 << 20

_BUILTIN_EXTRACTORS = {
    "LogMelFrames": "soundanomaly.features.logmel:LogMelFrames",
    "SpectrogramImages": "soundanomaly.features.images:SpectrogramImages",
    "ClipStatistics": "soundanomaly.detectors.clipstats:ClipStatistics",
    "MultiChannel": "soundanomaly.features.multichannel:MultiChannel",
    "TimeWeightedFrequency": "soundanomaly.features.twfr:TimeWeightedFrequency",
}
_BUILTIN_DETECTORS = {
    "GaussianDetector": "soundanomaly.detectors.gaussian",
    "AutoencoderDetector": "soundanomaly.detectors.autoencoder",
    "SpectrogramCNNDetector": "soundanomaly.detectors.cnn",
    "RekognitionDetector": "soundanomaly.detectors.rekognition",
    "ClipStatsDetector": "soundanomaly.detectors.clipstats",
    "MachineIdDetector": "soundanomaly.detectors.machine_id",
    "PerGroup": "soundanomaly.detectors.pergroup",
    "Ensemble": "soundanomaly.detectors.ensemble",
    "DomainKNNDetector": "soundanomaly.detectors.domain_knn",
    "SelectiveMahalanobisDetector": "soundanomaly.detectors.selective_mahalanobis",
    "TWFRGMMDetector": "soundanomaly.detectors.twfr_gmm",
    "AuxiliaryClassifierDetector": "soundanomaly.detectors.auxiliary",
}
_EXTRACTORS: dict[str, type[Any]] = {"LogMelFrames": LogMelFrames}
_DETECTORS: dict[str, type[BaseDetector]] = {}
_STATUS_OK = "ok"
_STATUS_INVALID = "invalid: non-finite score"

# Manifest keys per format version: required, optional.
_MANIFEST_KEYS: dict[int, tuple[frozenset[str], frozenset[str]]] = {
    1: (
        frozenset(
            {"format_version", "library_version", "detector", "params", "features", "threshold", "n_features_in"}
        ),
        frozenset({"extra"}),
    ),
    2: (
        frozenset(
            {
                "format_version",
                "library_version",
                "detector",
                "params",
                "features",
                "threshold",
                "n_features_in",
                "extra",
                "training_clips",
                "calibration",
            }
        ),
        frozenset(),
    ),
}


def register_extractor(cls: type[Any], *, name: str | None = None) -> type[Any]:
    """Make a feature extractor class loadable from saved models; usable as a decorator.

    A saved model stores its extractor as ``params()`` (which should hold a
    ``"name"``; the class name is used otherwise). :meth:`BaseDetector.load`
    rebuilds it as ``cls(**params_without_name)`` from this registry. Built-in
    extractors and every imported subclass of
    :class:`~soundanomaly.features.base.BaseFeatureExtractor` are found
    automatically; an extractor written only to the
    :class:`~soundanomaly.typing.FeatureExtractor` protocol must be registered.
    Nothing is ever imported because a model file names it.

    Parameters
    ----------
    cls : class
        Has ``transform(signal, sr)`` and ``params()``; its constructor takes the params as keywords.
    name : str, optional
        Registry key; default ``cls.__name__``.

    Examples
    --------
    >>> import numpy as np
    >>> @register_extractor
    ... class Energy:
    ...     def __init__(self, *, frame=400):
    ...         self.frame = frame
    ...     def transform(self, signal, sr):
    ...         n = len(signal) // self.frame * self.frame
    ...         return (signal[:n].reshape(-1, self.frame) ** 2).mean(axis=1, keepdims=True).astype(np.float32)
    ...     def params(self):
    ...         return {"name": "Energy", "frame": self.frame}
    >>> features_from_params({"name": "Energy", "frame": 800}).frame
    800

    """
    if not isinstance(cls, type) or not callable(getattr(cls, "transform", None)):
        raise ParameterError(f"register_extractor needs a class with transform() and params(), got {cls!r}")
    _EXTRACTORS[name or cls.__name__] = cls
    return cls


def _find_extractor(name: str) -> type[Any] | None:
    if name in _EXTRACTORS:
        return _EXTRACTORS[name]
    if name in _BUILTIN_EXTRACTORS:
        import importlib

        module, attribute = _BUILTIN_EXTRACTORS[name].split(":")
        cls: type[Any] = getattr(importlib.import_module(module), attribute)
        return register_extractor(cls, name=name)
    stack: list[type[Any]] = [BaseFeatureExtractor]
    while stack:  # already-imported subclasses register themselves by class name
        for sub in stack.pop().__subclasses__():
            if sub.__name__ == name:
                return register_extractor(sub)
            stack.append(sub)
    return None


def features_from_params(params: dict[str, Any]) -> Any:
    """Rebuild a feature extractor from its ``params()`` dict (see :func:`register_extractor`).

    Raises
    ------
    ModelFormatError
        Not a dict, an unknown extractor name, or parameters its class refuses.

    Examples
    --------
    >>> features_from_params({"name": "LogMelFrames", "n_mels": 32}).n_mels
    32
    """
    if not isinstance(params, dict):
        raise ModelFormatError(f"feature parameters must be a JSON object, got {type(params).__name__}")
    params = dict(params)
    name = params.pop("name", None)
    cls = _find_extractor(name) if isinstance(name, str) else None
    if cls is None:
        known = sorted(set(_EXTRACTORS) | set(_BUILTIN_EXTRACTORS))
        raise ModelFormatError(
            f"unknown feature extractor {name!r}; known: {known} (register a custom one with "
            "soundanomaly.register_extractor)"
        )
    if name == "SpectrogramImages" and isinstance(params.get("size"), list):
        params["size"] = tuple(params["size"])
    try:
        return cls(**params)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ModelFormatError(f"feature extractor {name!r} refuses the saved parameters {params}: {exc}") from exc


def _parse_aggregate(spec: object) -> tuple[str, float]:
    """``"mean"``, ``"max"``, ``"percentile:<q in [0, 100]>"`` or ``"topk:<k >= 1>"`` -> (kind, argument)."""
    if isinstance(spec, str):
        if spec in ("mean", "max"):
            return spec, 0.0
        kind, _, arg = spec.partition(":")
        try:
            value = float(arg)
        except ValueError:
            value = math.nan
        if kind == "percentile" and 0.0 <= value <= 100.0:
            return kind, value
        if kind == "topk" and value >= 1 and value == int(value):
            return kind, value
    raise ParameterError(
        f"aggregate must be 'mean', 'max', 'percentile:<q in 0..100>' or 'topk:<k >= 1>', got {spec!r}"
    )


class _ProtocolExtractor(BaseFeatureExtractor):
    """Gives an extractor written only to the FeatureExtractor protocol the batch machinery (files, cache, skip)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        rate = getattr(inner, "sr", None)
        if rate is not None:
            self.sr = rate

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        return np.asarray(self.inner.transform(signal, sr), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return _extractor_params(self.inner)


def _extractor_params(extractor: Any) -> dict[str, Any]:
    params = dict(extractor.params())
    params.setdefault("name", type(extractor).__name__)
    return params


class BaseDetector:
    """Base of every detector; its parameters are common to all subclasses.

    Parameters
    ----------
    features : BaseFeatureExtractor or FeatureExtractor, optional
        Any object with ``transform(signal, sr)`` and ``params()`` works;
        ``None`` means ``LogMelFrames()`` (``get_params`` reports None; the
        ``features`` attribute is the extractor in use).
    channel : int, "mean" or None, default 0
        Microphone used when given clip paths.
    threshold : float, ThresholdCalibrator or None, default None
        How :meth:`fit` sets ``threshold_``: a fixed number (nothing is held
        out), a calibrator run on held-out clips, or ``None`` for
        ``ThresholdCalibrator("target_fpr", target_fpr=0.01)`` on held-out
        normal clips.
    holdout : float in [0, 1), default 0.2
        Share of the training clips (whole clips, seeded by ``random_state``,
        stratified by label for supervised detectors) that :meth:`fit` keeps
        out of training to calibrate the threshold. ``0`` trains on every clip
        and calibrates on the training scores (optimistic: more false alarms
        on new clips). Ignored when ``threshold`` is a number.
    aggregate : str, default "mean"
        How window scores become one clip score: ``"mean"``, ``"max"``,
        ``"percentile:<q>"`` (q in 0..100) or ``"topk:<k>"`` (mean of the k
        highest windows).
    chunk_size : int, default 64
        Clips per feature-extraction chunk when scoring paths: memory stays flat
        in the number of clips.
    n_jobs : int, default 1
        Worker processes for feature extraction (``-1``: every core).
    cache_dir : str, os.PathLike or None
        On-disk feature cache (see ``BaseFeatureExtractor.extract``).
    progress : bool, default False
        One progress bar on stderr for the whole fit or scoring run.
    on_error : {"raise", "skip"}, default "raise"
        A clip that cannot be read, or that gets a NaN/infinite score: ``"raise"``
        stops with an error naming it (:class:`~soundanomaly.exceptions.AudioError`,
        :class:`~soundanomaly.exceptions.InvalidScoreError`); ``"skip"`` goes on:
        ``fit`` leaves it out, ``score`` gives it a NaN score and ``predict``
        labels it 1 (fail closed), with an
        :class:`~soundanomaly.exceptions.InvalidScoreWarning`.
    random_state : int or None, default 0
        Seeds the hold-out split (a local generator: the global NumPy random
        state is never touched; ``fit`` restores it even if a backend reseeds).

    Attributes
    ----------
    threshold_ : float
        Clips with ``score > threshold_`` are predicted anomalous (PyOD: ``threshold_``).
    train_scores_ : np.ndarray
        Scores of the clips the model was trained on (PyOD: ``decision_scores_``).
    holdout_scores_ : np.ndarray
        Scores of the held-out clips the threshold was calibrated on (empty if none).
    calibration_ : Calibration or None
        How ``threshold_`` was chosen (strategy, clip counts, ``source``); None for a fixed threshold.
    n_features_in_ : int
        Width of the feature vectors seen in :meth:`fit`.
    training_clips_ : list of [str, str or None]
        The clips given to :meth:`fit` (blake2b-128 of each local file), saved with the model;
        see :func:`find_training_clips`.
    last_status_ : tuple of str
        Per-clip status of the last :meth:`score` call, aligned with its input:
        ``"ok"``, ``"skipped: <reason>"`` (unreadable, ``on_error="skip"``) or
        ``"invalid: non-finite score"``. Skipped and invalid clips score NaN.

    Notes
    -----
    **Default threshold (the hold-out rule).** With ``threshold=None`` (or a
    calibrator), ``fit`` holds out ``holdout`` of the normal clips (at least
    2, and only if 2 are left to train on), trains on the rest (it does not
    refit on all), and picks the smallest threshold that flags at most
    ``target_fpr`` of the held-out clips. With ``n`` held-out clips the finest
    rate that can be resolved is about ``1 / (n + 1)``: when the target is
    finer, the threshold is the highest held-out score and a
    :class:`~soundanomaly.exceptions.CalibrationWarning` says so. PyOD users:
    ``contamination`` corresponds to ``target_fpr``, ``decision_scores_`` to
    ``train_scores_``, ``decision_function`` is :meth:`score`.

    **Subclass contract.** ``__init__`` takes keyword-only arguments, stores
    each one unchanged under its own name and passes the base parameters to
    ``super().__init__``; ``get_params``/``set_params``/``repr``/``clone``
    derive from the signature. Write ``_fit(features, labels)`` (labels only
    for ``supervised`` detectors; ``self._fit_groups`` holds per-clip group
    keys such as ``"fan/id_00"`` aligned with ``features``, or None),
    ``_score_windows(windows) -> float64 (n_windows,)``, ``_get_state()`` /
    ``_set_state()`` (float arrays), optionally ``_state_spec()`` (expected
    array shapes, checked before any array is read on load),
    ``_manifest_extra()`` / ``_load_manifest_extra()``. Per-clip reduction:
    :meth:`_reduce`.

    Examples
    --------
    A detector writes only how it fits and how it scores windows:

    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> class Loudness(BaseDetector):
    ...     def _fit(self, features, labels=None):
    ...         self.mean_ = float(features.windows.mean())
    ...     def _score_windows(self, windows):
    ...         return np.abs(windows.mean(axis=1) - self.mean_)
    >>> normal = ClipFeatures.from_arrays([np.zeros((5, 2), np.float32)] * 3)
    >>> odd = ClipFeatures.from_arrays([np.full((5, 2), 4.0, np.float32)])
    >>> Loudness(threshold=1.0).fit(normal).predict(odd).tolist()
    [1]
    >>> Loudness(threshold=1.0, aggregate="max")
    Loudness(threshold=1.0, aggregate='max')

    """

    #: Whether ``fit`` needs anomalous examples (supervised) or normal ones only.
    supervised: ClassVar[bool] = False
    #: Whether the base holds clips out and calibrates; a subclass that does it in ``_fit`` sets False and
    #: leaves ``holdout_scores_`` (and ``holdout_labels_``) for the base to calibrate on.
    _uses_base_holdout: ClassVar[bool] = True
    #: Parameters a saved model may not set on load (they open connections): only the caller passes them.
    _untrusted_params: ClassVar[frozenset[str]] = frozenset({"endpoint_url", "s3_endpoint_url", "region"})

    # learned state (set by fit / load; declared here for type checkers only)
    threshold_: float
    train_scores_: npt.NDArray[np.float64]
    holdout_scores_: npt.NDArray[np.float64]
    holdout_labels_: npt.NDArray[np.int8] | None
    calibration_: Calibration | None
    n_features_in_: int
    training_clips_: list[list[str | None]]
    fit_skipped_: tuple[tuple[str, str], ...]
    last_status_: tuple[str, ...]
    last_source_rates_: tuple[int | None, ...]
    _fit_groups: npt.NDArray[np.str_] | None
    _fit_sessions: npt.NDArray[np.str_] | None
    session_thresholds_: dict[str, float]
    _by_domain: bool = False
    _score_groups: npt.NDArray[np.str_] | None = None
    _score_sessions: npt.NDArray[np.str_] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _DETECTORS[cls.__name__] = cls

    def __init__(
        self,
        *,
        features: Any = None,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = None,
        holdout: float = 0.2,
        aggregate: str = "mean",
        chunk_size: int = 64,
        n_jobs: int = 1,
        cache_dir: PathLike | None = None,
        progress: bool = False,
        on_error: str = "raise",
        random_state: int | None = 0,
    ) -> None:
        check_positive_int(chunk_size, name="chunk_size")
        if threshold is not None and not isinstance(threshold, ThresholdCalibrator):
            check_finite_float(threshold, name="threshold")
        if isinstance(holdout, bool) or not 0.0 <= check_finite_float(holdout, name="holdout") < 1.0:
            raise ParameterError(f"holdout must be a number in [0, 1), got {holdout!r}")
        _parse_aggregate(aggregate)
        if not (n_jobs == -1 or (isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs >= 1)):
            raise ParameterError(f"n_jobs must be a positive int or -1, got {n_jobs!r}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ParameterError(f"cache_dir must be a path or None, got {cache_dir!r}")
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, int)):
            raise ParameterError(f"random_state must be an int or None, got {random_state!r}")
        if not (channel is None or channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool))):
            raise ParameterError(f"channel must be an int, 'mean' or None, got {channel!r}")
        if features is not None and not (
            callable(getattr(features, "transform", None)) and callable(getattr(features, "params", None))
        ):
            raise ParameterError(f"features must have transform(signal, sr) and params(), got {features!r}")
        self.features = features
        self.channel = channel
        self.threshold = threshold
        self.holdout = holdout
        self.aggregate = aggregate
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.progress = progress
        self.on_error = on_error
        self.random_state = random_state

    # -- what subclasses write -------------------------------------------------
    @classmethod
    def _default_features(cls) -> Any:
        """The extractor used for ``features=None``."""
        return LogMelFrames()

    @property
    def features(self) -> Any:
        """The feature extractor in use (the default one when the ``features`` parameter is None).

        ``get_params()["features"]`` reports the parameter as given (None for
        the default), as scikit-learn expects.

        Examples
        --------
        >>> from soundanomaly.detectors import GaussianDetector
        >>> type(GaussianDetector().features).__name__, GaussianDetector().get_params()["features"]
        ('LogMelFrames', None)
        """
        raw = self.__dict__.get("_features_given")
        return raw if raw is not None else self._default_features()

    @features.setter
    def features(self, value: Any) -> None:
        self.__dict__["_features_given"] = value

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None) -> None:  # pragma: no cover
        """Learn from features; ``labels`` (1 = anomaly) are given to supervised detectors only."""
        raise NotImplementedError

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:  # pragma: no cover - abstract
        """Per-window anomaly score, shape ``(n_windows,)``."""
        raise NotImplementedError

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        """Scores of the training clips (``train_scores_``)."""
        return self._score_features(features)

    def _get_state(self) -> dict[str, FloatArray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, state: dict[str, FloatArray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_spec(self) -> dict[str, tuple[int | None, ...]] | None:
        """Expected ``state.npz`` arrays (name -> shape, None = any length), or None for "any float arrays".

        Called on load after the parameters, ``n_features_in_`` and the manifest
        extras are set, before any array payload is read.
        """
        return None

    def _manifest_extra(self) -> dict[str, Any]:
        return {}

    def _export_parts(self) -> dict[str, Any]:
        """The fitted per-window score as plain arrays, for :mod:`soundanomaly.export` (exact, no code).

        Exportable detectors return ``{"kind": "mahalanobis" | "knn" | "autoencoder", ...}`` with the
        arrays their ``_score_windows`` uses; the default refuses with one message saying why.
        """
        raise ParameterError(
            f"{type(self).__name__} cannot be exported: its window score is not a fixed computation on arrays "
            "that an ONNX or TFLite file can hold exactly"
        )

    def _export_target(self, group: str | None) -> tuple[BaseDetector, float, str | None]:
        """The detector that scores one stream, the offset added to its score and its group (PerGroup: one group)."""
        if group is not None:
            raise ParameterError(f"group={group!r} applies to a PerGroup model, not a {type(self).__name__}")
        return self, 0.0, None

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        return None

    # -- scikit-learn conventions -------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        names = []
        for parameter in signature.parameters.values():
            if parameter.name == "self" or parameter.kind == parameter.VAR_KEYWORD:
                continue
            if parameter.kind == parameter.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__}.__init__ may not take *args (scikit-learn convention)")
            names.append(parameter.name)
        return names

    def _signature_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in self._param_names() if hasattr(self, name)}
        if "features" in params:
            params["features"] = self.__dict__.get("_features_given")  # as given: None means the default extractor
        return params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, read from the ``__init__`` signature (scikit-learn convention).

        Parameters
        ----------
        deep : bool, default True
            Also return the parameters of sub-objects that have ``get_params``
            (e.g. ``threshold__target_fpr``).

        Examples
        --------
        >>> from soundanomaly.detectors import GaussianDetector
        >>> GaussianDetector(shrinkage=0.1).get_params()["shrinkage"]
        0.1
        """
        params = self._signature_params()
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return params

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters (validated as the constructor does); returns ``self``.

        Examples
        --------
        >>> from soundanomaly.detectors import GaussianDetector
        >>> GaussianDetector().set_params(aggregate="max").aggregate
        'max'
        >>> GaussianDetector().set_params(chunk_size=2.5)
        Traceback (most recent call last):
        ...
        soundanomaly.exceptions.ParameterError: chunk_size must be a positive int, got 2.5
        """
        if not params:
            return self
        valid = self._signature_params()
        direct: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ParameterError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid parameters: {sorted(valid)}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                direct[name] = value
        type(self)(**{**valid, **direct})  # validates: raises ParameterError as the constructor would
        for name, value in direct.items():
            setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        try:
            signature = inspect.signature(type(self).__init__)
            parts = []
            for name, value in self._signature_params().items():
                default = signature.parameters[name].default
                try:
                    same = value is default or bool(value == default)
                except Exception:  # odd objects: show them
                    same = False
                if not same:
                    parts.append(f"{name}={value!r}")
            return f"{type(self).__name__}({', '.join(parts)})"
        except Exception:  # repr must never crash
            return f"<{type(self).__name__} (unrepresentable parameters)>"

    def __sklearn_tags__(self) -> Any:  # pragma: no cover - only with scikit-learn's tag machinery
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="outlier_detector", target_tags=TargetTags(required=self.supervised))

    # -- public API -------------------------------------------------------------
    def fit(
        self,
        data: ClipData,
        labels: npt.ArrayLike | None = None,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        validation: ClipData | None = None,
    ) -> Self:
        """Learn from clips, then calibrate ``threshold_`` on held-out clips.

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
            Unsupervised detectors learn from normal clips: abnormal clips of a
            labelled ClipSet (or with ``labels`` 1) are left out with a warning.
        labels : array-like of {0, 1} or {"normal", "abnormal"}, optional
            1 = anomaly. Defaults to the ClipSet's labels; otherwise all normal.
            Supervised detectors need both classes.
        groups : sequence of str, optional
            Per-clip group keys handed to ``_fit`` as ``self._fit_groups``;
            default :func:`~soundanomaly.datasets.keys.group_key` of each record
            or path (``"fan/id_00"``, ``"fan/section_00"``), None if unknown.
        sessions : sequence of str, optional
            Per-clip session keys handed to ``_fit`` as ``self._fit_sessions``;
            default :func:`~soundanomaly.datasets.keys.session_key` of each
            record or path (a DCASE domain), None if no clip has one. With
            sessions, the threshold is calibrated on whole held-out sessions
            (days, runs) or per domain (``session_thresholds_``): see
            :mod:`soundanomaly.sessions`.
        validation : ClipSet, sequence of paths, or ClipFeatures, optional
            Clips to calibrate the threshold on instead of a hold-out: ``fit``
            trains on every clip of ``data`` and runs the ``threshold``
            calibrator on the scores of these (their labels when a labelled
            ClipSet, else all normal). Not with a numeric ``threshold``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Wrong input types, bad labels, fewer than 2 feature windows, NaN
            features (unless ``on_error="skip"``), degenerate data.
        """
        self._check_data(data)
        name = type(self).__name__
        calibrating = not isinstance(self.threshold, numbers.Real)
        if validation is not None:
            self._check_data(validation)
            if not calibrating:
                raise ParameterError(
                    f"{name}: validation= calibrates a threshold; this one is fixed ({self.threshold})"
                )
        n = len(data)
        y: npt.NDArray[np.int8] | None = None if labels is None else check_labels(labels, n=n)
        if isinstance(data, ClipSet) and y is None:
            y = data.labels if self.supervised else np.array([r.label == "abnormal" for r in data], np.int8)
        g = group_keys(data, groups, required=False)
        s = session_keys(data, sessions)
        if self.supervised:
            if y is None:
                raise ParameterError(f"{name} is supervised: pass labels (1 = anomaly) or a labelled ClipSet")
            if len(np.unique(y)) != 2:
                raise ParameterError(f"{name} is supervised: labels must contain both normal (0) and anomalous (1)")
        elif y is not None and y.any():
            keep = np.flatnonzero(y == 0)
            if not len(keep):
                raise ParameterError(f"{name} trains on normal sound only, and every clip given is abnormal")
            warnings.warn(
                f"{name} trains on normal sound only: using the {len(keep)} normal clip(s) and leaving out "
                f"{n - len(keep)} abnormal one(s)",
                UserWarning,
                stacklevel=2,
            )
            data = _take_data(data, keep)
            g = None if g is None else g[keep]
            s = None if s is None else s[keep]
            y = None
        else:
            y = None

        paths: list[str] | None = None
        if isinstance(data, ClipFeatures):
            features = data
        else:
            paths = self._paths(data)
            with ProgressBar(total=len(paths), desc="features", enabled=bool(self.progress)) as bar:
                features = self._extract(paths, bar)
        kept = _kept_mask(paths, features)
        if not kept.all():
            y = None if y is None else y[kept]
            g = None if g is None else g[kept]
            s = None if s is None else s[kept]
        features, y, g, s = self._drop_nonfinite(features, y, g, s)
        if len(features.windows) < 2:
            raise ParameterError(f"{name} needs at least 2 feature windows to fit, got {len(features.windows)}")
        if y is not None and self.supervised and len(np.unique(y)) != 2:
            raise ParameterError(f"{name} is supervised: the readable clips hold only one class")

        train_idx, hold_idx = self._holdout_split(len(features), y, calibrating and validation is None, s)
        train = features if len(hold_idx) == 0 else _take(features, train_idx)
        self._fit_groups = None if g is None else g[train_idx]
        self._fit_sessions = None if s is None else s[train_idx]
        y_train = None if y is None else y[train_idx]
        self.n_features_in_ = features.n_features
        with _global_rng_kept():
            self._fit(train, y_train)
            self.train_scores_ = self._training_scores(train)
            if len(hold_idx):
                self.holdout_scores_ = self._score_features(_take(features, hold_idx))
                self.holdout_labels_ = None if y is None else y[hold_idx]
            elif self._uses_base_holdout or not hasattr(self, "holdout_scores_"):
                self.holdout_scores_ = np.empty(0, dtype=np.float64)
                self.holdout_labels_ = None
        source = "holdout"
        if validation is not None:
            self.threshold_ = math.nan  # scoring needs a fitted model; the calibration below sets the threshold
            try:
                self.holdout_scores_ = self.score(validation)
            except BaseException:
                del self.threshold_
                raise
            self.holdout_labels_ = validation.labels if isinstance(validation, ClipSet) else None
            source = "validation"
        self._calibrate_threshold(calibrating, y_train, source)
        self.session_thresholds_ = {}
        if source == "holdout" and s is not None and len(hold_idx) and self._by_domain:
            self._set_session_thresholds(self.holdout_scores_, s[hold_idx])
        self.training_clips_ = _clip_records(features.paths)
        self.fit_skipped_ = tuple(getattr(features, "skipped", ()))
        return self

    def score(
        self, data: ClipData, *, groups: Sequence[str] | None = None, sessions: Sequence[str] | None = None
    ) -> npt.NDArray[np.float64]:
        """Anomaly score of each clip: **higher = more anomalous**.

        Unlike scikit-learn's ``score(X, y)``, this returns one value per clip.
        Per-clip status goes to ``last_status_`` (see :meth:`score_records`).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        groups, sessions : sequence of str, optional
            Per-clip group / session keys (see :mod:`soundanomaly.datasets.keys`);
            detectors that route or condition on them read them, others ignore them.

        Returns
        -------
        np.ndarray [shape=(n_clips,)], float64
            NaN only for clips skipped or invalid under ``on_error="skip"``.

        Raises
        ------
        InvalidScoreError
            A clip got a NaN/infinite score (``on_error="raise"``).
        """
        self._check_fitted()
        self._score_groups = None if groups is None else group_keys(data, groups)
        self._score_sessions = None if sessions is None else session_keys(data, sessions)
        try:
            return self._score_clips(data, self._score_windows)
        finally:
            self._score_groups = self._score_sessions = None

    def score_with_status(self, data: ClipData) -> tuple[npt.NDArray[np.float64], tuple[str, ...]]:
        """Scores and per-clip status (``"ok"``, ``"skipped: <reason>"``, ``"invalid: non-finite score"``).

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.detectors import GaussianDetector
        >>> from soundanomaly.features import ClipFeatures
        >>> train = ClipFeatures.from_arrays([np.random.default_rng(i).normal(size=(20, 3)).astype("f4") for i in range(4)])
        >>> detector = GaussianDetector(threshold=2.0, on_error="skip").fit(train)
        >>> bad = ClipFeatures.from_arrays([np.zeros((2, 3), "f4"), np.full((2, 3), np.inf, "f4")])
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     scores, status = detector.score_with_status(bad)
        ...     labels = detector.predict(bad)
        >>> status, labels.tolist(), caught[0].category.__name__
        (('ok', 'invalid: non-finite score'), [0, 1], 'InvalidScoreWarning')

        """
        scores = self.score(data)
        return scores, self.last_status_

    def score_records(
        self, data: ClipData, *, groups: Sequence[str] | None = None, sessions: Sequence[str] | None = None
    ) -> list[ClipScore]:
        """Score clips and describe each one: path, group, score, label, status, reason, source sample rate.

        Aligned with the input. A clip that could not be read (``on_error="skip"``)
        is ``"skipped"``, one whose score is NaN/infinite ``"invalid"``; both
        score NaN and are labelled 1 (:func:`soundanomaly.results.label_scores`).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        groups, sessions : sequence of str, optional
            As in :meth:`score`; ``groups`` (or those of a ClipSet or MIMII/DCASE paths) fill ``group``.

        Returns
        -------
        list of soundanomaly.results.ClipScore

        Examples
        --------
        >>> import numpy as np, soundfile as sf
        >>> from soundanomaly.detectors import GaussianDetector
        >>> for i in range(4):
        ...     sf.write(f"r{i}.wav", np.random.default_rng(i).normal(0, 0.1, 16000), 16000)
        >>> detector = GaussianDetector(threshold=5.0).fit([f"r{i}.wav" for i in range(3)])
        >>> row = detector.score_records(["r3.wav"])[0]
        >>> row.path, row.status, row.source_sr, row.label == int(row.score > 5.0)
        ('r3.wav', 'ok', 16000, True)
        """
        scores = self.score(data, groups=groups, sessions=sessions)
        return clip_scores(
            data,
            scores,
            label_scores(scores, self.threshold_),
            getattr(self, "last_status_", ()),
            getattr(self, "last_source_rates_", ()),
            group_keys(data, groups, group_by=getattr(self, "group_by", "machine_id"), required=False),
        )

    def _score_clips(
        self, data: ClipData, score_windows: Callable[[FloatArray], npt.NDArray[np.float64]]
    ) -> npt.NDArray[np.float64]:
        """Reduce ``score_windows`` per clip with one progress bar; streams paths in chunks of ``chunk_size``."""
        self._check_data(data)
        with _global_rng_kept():
            if isinstance(data, ClipFeatures):
                scores = self._reduce(_checked_window_scores(score_windows, self._checked(data).windows), data.offsets)
                status = [_STATUS_OK] * len(data)
                rates: list[int | None] = list(data.source_rates) or [None] * len(data)
                names = list(data.paths) if data.paths else [f"#{i}" for i in range(len(data))]
            else:
                paths = self._paths(data)
                scores = np.full(len(paths), np.nan)
                status = [_STATUS_OK] * len(paths)
                rates = [None] * len(paths)
                names = paths
                with ProgressBar(total=len(paths), desc="scoring", enabled=bool(self.progress)) as bar:
                    for start in range(0, len(paths), self.chunk_size):
                        chunk = paths[start : start + self.chunk_size]
                        try:
                            features = self._checked(self._extract(chunk, bar))
                        except AudioError as exc:
                            if self.on_error == "raise":
                                raise
                            for i in range(start, start + len(chunk)):  # every clip of the chunk failed
                                status[i] = f"skipped: {exc.problem}"
                            continue
                        kept = _kept_mask(chunk, features)
                        present = np.flatnonzero(kept) + start
                        reasons = iter(reason for _, reason in getattr(features, "skipped", ()))
                        for j in (np.flatnonzero(~kept) + start).tolist():
                            status[j] = f"skipped: {next(reasons, 'unreadable')}"
                        for j, rate in zip(present.tolist(), features.source_rates, strict=False):
                            rates[j] = rate
                        window_scores = _checked_window_scores(score_windows, features.windows)
                        scores[present] = self._reduce(window_scores, features.offsets)
                        self._raise_invalid(scores[present], [names[j] for j in present.tolist()])
        for j in np.flatnonzero(~np.isfinite(scores)).tolist():
            if status[j] == _STATUS_OK:
                status[j] = _STATUS_INVALID
        self._raise_invalid(scores, names)
        self.last_status_ = tuple(status)
        self.last_source_rates_ = tuple(rates)
        bad = [s for s in status if s != _STATUS_OK]
        if bad:
            warnings.warn(
                f"{len(bad)} of {len(status)} clip(s) have no valid score ({bad[0]}...): their score is NaN and "
                "predict() labels them anomalous; see last_status_",
                InvalidScoreWarning,
                stacklevel=3,
            )
        return scores

    def _raise_invalid(self, scores: npt.NDArray[np.float64], names: Sequence[str]) -> None:
        if self.on_error == "raise":
            bad = np.flatnonzero(~np.isfinite(scores))
            if len(bad):
                raise InvalidScoreError([names[int(i)] for i in bad])

    def _reduce(self, per_window: npt.ArrayLike, offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Per-clip score from per-window scores, by ``aggregate``; clip ``i`` owns ``per_window[offsets[i]:offsets[i+1]]``.

        NaN in a clip's windows gives that clip NaN (never a normal-looking score).

        Examples
        --------
        >>> from soundanomaly.detectors import GaussianDetector
        >>> offsets = np.array([0, 3, 4])
        >>> GaussianDetector(aggregate="max")._reduce([1.0, 5.0, 3.0, 2.0], offsets).tolist()
        [5.0, 2.0]
        >>> GaussianDetector(aggregate="topk:2")._reduce([1.0, 5.0, 3.0, 2.0], offsets).tolist()
        [4.0, 2.0]
        """
        values = np.asarray(per_window, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if len(offsets) < 2:
            return np.empty(0, dtype=np.float64)
        kind, arg = _parse_aggregate(self.aggregate)
        lengths = np.diff(offsets)
        if kind == "mean":
            return np.asarray(np.add.reduceat(values, offsets[:-1]) / lengths, dtype=np.float64)
        if kind == "max":
            return np.asarray(np.maximum.reduceat(values, offsets[:-1]), dtype=np.float64)
        out = np.empty(len(lengths), dtype=np.float64)
        for i in range(len(lengths)):
            clip = values[offsets[i] : offsets[i + 1]]
            if kind == "percentile":
                out[i] = np.nan if np.isnan(clip).any() else np.percentile(clip, arg)
            else:
                k = min(int(arg), len(clip))
                out[i] = np.nan if np.isnan(clip).any() else np.sort(clip)[-k:].mean()
        return out

    def decision_function(self, data: ClipData) -> npt.NDArray[np.float64]:
        """Alias of :meth:`score` (scikit-learn's name)."""
        return self.score(data)

    def predict(
        self, data: ClipData, *, groups: Sequence[str] | None = None, sessions: Sequence[str] | None = None
    ) -> npt.NDArray[np.int8]:
        """Label each clip: **1 = anomaly**, 0 = normal (``score > threshold_``; NaN scores give 1).

        The rule is :func:`soundanomaly.results.label_scores`; ``groups`` and ``sessions`` go to :meth:`score`.
        A clip whose session (given, or from a ClipSet's records) has its own threshold in
        ``session_thresholds_`` (a domain, an adapted session) is judged by that threshold.
        """
        scores = self.score(data, groups=groups, sessions=sessions)
        labels = label_scores(scores, self.threshold_)
        own = getattr(self, "session_thresholds_", {})
        keys = session_keys(data, sessions) if own else None
        if keys is not None:
            for session, threshold in own.items():
                members = np.flatnonzero(keys == session)
                labels[members] = label_scores(scores[members], threshold)
        return labels

    def adapt(self, data: ClipData, *, sessions: Sequence[str] | None = None) -> Self:
        """Learn a new session or domain from a few of its **normal** clips, without retraining.

        The clips join the model (memory banks, per-domain statistics: the detector's
        ``_adapt``); their out-of-fold scores (each clip scored by a copy adapted on
        the others) calibrate the session's threshold in ``session_thresholds_``, and
        ``threshold_`` rises to it if it is higher. A fixed numeric ``threshold`` stays.
        This is the DCASE first-shot setting (10 target clips) and a plant's "mark
        this period as normal" after a maintenance or a speed change.

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
            Normal clips of the new session (a labelled ClipSet must hold no anomaly).
        sessions : sequence of str, optional
            Per-clip session keys; default the ClipSet's (a DCASE domain) or ``"adapted"``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            The detector cannot adapt (the message names those that can), or bad input.

        Warns
        -----
        CalibrationWarning
            Fewer adaptation clips than the target false-alarm rate needs (10 clips
            resolve about 9 %): the session's threshold is its highest out-of-fold score.

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.detectors import ClipStatsDetector
        >>> from soundanomaly.features import ClipFeatures
        >>> rng = np.random.default_rng(0)
        >>> source = ClipFeatures.from_arrays([rng.normal(0, 1, (1, 8)).astype("f4") for _ in range(40)])
        >>> new_day = ClipFeatures.from_arrays([rng.normal(3, 1, (1, 8)).astype("f4") for _ in range(5)])
        >>> detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(source)
        >>> before = detector.predict(new_day).mean()
        >>> after = detector.adapt(new_day, sessions=["day2"] * 5).predict(new_day).mean()
        >>> float(before), float(after), sorted(detector.session_thresholds_)
        (1.0, 0.0, ['day2'])
        """
        self._check_fitted()
        name = type(self).__name__
        if type(self)._adapt is BaseDetector._adapt:
            able = sorted(k for k, c in _DETECTORS.items() if c._adapt is not BaseDetector._adapt and k[0] != "_")
            raise ParameterError(f"{name} cannot adapt to a new session; detectors that can: {', '.join(able)}")
        self._check_data(data)
        if isinstance(data, ClipSet) and data.labelled and data.labels.any():
            raise ParameterError(f"adapt takes normal clips only; {int(data.labels.sum())} of them are abnormal")
        n = len(data)
        if sessions is not None:
            keys = _sessions.check_sessions(sessions, n)
        else:
            found = session_keys(data, None)
            keys = np.full(n, _sessions.ADAPTED_SESSION) if found is None else found
        if isinstance(data, ClipFeatures):
            features = self._checked(data)
        else:
            paths = self._paths(data)
            features = self._checked(self._features(paths))
            keys = keys[_kept_mask(paths, features)]
        features, _, _, kept_keys = self._drop_nonfinite(features, None, None, keys)
        keys = keys if kept_keys is None else kept_keys
        scores = np.empty(0)
        with _global_rng_kept():
            if len(features) >= 2:
                scores = np.full(len(features), np.nan)
                everything = np.arange(len(features))
                for fold in _sessions.fold_indices(len(features), random_state=self.random_state):
                    rest = np.setdiff1d(everything, fold)
                    partial = self._adapt_copy()
                    partial._adapt(_take(features, rest), keys[rest])
                    scores[fold] = partial._score_features(_take(features, fold))
            self._adapt(features, keys)
        if isinstance(self.threshold, numbers.Real):
            return self
        if len(scores) < 2 or not np.isfinite(scores).all():
            warnings.warn(
                f"{name}: {len(features)} usable adaptation clip(s) cannot calibrate a threshold; it stays "
                f"{self.threshold_:g}",
                CalibrationWarning,
                stacklevel=2,
            )
            return self
        calibrator = self.threshold if isinstance(self.threshold, ThresholdCalibrator) else None
        calibrator = calibrator or ThresholdCalibrator("target_fpr", target_fpr=DEFAULT_TARGET_FPR)
        if calibrator.strategy == "target_fpr" and len(scores) < calibrator.min_normal_clips():
            warnings.warn(
                f"{name}: the adapted session's threshold comes from {len(scores)} clip(s), too few to resolve a "
                f"false-alarm rate of {calibrator.target_fpr:g}: it is their highest out-of-fold score",
                CalibrationWarning,
                stacklevel=2,
            )
        self._set_session_thresholds(scores, keys, calibrator)
        return self

    def _adapt(self, features: ClipFeatures, sessions: npt.NDArray[np.str_]) -> None:
        """Add normal ``features`` of ``sessions`` (aligned per clip) to the fitted model; no retraining."""
        raise NotImplementedError  # pragma: no cover - adapt() checks that a subclass overrides it

    def _adapt_copy(self) -> Self:
        """An independent copy for out-of-fold adaptation scores (override to share heavy, unchanged parts)."""
        return copy.deepcopy(self)

    def _set_session_thresholds(
        self,
        scores: npt.NDArray[np.float64],
        sessions: npt.NDArray[np.str_],
        calibrator: ThresholdCalibrator | None = None,
    ) -> None:
        """One threshold per session from its normal calibration scores; ``threshold_`` rises to the highest.

        Only sessions with enough clips to resolve the target rate keep their own threshold in
        ``session_thresholds_`` (measured: a threshold from 2-10 clips flags 5-45 % of that session's
        new normal clips); the others are judged by ``threshold_``.
        """
        if calibrator is None:
            given = self.threshold if isinstance(self.threshold, ThresholdCalibrator) else None
            calibrator = given or ThresholdCalibrator("target_fpr", target_fpr=DEFAULT_TARGET_FPR)
        if calibrator.strategy != "target_fpr":
            return  # the other strategies need anomalies: one threshold, as calibrated
        own = _sessions.session_thresholds(scores, sessions, calibrator)
        names, counts = np.unique(np.asarray(sessions, dtype=str), return_counts=True)
        resolved = {str(k) for k, c in zip(names, counts, strict=True) if c >= calibrator.min_normal_clips()}
        kept = {k: v for k, v in getattr(self, "session_thresholds_", {}).items() if k not in own}
        self.session_thresholds_ = {**kept, **{k: v for k, v in own.items() if k in resolved}}
        top = max(own.values())
        if top > self.threshold_:
            self.threshold_ = top
            if self.calibration_ is not None:
                self.calibration_ = dataclasses.replace(self.calibration_, threshold=top)

    def calibrate(
        self,
        data: ClipData,
        *,
        calibrator: ThresholdCalibrator | None = None,
        labels: npt.ArrayLike | None = None,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
    ) -> Calibration:
        """Set ``threshold_`` from held-out clips and return the calibration.

        Parameters
        ----------
        data : clips to score, typically normal validation clips
        calibrator : ThresholdCalibrator, default target_fpr=0.01
        labels : array-like of {0, 1}, optional
            Defaults to ``data.labels`` for a ClipSet, else all normal.
        groups, sessions : sequence of str, optional
            Passed to :meth:`score`.
        """
        self._check_fitted()
        if calibrator is None:
            calibrator = ThresholdCalibrator("target_fpr", target_fpr=DEFAULT_TARGET_FPR)
        elif not isinstance(calibrator, ThresholdCalibrator):
            raise ParameterError(f"calibrator must be a ThresholdCalibrator, got {calibrator!r}")
        if labels is None and isinstance(data, ClipSet):
            labels = data.labels
        y = None if labels is None else check_labels(labels, n=len(data))
        scores = self.score(data, groups=groups, sessions=sessions)
        result = calibrator.fit(scores, y, source="calibrate")
        self.threshold_ = result.threshold
        self.calibration_ = result
        return result

    # -- persistence ------------------------------------------------------------
    def _persisted_params(self) -> dict[str, Any]:
        """JSON-able constructor parameters for the manifest (features are saved on their own)."""
        out: dict[str, Any] = {}
        for name, value in self._signature_params().items():
            if name == "features":
                continue
            if isinstance(value, ThresholdCalibrator):
                value = {"ThresholdCalibrator": value.get_params()}
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, os.PathLike):
                value = os.fspath(value)
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                _log.debug("parameter %s=%r is not saved (not JSON)", name, value)
                continue
            out[name] = value
        return out

    def save(self, path: PathLike, *, overwrite: bool = False, inputs: Sequence[PathLike] = ()) -> Path:
        """Write the fitted detector to folder ``path``, atomically.

        The folder holds ``manifest.json`` (format version, detector and
        feature parameters, threshold, calibration, training clips),
        ``state.npz`` and a marker file. It appears complete or not at all.

        Parameters
        ----------
        path : path
            ``"."`` works in an empty current directory.
        overwrite : bool, default False
            Replace a folder soundanomaly did not write. A saved model (or an
            empty folder) is always replaced, as a whole.
        inputs : paths
            Data this run read: the output may never equal or contain one,
            even with ``overwrite``.

        Returns
        -------
        Path

        Raises
        ------
        OutputExistsError
            ``path`` holds other data (without ``overwrite``) or contains an input.
        """
        from soundanomaly import __version__

        self._check_fitted()
        calibration = getattr(self, "calibration_", None)
        manifest = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "detector": type(self).__name__,
            "params": self._persisted_params(),
            "features": _extractor_params(self.features),
            "threshold": float(self.threshold_),
            "n_features_in": int(self.n_features_in_),
            "extra": self._manifest_extra(),
            "training_clips": getattr(self, "training_clips_", []),
            "calibration": None if calibration is None else calibration.to_dict(),
        }
        if calibration is not None and getattr(self, "session_thresholds_", None):
            manifest["calibration"] = {**calibration.to_dict(), "sessions": dict(self.session_thresholds_)}
        state: dict[str, Any] = {**self._get_state(), "train_scores": np.asarray(self.train_scores_, np.float64)}
        holdout = getattr(self, "holdout_scores_", None)
        if holdout is not None:
            state["holdout_scores"] = np.asarray(holdout, np.float64)
            labels = getattr(self, "holdout_labels_", None)
            if labels is not None:
                state["holdout_labels"] = np.asarray(labels, np.float64)
        text = json.dumps(manifest, indent=2, allow_nan=False)
        with _safeio.atomic_dir(path, kind="model", overwrite=overwrite, inputs=inputs) as tmp:
            (tmp / "manifest.json").write_text(text)
            np.savez(tmp / "state.npz", **state)
        return Path(path)

    @classmethod
    @_safeio.consistent_load  # one complete save or an error, never a mix of two concurrent saves
    def load(
        cls,
        path: PathLike,
        *,
        features: Any = None,
        trust_endpoints: bool = False,
        **params: Any,
    ) -> Self:
        """Load a detector written by :meth:`save` (any subclass of ``cls``).

        A model folder is data, not instructions: the manifest is validated key
        by key, each ``state.npz`` array header is checked against the shapes
        the detector expects *before* its payload is read (no pickles, sizes
        capped), and parameters that open connections (endpoint URLs, regions,
        backend options with roles/buckets) are ignored unless
        ``trust_endpoints=True``; pass them yourself as keyword arguments.
        A save that was killed mid-swap is recovered first.

        Parameters
        ----------
        path : path
        features : extractor, optional
            If given, must equal the saved feature parameters.
        trust_endpoints : bool, default False
            Use the saved connection parameters.
        **params
            Constructor parameters overriding the saved ones (e.g. ``progress=True``,
            ``endpoint_url=...``).

        Raises
        ------
        ModelFormatError
            Anything wrong with the folder, the manifest or the state.
        """
        folder = Path(path)
        with contextlib.suppress(OSError):
            _safeio.recover(folder)
        manifest = _read_manifest(folder)
        version = manifest["format_version"]
        name = manifest["detector"]
        if isinstance(name, str) and name not in _DETECTORS and name in _BUILTIN_DETECTORS:
            import importlib

            importlib.import_module(_BUILTIN_DETECTORS[name])  # a fixed list: nothing named by the file is imported
        detector_cls = _DETECTORS.get(name) if isinstance(name, str) else None
        if detector_cls is None or not issubclass(detector_cls, cls):
            known = "" if detector_cls is not None else "; import the module that defines it first"
            raise ModelFormatError(f"{folder}: holds a {name!r}, not a {cls.__name__}{known}")
        saved_features = features_from_params(manifest["features"])
        if features is not None and _extractor_params(features) != _extractor_params(saved_features):
            raise ModelFormatError(
                f"{folder}: model was trained on features {_extractor_params(saved_features)}, "
                f"not {_extractor_params(features)}"
            )
        allowed = set(detector_cls._param_names()) - {"features"}
        saved = manifest["params"]
        if not isinstance(saved, dict):
            raise ModelFormatError(f"{folder}: manifest 'params' must be an object")
        unknown = set(saved) - allowed
        if unknown:
            raise ModelFormatError(f"{folder}: parameters {sorted(unknown)} are not {name}'s (another detector's?)")
        bad = set(params) - allowed
        if bad:
            raise ParameterError(f"{name} has no parameter(s) {sorted(bad)}")
        detector = _construct_saved(detector_cls, saved, saved_features, str(folder), trusted=trust_endpoints)
        if params:
            detector.set_params(**params)
        detector.n_features_in_ = manifest["n_features_in"]
        detector.threshold_ = float(manifest["threshold"])
        try:
            detector._load_manifest_extra(manifest.get("extra") or {})
            spec = detector._state_spec()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(f"{folder}: invalid manifest 'extra' for {name}: {exc}") from exc
        base_spec: dict[str, tuple[tuple[int | None, ...], bool]] = {
            "train_scores": ((None,), True),
            "holdout_scores": ((None,), False),
            "holdout_labels": ((None,), False),
        }
        full_spec = None if spec is None else {**{k: (v, True) for k, v in spec.items()}, **base_spec}
        state = _read_state(folder / "state.npz", full_spec, base_spec)
        detector.train_scores_ = state.pop("train_scores").astype(np.float64)
        detector.holdout_scores_ = state.pop("holdout_scores", np.empty(0)).astype(np.float64)
        labels = state.pop("holdout_labels", None)
        detector.holdout_labels_ = None if labels is None else labels.astype(np.int8)
        try:
            detector._set_state(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(f"{folder}: state.npz does not fit {name}: {exc}") from exc
        detector.training_clips_ = manifest.get("training_clips") or []
        detector.calibration_ = _loaded_calibration(manifest.get("calibration"), detector)
        detector.session_thresholds_ = _loaded_session_thresholds(manifest.get("calibration"))
        _log.debug("loaded %s (format %d) from %s", name, version, folder)
        return detector

    # -- helpers ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def _score_features(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        return self._reduce(_checked_window_scores(self._score_windows, features.windows), features.offsets)

    def _calibrate_threshold(
        self, calibrating: bool, train_labels: npt.NDArray[np.int8] | None, source: str = "holdout"
    ) -> None:
        """The threshold step of :meth:`fit`: set ``threshold_`` and ``calibration_``.

        A numeric ``threshold`` is taken as is; otherwise the calibrator runs on
        ``holdout_scores_`` (the held-out or ``validation`` clips, named by
        ``source``), or on the training scores when nothing was held out.
        """
        if not calibrating:
            self.threshold_ = float(self.threshold)  # type: ignore[arg-type]
            self.calibration_ = None
            return
        calibrator = self.threshold if isinstance(self.threshold, ThresholdCalibrator) else None
        calibrator = calibrator or ThresholdCalibrator("target_fpr", target_fpr=DEFAULT_TARGET_FPR)
        scores, labels = self.holdout_scores_, self.holdout_labels_
        if len(scores) == 0:
            scores, source = self.train_scores_, "training"
            labels = train_labels
        if len(scores) == 0:
            raise ParameterError(
                f"{type(self).__name__} has no scores to calibrate a threshold on; pass a numeric threshold"
            )
        finite = np.isfinite(scores)
        if not finite.all():
            raise InvalidScoreError([f"{source} clip #{i}" for i in np.flatnonzero(~finite)])
        self.calibration_ = calibrator.fit(scores, labels, source=source)
        self.threshold_ = self.calibration_.threshold

    def _holdout_split(
        self,
        n: int,
        y: npt.NDArray[np.int8] | None,
        calibrating: bool,
        sessions: npt.NDArray[np.str_] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(train, held-out)`` clip indices: the hold-out rule (see the class Notes), seeded by ``random_state``.

        With per-clip ``sessions`` (unsupervised detectors), :func:`soundanomaly.sessions.split_by_session`.
        """
        everything = np.arange(n, dtype=np.int64)
        self._by_domain = False
        if not calibrating or self.holdout == 0 or not self._uses_base_holdout:
            return everything, np.empty(0, dtype=np.int64)
        if sessions is not None and y is None:
            split = _sessions.split_by_session(
                sessions,
                holdout=self.holdout,
                random_state=self.random_state,
                min_clips=MIN_HOLDOUT_CLIPS,
                name=type(self).__name__,
            )
            self._by_domain = not split.held_sessions
            return split.train, split.holdout
        rng = np.random.default_rng(self.random_state)
        classes = [everything] if y is None else [np.flatnonzero(y == c) for c in (0, 1)]
        held: list[npt.NDArray[np.int64]] = []
        for members in classes:
            count = max(MIN_HOLDOUT_CLIPS if members is classes[0] else 1, round(self.holdout * len(members)))
            if len(members) - count < MIN_HOLDOUT_CLIPS:
                if members is classes[0]:
                    warnings.warn(
                        f"{type(self).__name__}: too few clips ({len(members)}) to hold {self.holdout:g} of them out "
                        "for calibration; the threshold comes from the training scores and will flag more new "
                        "normal clips than asked",
                        CalibrationWarning,
                        stacklevel=3,
                    )
                    return everything, np.empty(0, dtype=np.int64)
                continue
            held.append(np.sort(rng.choice(members, size=count, replace=False)))
        hold = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
        return np.setdiff1d(everything, hold), hold

    def _checked(self, features: ClipFeatures) -> ClipFeatures:
        if features.n_features != self.n_features_in_:
            raise ParameterError(
                f"features have {features.n_features} values per vector; the detector was fitted on "
                f"{self.n_features_in_}"
            )
        if features.params and features.params != _extractor_params(self.features):
            raise ParameterError(
                f"features were made with {features.params}, the detector expects {_extractor_params(self.features)}"
            )
        return features

    @staticmethod
    def _check_data(data: object) -> None:
        if isinstance(data, (ClipFeatures, ClipSet)):
            return
        if isinstance(data, (str, bytes, os.PathLike)):
            raise ParameterError("data must be a sequence of paths, not a single path; wrap it in a list")
        if isinstance(data, np.ndarray) or (
            isinstance(data, Sequence) and any(isinstance(item, np.ndarray) for item in data)
        ):
            raise ParameterError(
                "data must be a ClipSet, a sequence of clip paths or ClipFeatures; for feature matrices "
                "use ClipFeatures.from_arrays(arrays)"
            )
        if not isinstance(data, Sequence):
            raise ParameterError(
                f"data must be a ClipSet, a sequence of paths or ClipFeatures, got {type(data).__name__}"
            )
        if not data:
            raise ParameterError("data is empty: no clips")
        for item in data:
            if not isinstance(item, (str, os.PathLike)):
                raise ParameterError(f"data must hold clip paths (str or os.PathLike), got a {type(item).__name__}")

    def _paths(self, data: ClipData) -> list[str]:
        self._check_data(data)
        paths = data.paths if isinstance(data, ClipSet) else [os.fspath(p) for p in data]  # type: ignore[arg-type]
        if not paths:
            raise ParameterError("data is empty: no clips")
        return paths

    def _extractor(self) -> BaseFeatureExtractor:
        extractor = self.features
        if isinstance(extractor, BaseFeatureExtractor):
            return extractor
        return _ProtocolExtractor(extractor)

    def _extract(self, paths: list[str], bar: ProgressBar) -> ClipFeatures:
        extractor = self._extractor()
        accepted = inspect.signature(extractor.extract).parameters
        options: dict[str, Any] = {
            "channel": self.channel,
            "n_jobs": self.n_jobs,
            "cache_dir": self.cache_dir,
            "progress": bar,
            "on_error": self.on_error,
        }
        if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
            options = {k: v for k, v in options.items() if k in accepted}
        return extractor.extract(paths, **options)

    def _features(self, data: ClipData) -> ClipFeatures:
        if isinstance(data, ClipFeatures):
            return data
        with ProgressBar(total=len(data), desc="features", enabled=bool(self.progress)) as bar:
            return self._extract(self._paths(data), bar)

    def _feature_chunks(self, data: ClipData) -> Iterator[ClipFeatures]:
        paths = self._paths(data)
        with ProgressBar(total=len(paths), desc="features", enabled=bool(self.progress)) as bar:
            for start in range(0, len(paths), self.chunk_size):
                yield self._extract(paths[start : start + self.chunk_size], bar)

    def _drop_nonfinite(
        self,
        features: ClipFeatures,
        y: npt.NDArray[np.int8] | None,
        g: npt.NDArray[np.str_] | None,
        s: npt.NDArray[np.str_] | None = None,
    ) -> tuple[ClipFeatures, npt.NDArray[np.int8] | None, npt.NDArray[np.str_] | None, npt.NDArray[np.str_] | None]:
        finite_rows = np.isfinite(features.windows).all(axis=1)
        if finite_rows.all():
            return features, y, g, s
        bad_clips = np.unique(np.searchsorted(features.offsets, np.flatnonzero(~finite_rows), side="right") - 1)
        names = [features.paths[i] if features.paths else f"#{i}" for i in bad_clips]
        if self.on_error == "raise" or len(bad_clips) == len(features):
            raise ParameterError(
                f"features of {len(bad_clips)} clip(s) contain NaN or infinite values: {', '.join(names[:5])}"
            )
        warnings.warn(
            f"leaving out {len(bad_clips)} clip(s) with NaN/inf features: {', '.join(names[:5])}",
            InvalidScoreWarning,
            stacklevel=3,
        )
        keep = np.setdiff1d(np.arange(len(features)), bad_clips)
        return (
            _take(features, keep),
            None if y is None else y[keep],
            None if g is None else g[keep],
            None if s is None else s[keep],
        )


def _checked_window_scores(
    score_windows: Callable[[FloatArray], npt.NDArray[np.float64]], windows: FloatArray
) -> npt.NDArray[np.float64]:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # non-finite scores are handled by the caller
        scores = np.asarray(score_windows(windows), dtype=np.float64)
    if scores.shape != (len(windows),):
        raise SoundAnomalyError(f"_score_windows returned shape {scores.shape}, expected ({len(windows)},)")
    return scores


def _kept_mask(paths: Sequence[str] | None, features: ClipFeatures) -> npt.NDArray[np.bool_]:
    """Which of ``paths`` are present in ``features`` (the others were skipped by extract)."""
    if paths is None:
        return np.ones(len(features), dtype=bool)
    skipped = list(getattr(features, "skipped", ()))
    if not skipped:
        return np.ones(len(paths), dtype=bool)
    pending: dict[str, int] = {}
    for path, _ in skipped:
        pending[path] = pending.get(path, 0) + 1
    mask = np.ones(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        if pending.get(path, 0) > 0:
            pending[path] -= 1
            mask[i] = False
    return mask


def _take(features: ClipFeatures, indices: npt.ArrayLike) -> ClipFeatures:
    idx = np.asarray(indices, dtype=np.int64)
    return ClipFeatures.from_arrays(
        [features.clip(int(i)) for i in idx],
        paths=[features.paths[i] for i in idx] if features.paths else (),
        params=features.params,
    )


def _take_data(data: ClipData, indices: npt.NDArray[np.int64]) -> ClipData:
    if isinstance(data, ClipFeatures):
        return _take(data, indices)
    if isinstance(data, ClipSet):
        return data.take(int(i) for i in indices)
    return [data[int(i)] for i in indices]


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Put the caller's global NumPy and ``random`` states back (backends may call keras.utils.set_random_seed)."""
    numpy_state = np.random.get_state()  # noqa: NPY002 - the caller's legacy global state is what we protect
    python_state = random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


def _file_hash(path: str) -> str | None:
    if "://" in path or not path:
        return None
    try:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _clip_records(paths: Sequence[str]) -> list[list[str | None]]:
    records: list[list[str | None]] = []
    for path in list(paths)[:MAX_RECORDED_CLIPS]:
        if path:
            records.append([path, _file_hash(path)])
    return records


def find_training_clips(model: Any, paths: Sequence[PathLike]) -> list[str]:
    """Which of ``paths`` the model was trained (or calibrated) on, by content hash (or path when unhashed).

    Use it before evaluating: metrics on training clips are optimistic. The
    model records at most :data:`MAX_RECORDED_CLIPS` clips.

    Parameters
    ----------
    model : detector with ``training_clips_``, or that list itself
    paths : clip paths

    Returns
    -------
    list of str
        The given paths that are training clips, in input order.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> from soundanomaly.detectors import GaussianDetector
    >>> for i in range(4):
    ...     sf.write(f"n{i}.wav", np.random.default_rng(i).normal(0, 0.1, 16000), 16000)
    >>> detector = GaussianDetector(threshold=5.0).fit([f"n{i}.wav" for i in range(3)])
    >>> find_training_clips(detector, ["n0.wav", "n3.wav"])
    ['n0.wav']
    """
    records = model if isinstance(model, list) else getattr(model, "training_clips_", None) or []
    hashes = {r[1] for r in records if isinstance(r, list) and len(r) == 2 and r[1]}
    names = {os.path.abspath(str(r[0])) for r in records if isinstance(r, list) and len(r) == 2 and not r[1]}
    found = []
    for item in paths:
        path = os.fspath(item)
        digest = _file_hash(path) if hashes else None
        if (digest is not None and digest in hashes) or ("://" not in path and os.path.abspath(path) in names):
            found.append(path)
    return found


def _check_threshold_and_width(manifest: dict[str, Any], where: str) -> None:
    """A saved detector's (or sub-detector's) threshold is a finite number, its ``n_features_in`` a positive int."""
    threshold = manifest["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ModelFormatError(f"{where}: threshold must be a finite number, got {threshold!r}")
    n_features = manifest["n_features_in"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ModelFormatError(f"{where}: n_features_in must be a positive integer, got {n_features!r}")


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / "manifest.json"
    try:
        if not manifest_path.is_file():
            raise ModelFormatError(f"{folder}: not a saved model (no manifest.json)")
        if manifest_path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ModelFormatError(f"{manifest_path}: too large for a model manifest")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFormatError(f"{manifest_path}: cannot be read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{manifest_path}: invalid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{manifest_path}: must hold a JSON object, got a {type(manifest).__name__}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(f"{manifest_path}: format_version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{folder}: model format version {version!r} is newer than this soundanomaly supports "
            f"({FORMAT_VERSION}); upgrade soundanomaly"
        )
    required, optional = _MANIFEST_KEYS[version]
    missing = required - set(manifest)
    if missing:
        raise ModelFormatError(f"{manifest_path}: missing key(s) {sorted(missing)}")
    extra = set(manifest) - required - optional
    if extra:
        raise ModelFormatError(f"{manifest_path}: unknown key(s) {sorted(extra)}")
    if not isinstance(manifest["detector"], str):
        raise ModelFormatError(f"{manifest_path}: 'detector' must be a string")
    _check_threshold_and_width(manifest, str(manifest_path))
    for key, kinds in (("extra", (dict,)), ("training_clips", (list,)), ("calibration", (dict,))):
        value = manifest.get(key)
        if value is not None and not isinstance(value, kinds):
            raise ModelFormatError(f"{manifest_path}: {key!r} has the wrong type ({type(value).__name__})")
    return manifest


def _loaded_calibration(info: Any, detector: BaseDetector) -> Calibration | None:
    if not isinstance(info, dict):
        return None
    scores = detector.holdout_scores_ if len(detector.holdout_scores_) else detector.train_scores_
    try:
        labels = detector.holdout_labels_ if len(detector.holdout_scores_) else None
        return Calibration(
            float(detector.threshold_),
            str(info.get("strategy", "")),
            sweep(scores, labels) if len(scores) else sweep([detector.threshold_]),
            int(info.get("n_normal", 0)),
            int(info.get("n_abnormal", 0)),
            str(info.get("source", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"invalid saved calibration: {exc}") from exc


def _loaded_session_thresholds(info: Any) -> dict[str, float]:
    if not isinstance(info, dict) or "sessions" not in info:
        return {}
    try:
        return _sessions.check_session_thresholds(info["sessions"], where="saved session thresholds")
    except ParameterError as exc:
        raise ModelFormatError(str(exc)) from exc


_D = TypeVar("_D", bound="BaseDetector")


def _construct_saved(
    cls: type[_D], saved: dict[str, Any], features: BaseFeatureExtractor, where: str, trusted: bool = False
) -> _D:
    """A detector built from its saved parameters (already checked to be ``cls``'s) and feature extractor.

    Connection parameters are dropped unless ``trusted``; a saved threshold calibrator is rebuilt; the
    default extractor is passed as None, as a user would write it.
    """
    kwargs = {k: v for k, v in saved.items() if trusted or k not in cls._untrusted_params}
    if isinstance(kwargs.get("threshold"), dict):
        try:
            kwargs["threshold"] = ThresholdCalibrator(**kwargs["threshold"]["ThresholdCalibrator"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{where}: invalid saved threshold calibrator") from exc
    takes_features = "features" in cls._param_names()
    if takes_features:
        same = _extractor_params(cls._default_features()) == _extractor_params(features)
        kwargs["features"] = None if same else features
    try:
        detector = cls(**kwargs)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ModelFormatError(f"{where}: the saved parameters are not valid for {cls.__name__}: {exc}") from exc
    if not takes_features:
        detector.features = features
    return detector


def _member_entry(model: BaseDetector) -> dict[str, Any]:
    """A fitted sub-detector's manifest entry (PerGroup's groups, Ensemble's members)."""
    calibration = getattr(model, "calibration_", None)
    return {
        "detector": type(model).__name__,
        "params": model._persisted_params(),
        "features": _extractor_params(model.features),
        "threshold": float(model.threshold_),
        "n_features_in": int(model.n_features_in_),
        "extra": model._manifest_extra(),
        "calibration": None if calibration is None else calibration.to_dict(),
    }


def _member_state(model: BaseDetector, prefix: str) -> dict[str, FloatArray]:
    """A sub-detector's state arrays under ``prefix``, with its training and held-out scores."""
    state = {f"{prefix}{name}": value for name, value in model._get_state().items()}
    state[f"{prefix}train_scores"] = np.asarray(model.train_scores_, np.float64)
    state[f"{prefix}holdout_scores"] = np.asarray(getattr(model, "holdout_scores_", np.empty(0)), np.float64)
    return state


_MEMBER_KEYS = frozenset({"detector", "params", "features", "threshold", "n_features_in", "extra", "calibration"})


def _load_member(entry: Any, where: str, container: type, extra_keys: frozenset[str] = frozenset()) -> BaseDetector:
    """Rebuild one (still stateless) sub-detector from its :func:`_member_entry`, as strictly as ``BaseDetector.load``.

    ``where`` names it in errors; a sub-detector may not be a ``container`` (no unbounded nesting);
    ``extra_keys`` are the container's own keys in the entry (checked by the container).
    """
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{where}: must be a JSON object")
    keys = _MEMBER_KEYS | extra_keys
    missing, unknown = keys - set(entry), set(entry) - keys
    if missing or unknown:
        raise ModelFormatError(f"{where}: missing key(s) {sorted(missing)}, unknown key(s) {sorted(unknown)}")
    name = entry["detector"]
    if not isinstance(name, str):
        raise ModelFormatError(f"{where}: 'detector' must be a string")
    if name not in _DETECTORS and name in _BUILTIN_DETECTORS:
        import importlib

        importlib.import_module(_BUILTIN_DETECTORS[name])  # a fixed list, as BaseDetector.load does
    cls = _DETECTORS.get(name)
    if cls is None or issubclass(cls, container):
        raise ModelFormatError(f"{where}: unknown detector {name!r} (import the module that defines it first)")
    _check_threshold_and_width(entry, where)
    for key in ("params", "extra"):
        if not isinstance(entry[key], dict):
            raise ModelFormatError(f"{where}: {key!r} must be a JSON object")
    if entry["calibration"] is not None and not isinstance(entry["calibration"], dict):
        raise ModelFormatError(f"{where}: 'calibration' must be a JSON object or null")
    features = features_from_params(entry["features"])
    stray = set(entry["params"]) - (set(cls._param_names()) - {"features"})
    if stray:
        raise ModelFormatError(f"{where}: parameters {sorted(stray)} are not {name}'s")
    model = _construct_saved(cls, entry["params"], features, where)
    model.threshold_ = float(entry["threshold"])
    model.n_features_in_ = entry["n_features_in"]
    try:
        model._load_manifest_extra(entry["extra"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFormatError(f"{where}: invalid 'extra' for {name}: {exc}") from exc
    return model


def _member_spec(model: BaseDetector) -> dict[str, tuple[int | None, ...]] | None:
    """The state arrays :func:`_member_state` writes for ``model`` (None: the model declares no spec)."""
    spec = model._state_spec()
    if spec is None:
        return None
    return {**spec, "train_scores": (None,), "holdout_scores": (None,)}


def _members_spec(members: Sequence[tuple[str, BaseDetector]]) -> dict[str, tuple[int | None, ...]] | None:
    """The state spec of ``(prefix, model)`` sub-detectors (None if any declares none)."""
    spec: dict[str, tuple[int | None, ...]] = {}
    for prefix, model in members:
        own = _member_spec(model)
        if own is None:
            return None  # every header is still checked (float, size caps)
        spec.update({f"{prefix}{k}": v for k, v in own.items()})
    return spec


def _restore_members(
    state: dict[str, FloatArray], members: Sequence[tuple[str, str, BaseDetector, Any]], own: Sequence[str] = ()
) -> None:
    """Restore ``(label, prefix, model, calibration)`` sub-detectors from a container's state.

    Arrays must be the container's ``own`` or carry a member's prefix, and each member's must
    match its spec: nothing stray is loaded, nothing missing is guessed.
    """
    prefixes = tuple(prefix for _, prefix, _, _ in members)
    stray = sorted(k for k in state if k not in own and not k.startswith(prefixes))
    if stray:
        raise ModelFormatError(f"unexpected state array(s) {stray}")
    for label, prefix, model, calibration in members:
        arrays = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        spec = _member_spec(model)
        if spec is not None:
            if set(arrays) != set(spec):
                raise ModelFormatError(f"{label}: state arrays {sorted(arrays)}, expected {sorted(spec)}")
            for key, shape in spec.items():
                got = arrays[key].shape
                if len(got) != len(shape) or any(w is not None and s != w for s, w in zip(got, shape, strict=True)):
                    raise ModelFormatError(f"{label}: array {key!r} has shape {got}, expected {shape}")
        if "train_scores" not in arrays:
            raise ModelFormatError(f"{label}: missing array 'train_scores'")
        try:
            _restore_member(model, arrays, calibration)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(f"{label} ({type(model).__name__}): state does not fit: {exc}") from exc


def _restore_member(model: BaseDetector, own: dict[str, FloatArray], calibration: Any) -> None:
    """Inverse of :func:`_member_state` (``own`` without the prefix; ``train_scores`` checked by the caller)."""
    model.train_scores_ = own.pop("train_scores").astype(np.float64)
    model.holdout_scores_ = own.pop("holdout_scores", np.empty(0)).astype(np.float64)
    model.holdout_labels_ = None
    model._set_state(own)
    model.calibration_ = _loaded_calibration(calibration, model)


def _read_state(
    path: Path,
    spec: dict[str, tuple[tuple[int | None, ...], bool]] | None,
    base_spec: dict[str, tuple[tuple[int | None, ...], bool]],
) -> dict[str, FloatArray]:
    """Read ``state.npz`` safely: every header checked against ``spec`` before any payload is read."""
    try:
        if not path.is_file():
            raise ModelFormatError(f"{path}: missing (the model folder is incomplete)")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_STATE_MEMBERS:
                raise ModelFormatError(f"{path}: {len(infos)} arrays; refusing (limit {MAX_STATE_MEMBERS})")
            names = [info.filename for info in infos]
            if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                raise ModelFormatError(f"{path}: members must be unique .npy arrays, got {names[:10]}")
            keys = [n[: -len(".npy")] for n in names]
            expected = spec if spec is not None else base_spec
            if spec is not None:
                unexpected = sorted(set(keys) - set(spec))
                if unexpected:
                    raise ModelFormatError(f"{path}: unexpected array(s) {unexpected}")
            missing = sorted(k for k, (_, required) in expected.items() if required and k not in keys)
            if missing:
                raise ModelFormatError(f"{path}: missing array(s) {missing}")
            headers = []
            total = 0
            for info, key in zip(infos, keys, strict=True):
                with archive.open(info) as handle:
                    shape, fortran, dtype, start = _npy_header(handle, path, key)
                if key in expected:
                    shape_spec: tuple[int | None, ...] | None = expected[key][0]
                else:
                    shape_spec = (None,) * len(shape) if spec is None else None
                nbytes = _check_shape(path, key, shape, shape_spec, dtype, spec is None)
                if info.file_size != start + nbytes:
                    raise ModelFormatError(
                        f"{path}: array {key!r} declares {nbytes} bytes but its member holds {info.file_size - start}"
                    )
                total += nbytes
                if total > MAX_STATE_BYTES:
                    raise ModelFormatError(f"{path}: arrays declare more than {MAX_STATE_BYTES} bytes; refusing")
                headers.append((info, key, shape, fortran, dtype, nbytes))
            state: dict[str, FloatArray] = {}
            for info, key, shape, fortran, dtype, nbytes in headers:
                with archive.open(info) as handle:
                    _npy_header(handle, path, key)
                    payload = handle.read(nbytes)
                    if len(payload) != nbytes or handle.read(1):
                        raise ModelFormatError(f"{path}: array {key!r} is truncated or too long")
                array = np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")
                if not np.isfinite(array).all():
                    raise ModelFormatError(f"{path}: array {key!r} holds NaN or infinite values")
                state[key] = np.array(array, dtype=dtype.newbyteorder("="), order="C")
            return state
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise ModelFormatError(f"{path}: not a valid state archive ({type(exc).__name__}: {exc})") from exc


def _npy_header(handle: Any, path: Path, key: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(handle, max_header_size=10_000)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(handle, max_header_size=10_000)
        else:
            raise ModelFormatError(f"{path}: array {key!r} has unsupported .npy version {version}")
    except ModelFormatError:
        raise
    except Exception as exc:  # untrusted bytes: numpy's parser raises ValueError, SyntaxError, TokenError...
        raise ModelFormatError(f"{path}: array {key!r} has an invalid .npy header ({exc})") from exc
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype), int(handle.tell())


def _check_shape(
    path: Path,
    key: str,
    shape: tuple[int, ...],
    expected: tuple[int | None, ...] | None,
    dtype: np.dtype[Any],
    loose: bool,
) -> int:
    if dtype.hasobject or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise ModelFormatError(f"{path}: array {key!r} has dtype {dtype}; only float32/float64 arrays are read")
    if expected is None or len(shape) != len(expected):
        raise ModelFormatError(f"{path}: array {key!r} has shape {shape}, expected {expected}")
    for size, want in zip(shape, expected, strict=True):
        if want is not None and size != want:
            raise ModelFormatError(f"{path}: array {key!r} has shape {shape}, expected {expected}")
    elements = math.prod(shape)
    if (loose or None in expected) and elements > MAX_FREE_ELEMENTS:
        raise ModelFormatError(
            f"{path}: array {key!r} declares {elements} elements; refusing (limit {MAX_FREE_ELEMENTS})"
        )
    return int(elements * dtype.itemsize)


def load_model(path: PathLike, **options: Any) -> BaseDetector:
    """Load any detector saved with :meth:`BaseDetector.save`, whatever its class.

    Options go to :meth:`BaseDetector.load` (``features``, ``trust_endpoints``, parameter overrides).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> train = ClipFeatures.from_arrays([rng.normal(size=(20, 4)).astype("float32") for _ in range(3)])
    >>> path = GaussianDetector(threshold=3.0).fit(train).save("model")
    >>> type(load_model(path)).__name__
    'GaussianDetector'

    """
    return BaseDetector.load(path, **options)
