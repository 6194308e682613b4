"""The detector base class: input handling, thresholds, predict, save/load.

A detector subclass writes only how it fits (``_fit``) and how it scores
feature windows (``_score_windows``); this class does everything else.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import Channel
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets.mimii import ClipSet
from soundanomaly.exceptions import ModelFormatError, NotFittedError, ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.logmel import LogMelFrames
from soundanomaly.typing import ClipData, FloatArray, PathLike

__all__ = ["FORMAT_VERSION", "BaseDetector", "features_from_params"]

#: Version of the on-disk model format written by :meth:`BaseDetector.save`.
FORMAT_VERSION = 1
_EXTRACTORS: dict[str, type[BaseFeatureExtractor]] = {"LogMelFrames": LogMelFrames}


def register_extractor(cls: type[BaseFeatureExtractor]) -> type[BaseFeatureExtractor]:
    """Make a feature extractor class loadable from saved models (by its class name)."""
    _EXTRACTORS[cls.__name__] = cls
    return cls


_DETECTORS: dict[str, type[BaseDetector]] = {}


def features_from_params(params: dict[str, Any]) -> BaseFeatureExtractor:
    """Rebuild a feature extractor from its :meth:`params` dict."""
    params = dict(params)
    name = params.pop("name", None)
    if name == "SpectrogramImages":
        from soundanomaly.features.images import SpectrogramImages

        register_extractor(SpectrogramImages)
        if params.get("size") is not None:
            params["size"] = tuple(params["size"])
    cls = _EXTRACTORS.get(str(name))
    if cls is None:
        raise ModelFormatError(f"unknown feature extractor {name!r}; known: {sorted(_EXTRACTORS)}")
    return cls(**params)


class BaseDetector:
    """Base of every detector; its parameters are common to all subclasses.

    Parameters
    ----------
    features : BaseFeatureExtractor, default LogMelFrames()
    channel : int, "mean" or None, default 0
        Microphone used when given clip paths.
    threshold : float, ThresholdCalibrator or None
        How :meth:`fit` sets ``threshold_``: a fixed value, a calibrator run on
        the training scores, or ``None`` for ``ThresholdCalibrator("target_fpr",
        target_fpr=0.01)`` on the training scores. Recalibrate on held-out
        normal clips with :meth:`calibrate` for an honest threshold.
    chunk_size : int, default 64
        Clips per feature-extraction chunk when scoring paths: memory stays flat
        in the number of clips.

    Attributes
    ----------
    threshold_ : float
        Clips with ``score > threshold_`` are predicted anomalous.
    train_scores_ : np.ndarray
        Scores of the training clips.
    n_features_in_ : int
        Width of the feature vectors seen in :meth:`fit`.

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

    """

    #: Whether ``fit`` needs anomalous examples (supervised) or normal ones only.
    supervised: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _DETECTORS[cls.__name__] = cls

    def __init__(
        self,
        *,
        features: BaseFeatureExtractor | None = None,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = None,
        chunk_size: int = 64,
        progress: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ParameterError(f"chunk_size must be >= 1, got {chunk_size!r}")
        self.features = features if features is not None else LogMelFrames()
        self.channel = channel
        self.threshold = threshold
        self.chunk_size = chunk_size
        self.progress = progress

    # -- what subclasses write -------------------------------------------------
    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None) -> None:  # pragma: no cover
        """Learn from features; ``labels`` (1 = anomaly) are given to supervised detectors only."""
        raise NotImplementedError

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:  # pragma: no cover - abstract
        """Per-window anomaly score, shape ``(n_windows,)``."""
        raise NotImplementedError

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        """Scores of the training clips (used to set the default threshold)."""
        return self._score_features(features)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, JSON-serialisable (for save/load)."""
        threshold = self.threshold
        if isinstance(threshold, ThresholdCalibrator):
            threshold = None
        return {"channel": self.channel, "threshold": threshold, "chunk_size": self.chunk_size}

    def _get_state(self) -> dict[str, FloatArray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, state: dict[str, FloatArray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public API -------------------------------------------------------------
    def fit(self, data: ClipData, labels: npt.ArrayLike | None = None) -> Self:
        """Learn from clips.

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
            Unsupervised detectors take normal clips only (paths and feature
            arrays count as normal).
        labels : array-like of {0, 1}, optional
            Supervised detectors only: 1 = anomaly. Defaults to ``data.labels``
            for a ClipSet.

        Returns
        -------
        self
        """
        y: npt.NDArray[np.int8] | None = None
        if self.supervised:
            if labels is None and isinstance(data, ClipSet):
                labels = data.labels
            if labels is None:
                raise ParameterError(f"{type(self).__name__} is supervised: pass labels (1 = anomaly) or a ClipSet")
            y = np.asarray(labels).astype(np.int8)
            if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
                raise ParameterError("labels must be 0/1 and contain both normal (0) and anomalous (1) clips")
        elif labels is not None and np.any(np.asarray(labels)):
            raise ParameterError(f"{type(self).__name__} trains on normal sound only; labels must all be 0")
        elif isinstance(data, ClipSet) and data.labels.any():
            raise ParameterError(
                f"{type(self).__name__} trains on normal sound only, but data holds {int(data.labels.sum())} "
                "abnormal clip(s); pass clips.filter(label='normal')"
            )
        features = self._features(data)
        if y is not None and len(y) != len(features):
            raise ParameterError(f"got {len(y)} labels for {len(features)} clips")
        self._fit(features, y)
        self.n_features_in_ = features.n_features
        self.train_scores_ = self._training_scores(features)
        if isinstance(self.threshold, (int, float)):
            self.threshold_ = float(self.threshold)
        else:
            calibrator = self.threshold or ThresholdCalibrator("target_fpr", target_fpr=0.01)
            self.threshold_ = calibrator.fit(self.train_scores_).threshold
        return self

    def score(self, data: ClipData) -> npt.NDArray[np.float64]:
        """Anomaly score of each clip: **higher = more anomalous**.

        Unlike scikit-learn's ``score(X, y)``, this returns one value per clip.

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures

        Returns
        -------
        np.ndarray [shape=(n_clips,)], float64
        """
        self._check_fitted()
        return self._score_clips(data, self._score_windows)

    def _score_clips(
        self, data: ClipData, score_windows: Callable[[FloatArray], npt.NDArray[np.float64]]
    ) -> npt.NDArray[np.float64]:
        """Per-clip mean of ``score_windows``, streaming paths in chunks of ``chunk_size`` clips."""
        chunks = [data] if isinstance(data, ClipFeatures) else self._feature_chunks(data)
        parts = []
        for chunk in chunks:
            features = self._checked(chunk)
            parts.append(features.mean_per_clip(score_windows(features.windows)))
        return np.concatenate(parts)

    def decision_function(self, data: ClipData) -> npt.NDArray[np.float64]:
        """Alias of :meth:`score` (scikit-learn's name)."""
        return self.score(data)

    def predict(self, data: ClipData) -> npt.NDArray[np.int8]:
        """Label each clip: **1 = anomaly**, 0 = normal (``score > threshold_``)."""
        return (self.score(data) > self.threshold_).astype(np.int8)

    def calibrate(
        self,
        data: ClipData,
        *,
        calibrator: ThresholdCalibrator | None = None,
        labels: npt.ArrayLike | None = None,
    ) -> Calibration:
        """Set ``threshold_`` from held-out clips and return the calibration.

        Parameters
        ----------
        data : clips to score, typically normal validation clips
        calibrator : ThresholdCalibrator, default target_fpr=0.01
        labels : array-like of {0, 1}, optional
            Defaults to ``data.labels`` for a ClipSet, else all normal.
        """
        self._check_fitted()
        calibrator = calibrator or ThresholdCalibrator("target_fpr", target_fpr=0.01)
        if labels is None and isinstance(data, ClipSet):
            labels = data.labels
        result = calibrator.fit(self.score(data), labels)
        self.threshold_ = result.threshold
        return result

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}(features={self.features!r}, {params})"

    # -- persistence ------------------------------------------------------------
    def save(self, path: PathLike) -> Path:
        """Write the fitted detector to folder ``path``, atomically.

        The folder holds ``manifest.json`` (format version, library version,
        detector and feature parameters, threshold) and ``state.npz``. It
        appears complete or not at all; an existing folder is replaced.
        """
        from soundanomaly import __version__

        self._check_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "detector": type(self).__name__,
            "params": self.get_params(),
            "features": self.features.params(),
            "threshold": self.threshold_,
            "n_features_in": self.n_features_in_,
            "extra": self._manifest_extra(),
        }
        state = {**self._get_state(), "train_scores": self.train_scores_}
        with _atomic_dir(target) as tmp:
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            np.savez(tmp / "state.npz", **state)  # type: ignore[arg-type]
        return target

    @classmethod
    def load(cls, path: PathLike, *, features: BaseFeatureExtractor | None = None) -> Self:
        """Load a detector written by :meth:`save`.

        Parameters
        ----------
        path : path
        features : BaseFeatureExtractor, optional
            If given, must equal the saved feature parameters (guards against
            scoring with other features than the model was trained on).

        Raises
        ------
        ModelFormatError
            Missing/invalid manifest, a newer format version, another detector
            class, or mismatched feature parameters.
        """
        folder = Path(path)
        manifest_path = folder / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError as exc:
            raise ModelFormatError(f"{folder}: not a saved model (no manifest.json)") from exc
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{manifest_path}: invalid JSON ({exc})") from exc
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFormatError(
                f"{folder}: model format version {version!r} is newer than this soundanomaly supports "
                f"({FORMAT_VERSION}); upgrade soundanomaly"
            )
        name = manifest.get("detector")
        detector_cls = _DETECTORS.get(str(name))
        if detector_cls is None or not issubclass(detector_cls, cls):
            raise ModelFormatError(f"{folder}: holds a {name!r}, not a {cls.__name__}")
        saved_features = features_from_params(manifest["features"])
        if features is not None and features.params() != saved_features.params():
            raise ModelFormatError(
                f"{folder}: model was trained on features {saved_features.params()}, not {features.params()}"
            )
        detector = detector_cls(features=saved_features, **manifest["params"])
        with np.load(folder / "state.npz") as npz:
            state = {key: npz[key] for key in npz.files}
        detector.train_scores_ = state.pop("train_scores")
        detector._set_state(state)
        detector._load_manifest_extra(manifest.get("extra", {}))
        detector.threshold_ = float(manifest["threshold"])
        detector.n_features_in_ = int(manifest["n_features_in"])
        return detector

    def _manifest_extra(self) -> dict[str, Any]:
        return {}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        return None

    # -- helpers ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def _score_features(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        return features.mean_per_clip(self._score_windows(features.windows))

    def _checked(self, features: ClipFeatures) -> ClipFeatures:
        if features.n_features != self.n_features_in_:
            raise ParameterError(
                f"features have {features.n_features} values per vector; the detector was fitted on "
                f"{self.n_features_in_}"
            )
        if features.params and features.params != self.features.params():
            raise ParameterError(
                f"features were made with {features.params}, the detector expects {self.features.params()}"
            )
        return features

    def _paths(self, data: ClipData) -> list[str]:
        if isinstance(data, ClipSet):
            paths = data.paths
        elif isinstance(data, (str, os.PathLike)):
            raise ParameterError("data must be a sequence of paths, not a single path; wrap it in a list")
        elif isinstance(data, Sequence):
            paths = [os.fspath(p) for p in data]  # type: ignore[arg-type]
        else:
            raise ParameterError(f"data must be a ClipSet, a sequence of paths or ClipFeatures, got {type(data)}")
        if not paths:
            raise ParameterError("data is empty: no clips")
        return paths

    def _features(self, data: ClipData) -> ClipFeatures:
        if isinstance(data, ClipFeatures):
            return data
        return self.features.extract(self._paths(data), channel=self.channel, progress=self.progress)

    def _feature_chunks(self, data: ClipData) -> Iterator[ClipFeatures]:
        paths = self._paths(data)
        for start in range(0, len(paths), self.chunk_size):
            chunk = paths[start : start + self.chunk_size]
            yield self.features.extract(chunk, channel=self.channel, progress=self.progress)


class _atomic_dir:  # noqa: N801 - used like a function
    """Build a folder in a temporary sibling, then swap it into place."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=f".{self.target.name}.tmp-"))
        return self.tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
