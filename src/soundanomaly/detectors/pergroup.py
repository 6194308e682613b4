"""One model per machine: fit a detector per machine id (or section) and route each clip to its own.

Machines of one type still differ (model, speed, mounting): a single model
pooled over all of them must call "normal" everything any of them sounds like,
which hides faults that make one machine sound like another. :class:`PerGroup`
fits a clone of a detector per group, calibrates each clone's threshold on
its own held-out clips, and routes each clip to its group's model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval, Options, Satisfies
from soundanomaly.audio import Channel
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import GroupBy, group_key, group_keys, session_keys
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.inputs import parse_aggregate, take_data
from soundanomaly.detectors.meta import MetaDetector
from soundanomaly.detectors.options import RunOptions, as_run_options
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.typing import ClipData

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
    return take_data(data, indices)


def _is_template(detector: Any) -> bool:
    return isinstance(detector, BaseDetector) and not isinstance(detector, PerGroup)


class PerGroup(MetaDetector):
    """One clone of ``detector`` per machine id (or section); each clip is scored by its group's model.

    Each group's model is fitted on that group's clips only and calibrates its
    own threshold (its own hold-out, as the wrapped detector does). A clip's
    **score** is its group model's score minus that model's threshold, so
    with the default ``threshold_`` of 0 ``predict`` flags a clip exactly when
    its own model would; scores of different groups are comparable around 0.

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
    threshold : float, ThresholdCalibrator or None, default None
        The wrapper's own threshold on the per-group-centred scores: None for
        0 (each group's own threshold), a number, or a calibrator run on the
        groups' held-out clips (or on ``fit(..., validation=)``).
    features, channel, holdout, aggregate, random_state : optional
        Set on every group model instead of the template's value (None: the template's).
    **run_options
        Deprecated constructor run options (see :class:`~soundanomaly.detectors.options.RunOptions`).

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

    _parameter_constraints: ClassVar[Constraints] = {
        "detector": [Satisfies(_is_template, "an unfitted detector (a BaseDetector, not a PerGroup)"), None],
        "group_by": [Options("machine_id", "machine")],
        "channel": [Interval(int, None, None), Options("mean"), None],
        "holdout": [Interval(float, 0, 1, closed="left"), None],
        "aggregate": [Satisfies(parse_aggregate, "'mean', 'max', 'percentile:<q>' or 'topk:<k>'"), None],
    }
    _member_params = frozenset({"features", "channel", "holdout", "aggregate", "random_state"})

    def __init__(
        self,
        detector: BaseDetector | None = None,
        *,
        group_by: GroupBy = "machine_id",
        threshold: float | ThresholdCalibrator | None = None,
        features: Any = None,
        channel: Channel | None = None,
        holdout: float | None = None,
        aggregate: str | None = None,
        random_state: int | None = None,
        **run_options: Any,
    ) -> None:
        super().__init__(threshold=threshold, **run_options)
        self.detector = detector
        self.group_by = group_by
        self.features = features
        self.channel = channel
        self.holdout = holdout  # type: ignore[assignment]  # None: the template's
        self.aggregate = aggregate  # type: ignore[assignment]
        self.random_state = random_state

    # -- fitting ------------------------------------------------------------------
    def _template_features(self) -> Any:
        return self._default_features() if self.detector is None else self.detector.features

    def _new_model(self) -> BaseDetector:
        if self.detector is None:
            raise ParameterError("PerGroup needs a detector to clone, e.g. PerGroup(GaussianDetector())")
        overrides = {k: getattr(self, k) for k in self._member_params}
        overrides["features"] = self.__dict__.get("_features_given")
        return self._clone(self.detector, **overrides)

    def _member_models(self) -> list[tuple[str, str, BaseDetector]]:
        return [(f"group {key!r}", f"g{i}__", self.models_[key]) for i, key in enumerate(self.groups_)]

    def fit(
        self,
        data: ClipData,
        labels: npt.ArrayLike | None = None,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        validation: ClipData | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
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
        options : RunOptions or dict, optional
            Run options for this call (the group models run with them).

        Returns
        -------
        self
        """
        with self._using(options):
            return self._fit_groups_of(data, labels, groups, sessions, validation)

    def _fit_groups_of(
        self,
        data: ClipData,
        labels: npt.ArrayLike | None,
        groups: Sequence[str] | None,
        sessions: Sequence[str] | None,
        validation: ClipData | None,
    ) -> Self:
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
        self._collect_fit_records([self.models_[g] for g in self.groups_])
        self.train_scores_ = np.concatenate(train_parts).astype(np.float64)
        self.holdout_scores_ = np.concatenate(holdout_parts).astype(np.float64)
        self.holdout_labels_ = None
        self.training_clips_ = [c for g in self.groups_ for c in getattr(self.models_[g], "training_clips_", [])]
        if validation is not None:
            rule = self.threshold if isinstance(self.threshold, ThresholdCalibrator) else None
            self.threshold_ = 0.0
            self.calibrate(validation, calibrator=rule)
        elif isinstance(self.threshold, ThresholdCalibrator):
            self._calibrate_threshold(True, None)  # on the groups' held-out scores, each less its own threshold
        else:
            self.threshold_ = 0.0 if self.threshold is None else float(self.threshold)
            self.calibration_ = None
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

    def group_member(self, group: str | None = None) -> tuple[BaseDetector, float, str | None]:
        """The model of ``group`` (may be None with one group), minus its threshold as the offset, and the group.

        ``score`` gives a clip the group model's score less that model's threshold; a stream or an exported
        file stands for one group (one file per group).
        """
        self._check_fitted()
        if group is None and len(self.groups_) == 1:
            group = self.groups_[0]
        if group not in self.models_:
            raise ParameterError(
                f"this model holds one detector per group (one file per group): name one with group= "
                f"(CLI: --group), one of {self.groups_}" + ("" if group is None else f", not {group!r}")
            )
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
        self,
        data: ClipData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Each clip's score from its group's model, minus that model's threshold (higher = more anomalous).

        Parameters
        ----------
        data : ClipSet, sequence of paths, or ClipFeatures
        groups : sequence of str, optional
            Per-clip group keys; default from a ClipSet or the paths.
        sessions : sequence of str, optional
            Per-clip session keys, passed on to the group models.
        options : RunOptions or dict, optional
            Run options for this call (the group models run with them).

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
        run = self.run_options if options is None else as_run_options(options, self.run_options)
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
            scores[members] = model.score(_subset(data, members), sessions=own, options=run) - model.threshold_
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
        models = [{"group": key, **entry} for key, entry in zip(self.groups_, self._member_entries(), strict=True)]
        return {"group_by": self.group_by, "models": models}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        if set(extra) != {"group_by", "models"}:
            raise ModelFormatError(f"PerGroup manifest 'extra' must hold 'group_by' and 'models', got {sorted(extra)}")
        if extra["group_by"] not in ("machine_id", "machine"):
            raise ModelFormatError("PerGroup manifest 'group_by' must be 'machine_id' or 'machine'")
        entries = extra["models"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_GROUPS:
            raise ModelFormatError(f"PerGroup manifest 'models' must be a list of 1 to {MAX_GROUPS} entries")
        groups = [entry.get("group") if isinstance(entry, dict) else None for entry in entries]
        for i, group in enumerate(groups):
            if not isinstance(group, str) or not group or group in groups[:i]:
                raise ModelFormatError(f"PerGroup model {i}: 'group' must be a non-empty string, once per group")
        ordered = sorted(range(len(entries)), key=lambda i: str(groups[i]))
        models = self._load_members(
            [entries[i] for i in ordered], [f"group {groups[i]!r}" for i in ordered], frozenset({"group"})
        )
        self.models_ = {str(groups[i]): model for i, model in zip(ordered, models, strict=True)}
        self.groups_ = sorted(self.models_)
        if self.detector is None:
            first = self.models_[self.groups_[0]]
            self.detector = type(first)(**first._signature_params())  # an unfitted template, for refitting
