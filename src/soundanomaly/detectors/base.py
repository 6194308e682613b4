"""The detector base class: parameters, input handling, held-out calibration, predict.

A detector subclass declares its parameters and writes how it fits
(``_fit``) and how it scores feature windows (``_score_windows``); this class
does everything else. Parameters and their one validator live in
:mod:`~soundanomaly.detectors.params`, run options in
:mod:`~soundanomaly.detectors.options`, input handling in
:mod:`~soundanomaly.detectors.inputs`, saving and loading in
:mod:`~soundanomaly.detectors.persistence`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from soundanomaly import sessions as _sessions
from soundanomaly._progress import ProgressBar
from soundanomaly._validation import Constraints, Instance, Interval, Options, Satisfies, check_labels
from soundanomaly.audio import Channel
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import group_keys, session_keys
from soundanomaly.detectors.adaptation import DEFAULT_TARGET_FPR, AdaptingBase
from soundanomaly.detectors.inputs import (
    check_data,
    clip_paths,
    global_rng_kept,
    kept_mask,
    parse_aggregate,
    take_data,
)
from soundanomaly.detectors.options import RUN_OPTION_NAMES, RunOptions
from soundanomaly.detectors.persistence import (
    FORMAT_VERSION,
    clip_records,
    find_training_clips,
    load_detector,
    load_model,
    persisted_params,
    save_model,
)
from soundanomaly.exceptions import (
    CalibrationWarning,
    InvalidScoreError,
    ParameterError,
)
from soundanomaly.features.base import ClipFeatures, take_clips
from soundanomaly.features.registry import (
    features_from_params,
    register_extractor,
)
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

#: Fewest clips ``fit`` holds out, and fewest it keeps for training after the hold-out.
MIN_HOLDOUT_CLIPS = 2
_STATUS_OK = "ok"
_STATUS_INVALID = "invalid: non-finite score"
_AGGREGATES = "'mean', 'max', 'percentile:<q in 0..100>' or 'topk:<k >= 1>'"
_Options = RunOptions | Mapping[str, Any] | None


def _is_extractor(value: Any) -> bool:
    return callable(getattr(value, "transform", None)) and callable(getattr(value, "params", None))


class BaseDetector(AdaptingBase):
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
    random_state : int or None, default 0
        Seeds the hold-out split (a local generator: the global NumPy random
        state is never touched; ``fit`` restores it even if a backend reseeds).
    **run_options
        ``chunk_size``, ``n_jobs``, ``cache_dir``, ``progress``, ``on_error``:
        deprecated here (``FutureWarning``); they are run options
        (:class:`~soundanomaly.detectors.options.RunOptions`), given to
        :meth:`fit`/:meth:`score` as ``options=`` or set with :meth:`set_run_options`.

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

    **Subclass contract** (see docs/architecture). Declare the parameters'
    constraints in ``_parameter_constraints``; ``__init__`` takes its own
    keyword-only arguments, stores each unchanged under its own name and
    passes the rest on (``**base``): the full signature, ``get_params``,
    ``set_params``, ``repr`` and ``clone`` derive from it, and the constraints
    are checked once, in one place. Write ``_fit(features, labels)`` (labels
    only for ``supervised`` detectors; ``self._fit_groups`` /
    ``self._fit_sessions`` hold per-clip group and session keys such as
    ``"fan/id_00"`` aligned with ``features``, or None),
    ``_score_windows(windows) -> float64 (n_windows,)``, ``_get_state()`` /
    ``_set_state()`` (float arrays) and ``_state_spec()`` (expected array
    shapes, checked before any array is read on load). Then add one line to
    :data:`soundanomaly.registry.DETECTORS`.

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
    _parameter_constraints: ClassVar[Constraints] = {
        "features": [Satisfies(_is_extractor, "an extractor with transform(signal, sr) and params()"), None],
        "channel": [Interval(int, None, None), Options("mean"), None],
        "threshold": [Interval(float, None, None), Instance(ThresholdCalibrator, text="a ThresholdCalibrator"), None],
        "holdout": [Interval(float, 0, 1, closed="left")],
        "aggregate": [Satisfies(parse_aggregate, _AGGREGATES)],
        "random_state": [Interval(int, None, None), None],
    }

    # learned state (set by fit / load; declared here for type checkers only)
    threshold_: float
    train_scores_: npt.NDArray[np.float64]
    holdout_scores_: npt.NDArray[np.float64]
    holdout_labels_: npt.NDArray[np.int8] | None
    calibration_: Calibration | None
    n_features_in_: int
    training_clips_: list[list[str | None]]
    fit_skipped_: tuple[tuple[str, str], ...]
    _fit_groups: npt.NDArray[np.str_] | None
    _fit_sessions: npt.NDArray[np.str_] | None
    _by_domain: bool = False

    def __init__(
        self,
        *,
        features: Any = None,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = None,
        holdout: float = 0.2,
        aggregate: str = "mean",
        random_state: int | None = 0,
        **run_options: Any,
    ) -> None:
        self.features = features
        self.channel = channel
        self.threshold = threshold
        self.holdout = holdout
        self.aggregate = aggregate
        self.random_state = random_state
        if run_options:
            self._take_constructor_options(run_options, type(self).__name__)
        if type(self) is BaseDetector:
            self._validate_params()

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None) -> None:  # pragma: no cover
        """Learn from features; ``labels`` (1 = anomaly) are given to supervised detectors only."""
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

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        return None

    @classmethod
    def _saved_params(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments a saved model's parameters give (run options saved before 0.3 dropped)."""
        return {k: v for k, v in saved.items() if k not in RUN_OPTION_NAMES}

    # -- scikit-learn conventions -------------------------------------------------
    def _signature_params(self) -> dict[str, Any]:
        params = super()._signature_params()
        if "features" in params:
            params["features"] = self.__dict__.get("_features_given")  # as given: None means the default extractor
        return params

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
        options: _Options = None,
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
        options : RunOptions or dict, optional
            Run options for this call (chunking, workers, cache, progress, unreadable clips).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Wrong input types, bad labels, fewer than 2 feature windows, NaN
            features (unless ``on_error="skip"``), degenerate data.
        """
        with self._using(options):
            return self._fit_clips(data, labels, groups, sessions, validation)

    def _fit_clips(
        self,
        data: ClipData,
        labels: npt.ArrayLike | None,
        groups: Sequence[str] | None,
        sessions: Sequence[str] | None,
        validation: ClipData | None,
    ) -> Self:
        check_data(data)
        name = type(self).__name__
        calibrating = not isinstance(self.threshold, numbers.Real)
        if validation is not None:
            check_data(validation)
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
            data = take_data(data, keep)
            g = None if g is None else g[keep]
            s = None if s is None else s[keep]
            y = None
        else:
            y = None

        paths: list[str] | None = None
        if isinstance(data, ClipFeatures):
            features = data
        else:
            paths = clip_paths(data)
            with ProgressBar(total=len(paths), desc="features", enabled=bool(self.progress)) as bar:
                features = self._extract(paths, bar)
        kept = kept_mask(paths, features)
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
        train = features if len(hold_idx) == 0 else take_clips(features, train_idx)
        self._fit_groups = None if g is None else g[train_idx]
        self._fit_sessions = None if s is None else s[train_idx]
        y_train = None if y is None else y[train_idx]
        self.n_features_in_ = features.n_features
        with global_rng_kept():
            self._fit(train, y_train)
            self.train_scores_ = self._training_scores(train)
            if len(hold_idx):
                self.holdout_scores_ = self._score_features(take_clips(features, hold_idx))
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
        self.training_clips_ = clip_records(features.paths)
        self.fit_skipped_ = tuple(getattr(features, "skipped", ()))
        return self

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

    # -- persistence (soundanomaly.detectors.persistence) ------------------------
    def _persisted_params(self) -> dict[str, Any]:
        """JSON-able constructor parameters for the manifest (features are saved on their own)."""
        return persisted_params(self)

    def save(self, path: PathLike, *, overwrite: bool = False, inputs: Sequence[PathLike] = ()) -> Path:
        """Write the fitted detector to folder ``path``, atomically (see :func:`~soundanomaly.detectors.persistence.save_model`).

        The folder holds ``manifest.json`` (format version, detector and
        feature parameters, threshold, calibration, training clips),
        ``state.npz`` and a marker file. It appears complete or not at all.
        ``overwrite`` replaces a folder soundanomaly did not write (a saved
        model or an empty folder is always replaced, as a whole); the output
        may never equal or contain one of ``inputs``.

        Raises
        ------
        OutputExistsError
            ``path`` holds other data (without ``overwrite``) or contains an input.
        """
        return save_model(self, path, overwrite=overwrite, inputs=inputs)

    @classmethod
    def load(cls, path: PathLike, *, features: Any = None, trust_endpoints: bool = False, **params: Any) -> Self:
        """Load a detector written by :meth:`save` (any subclass of ``cls``).

        A model folder is data, not instructions (see
        :func:`~soundanomaly.detectors.persistence.load_detector`): the manifest is
        validated key by key, parameters by the declared constraints, each
        array header before its payload; connection parameters are ignored
        unless ``trust_endpoints=True``; run options are never read from it.
        ``params`` override saved parameters or set run options (``progress=True``).

        Raises
        ------
        ModelFormatError
            Anything wrong with the folder, the manifest or the state.
        """
        return load_detector(cls, path, features=features, trust_endpoints=trust_endpoints, **params)

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
