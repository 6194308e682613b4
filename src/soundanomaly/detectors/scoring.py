"""Scoring, the half of a detector that runs on new clips: ``score``, ``score_records``, ``predict``.

:class:`ScoringBase` turns clips (a ClipSet, paths, or ClipFeatures) into feature
windows in chunks, calls the detector's ``_score_windows``, reduces window
scores to one score per clip by ``aggregate``, and describes each clip's
outcome (:class:`~soundanomaly.results.ClipScore`); :class:`~soundanomaly.detectors.base.BaseDetector`
adds fitting, calibration and persistence on top.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly._progress import ProgressBar
from soundanomaly.audio import Channel
from soundanomaly.datasets.keys import group_keys, session_keys
from soundanomaly.detectors.inputs import (
    check_data,
    checked_window_scores,
    clip_paths,
    global_rng_kept,
    kept_mask,
    reduce_windows,
)
from soundanomaly.detectors.options import RunOptions, RunOptionsMixin
from soundanomaly.detectors.params import Parameterized
from soundanomaly.exceptions import AudioError, InvalidScoreError, InvalidScoreWarning, NotFittedError, ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures, take_clips
from soundanomaly.features.logmel import LogMelFrames
from soundanomaly.features.registry import as_batch_extractor, extractor_params
from soundanomaly.results import ClipScore, clip_scores, label_scores
from soundanomaly.typing import ClipData, FloatArray

__all__ = ["ScoringBase"]

_STATUS_OK = "ok"
_STATUS_INVALID = "invalid: non-finite score"
_Options = RunOptions | Mapping[str, Any] | None


class ScoringBase(Parameterized, RunOptionsMixin):
    """Scoring for every detector (see :class:`~soundanomaly.detectors.base.BaseDetector`).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> isinstance(GaussianDetector(), ScoringBase)
    True
    """

    # parameters and fitted state the scoring reads (set by the detector and by fit / load)
    channel: Channel
    aggregate: str
    threshold_: float
    n_features_in_: int
    last_status_: tuple[str, ...]
    last_source_rates_: tuple[int | None, ...]
    _score_groups: npt.NDArray[np.str_] | None = None
    _score_sessions: npt.NDArray[np.str_] | None = None

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

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:  # pragma: no cover - abstract
        """Per-window anomaly score, shape ``(n_windows,)``."""
        raise NotImplementedError

    def score(
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: _Options = None,
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
        options : RunOptions or dict, optional
            Run options for this call.

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
            with self._using(options):
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
        >>> detector = GaussianDetector(threshold=2.0).set_run_options(on_error="skip").fit(train)
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
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: _Options = None,
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
        scores = self.score(data, groups=groups, sessions=sessions, options=options)
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
        check_data(data)
        with global_rng_kept():
            if isinstance(data, ClipFeatures):
                scores = self._reduce(checked_window_scores(score_windows, self._checked(data).windows), data.offsets)
                status = [_STATUS_OK] * len(data)
                rates: list[int | None] = list(data.source_rates) or [None] * len(data)
                names = list(data.paths) if data.paths else [f"#{i}" for i in range(len(data))]
            else:
                paths = clip_paths(data)
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
                        kept = kept_mask(chunk, features)
                        present = np.flatnonzero(kept) + start
                        reasons = iter(reason for _, reason in getattr(features, "skipped", ()))
                        for j in (np.flatnonzero(~kept) + start).tolist():
                            status[j] = f"skipped: {next(reasons, 'unreadable')}"
                        for j, rate in zip(present.tolist(), features.source_rates, strict=False):
                            rates[j] = rate
                        window_scores = checked_window_scores(score_windows, features.windows)
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
        """Per-clip score from per-window scores by ``aggregate`` (:func:`~soundanomaly.detectors.inputs.reduce_windows`)."""
        return reduce_windows(per_window, offsets, self.aggregate)

    def decision_function(self, data: ClipData) -> npt.NDArray[np.float64]:
        """Alias of :meth:`score` (scikit-learn's name)."""
        return self.score(data)

    def predict(
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: _Options = None,
    ) -> npt.NDArray[np.int8]:
        """Label each clip: **1 = anomaly**, 0 = normal (``score > threshold_``; NaN scores give 1).

        The rule is :func:`soundanomaly.results.label_scores`; ``groups`` and ``sessions`` go to :meth:`score`.
        A clip whose session (given, or from a ClipSet's records) has its own threshold in
        ``session_thresholds_`` (a domain, an adapted session) is judged by that threshold.
        """
        scores = self.score(data, groups=groups, sessions=sessions, options=options)
        labels = label_scores(scores, self.threshold_)
        own = getattr(self, "session_thresholds_", {})
        keys = session_keys(data, sessions) if own else None
        if keys is not None:
            for session, threshold in own.items():
                members = np.flatnonzero(keys == session)
                labels[members] = label_scores(scores[members], threshold)
        return labels

    # -- what streaming asks of a fitted detector (public: no caller reaches into its private methods) ----------
    def score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        """Anomaly score of each feature vector, shape ``(n_windows,)`` (higher = more anomalous).

        ``windows`` is ``(n_windows, n_features)`` as ``features.transform`` gives; no clip reduction (see
        :meth:`reduce_windows`). The monitor scores each stream window with it.
        """
        self._check_fitted()
        return self._score_windows(windows)

    def reduce_windows(self, per_window: npt.ArrayLike, offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Clip scores from per-window scores by this detector's ``aggregate`` (clip ``i``: ``offsets[i]:offsets[i+1]``)."""
        return self._reduce(per_window, offsets)

    def check_is_fitted(self) -> None:
        """Raise :class:`~soundanomaly.exceptions.NotFittedError` unless the detector is fitted (or loaded)."""
        self._check_fitted()

    def group_member(self, group: str | None = None) -> tuple[Any, float, str | None]:
        """The detector that scores clips of ``group``, the offset added to its scores, and the group key.

        A single detector is its own member (``group`` must be None: offset 0);
        :class:`~soundanomaly.detectors.PerGroup` returns its group's model.

        Raises
        ------
        ParameterError
            A group given to a detector that is not per group, or one the model does not know.
        """
        if group is not None:
            raise ParameterError(
                f"group={group!r} applies to a PerGroup model (train --per-id), not a {type(self).__name__}"
            )
        return self, 0.0, None

    # -- helpers ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def _score_features(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        return self._reduce(checked_window_scores(self._score_windows, features.windows), features.offsets)

    def _checked(self, features: ClipFeatures) -> ClipFeatures:
        if features.n_features != self.n_features_in_:
            raise ParameterError(
                f"features have {features.n_features} values per vector; the detector was fitted on "
                f"{self.n_features_in_}"
            )
        if features.params and features.params != extractor_params(self.features):
            raise ParameterError(
                f"features were made with {features.params}, the detector expects {extractor_params(self.features)}"
            )
        return features

    @staticmethod
    def _check_data(data: object) -> None:
        check_data(data)

    def _paths(self, data: ClipData) -> list[str]:
        return clip_paths(data)

    def _extractor(self) -> BaseFeatureExtractor:
        return as_batch_extractor(self.features)

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
            take_clips(features, keep),
            None if y is None else y[keep],
            None if g is None else g[keep],
            None if s is None else s[keep],
        )
