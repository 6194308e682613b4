"""One model per machine: fit a detector per machine id (or section) and route each clip to its own.

Machines of one type still differ (model, speed, mounting): a single model
pooled over all of them must call "normal" everything any of them sounds like,
which hides faults that make one machine sound like another. :class:`PerGroup`
fits a clone of a detector per group, calibrates each clone's threshold on
its own held-out clips, and routes each clip to its group's model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import Channel
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import GroupBy, group_key, group_keys, session_keys
from soundanomaly.detectors import base as _base
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.typing import ClipData, FloatArray, PathLike

__all__ = ["PerGroup", "clip_groups", "group_of_path"]

MAX_GROUPS = 1024  # groups a saved PerGroup may declare (DCASE has ~50 machine sections)


def group_of_path(path: str, group_by: GroupBy = "machine_id") -> str | None:
    """The group key a clip's path implies, or None: :func:`soundanomaly.datasets.keys.group_key`.

    Kept for compatibility; call :func:`~soundanomaly.datasets.keys.group_key`.

    Examples
    --------
    >>> group_of_path("dev/pump/test/section_01_source_test_anomaly_0003.wav")
    'pump/section_01'
    """
    return group_key(path, group_by=group_by)


def clip_groups(
    data: ClipData, groups: Sequence[str] | None = None, *, group_by: GroupBy = "machine_id"
) -> npt.NDArray[np.str_]:
    """Per-clip group keys: :func:`soundanomaly.datasets.keys.group_keys` (kept for compatibility).

    Raises
    ------
    ParameterError
        A clip's group cannot be told (pass ``groups=``), or ``groups`` has the wrong length.

    Examples
    --------
    >>> clip_groups(["x/pump/id_04/abnormal/b.wav"]).tolist()
    ['pump/id_04']
    """
    return group_keys(data, groups, group_by=group_by)


def _subset(data: ClipData, indices: npt.NDArray[np.int64]) -> ClipData:
    if isinstance(data, ClipFeatures):
        return _base._take(data, indices)
    if isinstance(data, ClipSet):
        return data.take(int(i) for i in indices)
    return [data[int(i)] for i in indices]


class PerGroup(BaseDetector):
    """One clone of ``detector`` per machine id (or section); each clip is scored by its group's model.

    Each group's model is fitted on that group's clips only and calibrates its
    own threshold (its own hold-out, as the wrapped detector does). A clip's
    **score** is its group model's score minus that model's threshold, so
    ``threshold_`` is 0 and ``predict`` flags a clip exactly when its own
    model would; scores of different groups are comparable around 0.

    Groups come from ``groups=`` (fit and score), a ClipSet's records
    (``"<machine>/id_NN"``, as :meth:`BaseDetector.fit` makes them), or the
    clips' MIMII/DCASE paths (see :func:`group_of_path`). A clip of a group
    not seen in fit raises :class:`~soundanomaly.exceptions.ParameterError`.

    Saved and loaded as one model folder (every group's parameters, state and
    threshold inside); ``soundanomaly.detectors.load`` returns a PerGroup.

    Parameters
    ----------
    detector : BaseDetector
        The template; it is cloned (``type(detector)(**params)``), never fitted itself.
    group_by : {"machine_id", "machine"}, default "machine_id"
        Key used from paths/records.
    features, channel, threshold, holdout, aggregate, chunk_size, n_jobs, cache_dir, progress, on_error, random_state
        Base parameters of the wrapper itself; the group models use the
        template's. ``features`` defaults to the template's (what a saved model records).

    Attributes
    ----------
    models_ : dict of str to soundanomaly.detectors.base.BaseDetector
        The fitted model of each group.
    groups_ : list of str
        The groups seen in fit, sorted.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors.gaussian import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(i % 2 * 5, 1, size=(10, 4)).astype("float32") for i in range(40)]
    >>> train = ClipFeatures.from_arrays(clips)
    >>> ids = ["fan/id_00", "fan/id_02"] * 20
    >>> model = PerGroup(GaussianDetector(threshold=3.0)).fit(train, groups=ids)
    >>> model.groups_
    ['fan/id_00', 'fan/id_02']
    >>> odd = ClipFeatures.from_arrays([np.full((10, 4), 5.0, "float32")])  # id_02's sound, claimed by id_00
    >>> model.predict(odd, groups=["fan/id_00"]).tolist(), model.predict(odd, groups=["fan/id_02"]).tolist()
    ([1], [0])
    """

    def __init__(
        self,
        detector: BaseDetector | None = None,
        *,
        group_by: GroupBy = "machine_id",
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
        if detector is not None and not isinstance(detector, BaseDetector):
            raise ParameterError(f"detector must be a detector (BaseDetector), got {detector!r}")
        if isinstance(detector, PerGroup):
            raise ParameterError("detector must not itself be a PerGroup")
        if group_by not in ("machine_id", "machine"):
            raise ParameterError(f"group_by must be 'machine_id' or 'machine', got {group_by!r}")
        super().__init__(
            features=features if features is not None or detector is None else detector.features,
            channel=channel,
            threshold=threshold,
            holdout=holdout,
            aggregate=aggregate,
            chunk_size=chunk_size,
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            progress=progress,
            on_error=on_error,
            random_state=random_state,
        )
        self.detector = detector
        self.group_by = group_by

    # -- fitting ------------------------------------------------------------------
    def _new_model(self) -> BaseDetector:
        if self.detector is None:
            raise ParameterError("PerGroup needs a detector to clone, e.g. PerGroup(GaussianDetector())")
        params = self.detector._signature_params()
        return type(self.detector)(**params)

    def fit(
        self,
        data: ClipData,
        labels: npt.ArrayLike | None = None,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        validation: ClipData | None = None,
    ) -> Self:
        """Fit one model per group.

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        labels : array-like of {0, 1}, optional
            Passed on per group (supervised detectors; unsupervised ones leave abnormal clips out).
        groups : sequence of str, optional
            Per-clip group keys; default from a ClipSet or the paths.
        sessions : sequence of str, optional
            Per-clip session keys, passed on per group (default from a ClipSet or the paths).
        validation : ClipSet, sequence of paths, or ClipFeatures, optional
            Clips to calibrate the wrapper's ``threshold_`` on after the group
            models are fitted (as :meth:`calibrate` does, with the ``threshold``
            calibrator or the default one); the group models keep their own thresholds.

        Returns
        -------
        self
        """
        self._check_data(data)
        keys = clip_groups(data, groups, group_by=self.group_by)
        session_arr = session_keys(data, sessions)
        y = None if labels is None else np.asarray(labels)
        if y is not None and len(y) != len(keys):
            raise ParameterError(f"got {len(y)} labels for {len(keys)} clips")
        self.models_: dict[str, BaseDetector] = {}
        train_parts, holdout_parts = [], []
        for key in sorted(set(keys.tolist())):
            members = np.flatnonzero(keys == key).astype(np.int64)
            model = self._new_model()
            try:
                model.fit(
                    _subset(data, members),
                    None if y is None else y[members],
                    groups=keys[members].tolist(),
                    sessions=None if session_arr is None else session_arr[members].tolist(),
                )
            except ParameterError as exc:
                raise ParameterError(f"group {key!r} ({len(members)} clips): {exc}") from exc
            self.models_[key] = model
            train_parts.append(model.train_scores_ - model.threshold_)
            holdout_parts.append(getattr(model, "holdout_scores_", np.empty(0)) - model.threshold_)
        self.groups_ = sorted(self.models_)
        first = self.models_[self.groups_[0]]
        self.features = first.features
        self.n_features_in_ = first.n_features_in_
        self.train_scores_ = np.concatenate(train_parts).astype(np.float64)
        self.holdout_scores_ = np.concatenate(holdout_parts).astype(np.float64)
        self.holdout_labels_ = None
        self.threshold_ = 0.0
        self.calibration_ = None
        self.training_clips_ = [c for g in self.groups_ for c in getattr(self.models_[g], "training_clips_", [])]
        self.fit_skipped_ = tuple(s for g in self.groups_ for s in getattr(self.models_[g], "fit_skipped_", ()))
        if validation is not None:
            rule = self.threshold if isinstance(self.threshold, ThresholdCalibrator) else None
            self.calibrate(validation, calibrator=rule)
        return self

    def adapt(
        self, data: ClipData, *, sessions: Sequence[str] | None = None, groups: Sequence[str] | None = None
    ) -> Self:
        """Adapt each group's model on that group's normal clips (see :meth:`BaseDetector.adapt`).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
            Normal clips of a new session, of one or more known groups.
        sessions : sequence of str, optional
            Per-clip session keys (default from a ClipSet or the paths, else ``"adapted"``).
        groups : sequence of str, optional
            Per-clip group keys; default from a ClipSet or the paths.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            A clip of a group the model does not know, or a group model that cannot adapt.
        """
        self._check_fitted()
        self._check_data(data)
        keys = clip_groups(data, groups, group_by=self.group_by)
        unknown = sorted(set(keys.tolist()) - set(self.models_))
        if unknown:
            raise ParameterError(f"no model for group(s) {unknown}; this model knows {self.groups_}")
        session_arr = session_keys(data, sessions)
        for key in sorted(set(keys.tolist())):
            members = np.flatnonzero(keys == key).astype(np.int64)
            part = None if session_arr is None else session_arr[members].tolist()
            self.models_[key].adapt(_subset(data, members), sessions=part)
        return self

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None) -> None:  # pragma: no cover
        raise NotImplementedError("PerGroup.fit fits its group models itself")

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        raise ParameterError("PerGroup scores whole clips routed by group; call score()")

    def _export_target(self, group: str | None) -> tuple[BaseDetector, float, str | None]:
        self._check_fitted()
        if group is None and len(self.groups_) == 1:
            group = self.groups_[0]
        if group not in self.models_:
            raise ParameterError(f"choose the group to export (one file per group): group= one of {self.groups_}")
        model = self.models_[group]
        return model, -float(model.threshold_), group  # PerGroup.score: the group model's score less its threshold

    # -- scoring ------------------------------------------------------------------
    def _routes(self, data: ClipData, groups: Sequence[str] | None) -> list[tuple[str, npt.NDArray[np.int64]]]:
        keys = clip_groups(data, groups, group_by=self.group_by)
        unknown = sorted(set(keys.tolist()) - set(self.models_))
        if unknown:
            raise ParameterError(f"no model for group(s) {unknown}; this model knows {self.groups_}")
        return [(key, np.flatnonzero(keys == key).astype(np.int64)) for key in self.groups_ if (keys == key).any()]

    def _clip_keys(self, data: ClipData, groups: Sequence[str] | None) -> list[str | None]:
        """Each clip's group, None where it cannot be told (explicit ``groups`` and bare features: strict)."""
        if groups is not None or isinstance(data, ClipFeatures):
            self._routes(data, groups)  # explicit groups the model does not know are the caller's mistake: raises
            return list(clip_groups(data, groups, group_by=self.group_by).tolist())
        items: Sequence[Any] = list(data)  # ClipRecords of a ClipSet, or paths
        return [group_key(item, group_by=self.group_by) for item in items]

    def score(
        self, data: ClipData, *, groups: Sequence[str] | None = None, sessions: Sequence[str] | None = None
    ) -> npt.NDArray[np.float64]:
        """Each clip's score from its group's model, minus that model's threshold (higher = more anomalous).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        groups : sequence of str, optional
            Per-clip group keys; default from a ClipSet or the paths.
        sessions : sequence of str, optional
            Per-clip session keys, passed on to the group models.

        Returns
        -------
        np.ndarray [shape=(n_clips,)], float64
        """
        self._check_fitted()
        self._check_data(data)
        scores = np.full(len(data), np.nan)
        status = ["ok"] * len(data)
        rates: list[int | None] = [None] * len(data)
        session_arr = None if sessions is None else session_keys(data, sessions)
        keys = self._clip_keys(data, groups)
        for i, key in enumerate(keys):  # a clip of no known group is reported and skipped; the rest are scored
            if key is None:
                status[i] = "skipped: cannot tell its group (machine id or section): not a MIMII/DCASE path"
            elif key not in self.models_:
                status[i] = f"skipped: no model for group {key} (this model knows {', '.join(self.groups_)})"
        routes = [(key, np.flatnonzero([k == key for k in keys]).astype(np.int64)) for key in self.groups_]
        for key, members in [(key, members) for key, members in routes if len(members)]:
            model = self.models_[key]
            own = None if session_arr is None else session_arr[members].tolist()
            scores[members] = model.score(_subset(data, members), sessions=own) - model.threshold_
            for j, s in zip(members, getattr(model, "last_status_", ()), strict=False):
                status[int(j)] = s
            for j, rate in zip(members, getattr(model, "last_source_rates_", ()), strict=False):
                rates[int(j)] = rate
        self.last_status_ = tuple(status)
        self.last_source_rates_ = tuple(rates)
        return scores

    def calibrate_groups(
        self,
        data: ClipData,
        *,
        calibrator: ThresholdCalibrator | None = None,
        labels: npt.ArrayLike | None = None,
        groups: Sequence[str] | None = None,
    ) -> dict[str, Calibration]:
        """Recalibrate each group's threshold on that group's clips (e.g. held-out normal ones).

        :meth:`calibrate` instead moves one threshold over the (already
        per-group-centred) scores of all clips.

        Returns
        -------
        dict of str to Calibration
            Per group present in ``data``.
        """
        self._check_fitted()
        y = None if labels is None else np.asarray(labels)
        if y is None and isinstance(data, ClipSet):
            y = data.labels
        out = {}
        for key, members in self._routes(data, groups):
            out[key] = self.models_[key].calibrate(
                _subset(data, members), calibrator=calibrator, labels=None if y is None else y[members]
            )
        return out

    # -- persistence --------------------------------------------------------------
    def _manifest_extra(self) -> dict[str, Any]:
        models = [{"group": key, **_base._member_entry(self.models_[key])} for key in self.groups_]
        return {"group_by": self.group_by, "models": models}

    def _get_state(self) -> dict[str, FloatArray]:
        state: dict[str, FloatArray] = {}
        for i, key in enumerate(self.groups_):
            state.update(_base._member_state(self.models_[key], f"g{i}__"))
        return state

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        if set(extra) != {"group_by", "models"}:
            raise ModelFormatError(f"PerGroup manifest 'extra' must hold 'group_by' and 'models', got {sorted(extra)}")
        if extra["group_by"] not in ("machine_id", "machine"):
            raise ModelFormatError("PerGroup manifest 'group_by' must be 'machine_id' or 'machine'")
        entries = extra["models"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_GROUPS:
            raise ModelFormatError(f"PerGroup manifest 'models' must be a list of 1 to {MAX_GROUPS} entries")
        self.models_ = {}
        self._calibrations: dict[str, Any] = {}
        for i, entry in enumerate(entries):
            group = entry.get("group") if isinstance(entry, dict) else None
            if not isinstance(group, str) or not group or group in self.models_:
                raise ModelFormatError(f"PerGroup model {i}: 'group' must be a non-empty string, once per group")
            self.models_[group] = _base._load_member(entry, f"group {group!r}", PerGroup, frozenset({"group"}))
            self._calibrations[group] = entry["calibration"]  # rebuilt in _set_state
        self.groups_ = sorted(self.models_)
        if self.detector is None:
            first = self.models_[self.groups_[0]]
            self.detector = type(first)(**first._signature_params())  # an unfitted template, for refitting

    def _state_spec(self) -> dict[str, tuple[int | None, ...]] | None:
        return _base._members_spec([(f"g{i}__", self.models_[key]) for i, key in enumerate(self.groups_)])

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        members = [
            (f"group {key!r}", f"g{i}__", self.models_[key], self._calibrations.get(key))
            for i, key in enumerate(self.groups_)
        ]
        _base._restore_members(state, members)
