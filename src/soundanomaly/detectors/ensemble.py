"""Combine detectors: each member's scores standardised by its own held-out normal scores, then averaged.

Detectors that look at different things (a clip's spectral fingerprint, how
well its machine id can be told from its sound) fail on different clips; the
mean of their standardised scores is often steadier than either alone.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval, Options, check_labels
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import group_keys, session_keys
from soundanomaly.detectors.base import MIN_HOLDOUT_CLIPS, BaseDetector
from soundanomaly.detectors.inputs import take_data
from soundanomaly.detectors.meta import MetaDetector
from soundanomaly.detectors.options import RunOptions
from soundanomaly.detectors.persistence import clip_records
from soundanomaly.exceptions import (
    CalibrationWarning,
    InvalidScoreError,
    InvalidScoreWarning,
    ModelFormatError,
    ParameterError,
)
from soundanomaly.features.base import ClipFeatures
from soundanomaly.typing import ClipData, FloatArray

__all__ = ["Ensemble"]

Combine = Literal["mean", "max"]
Standardize = Literal["standard", "robust"]
#: Most members an ensemble (or a saved one) may have.
MAX_MEMBERS = 64
#: IQR of a normal distribution in standard deviations: robust spreads are comparable to std.
_IQR_TO_STD = 1.3489795003921634
_MemberData = ClipData | Sequence[ClipFeatures]


class Ensemble(MetaDetector):
    """Several detectors, fitted on the same clips; a clip's score combines their standardised scores.

    ``fit`` holds out ``holdout`` of the normal clips (the base class's
    hold-out rule, seeded by ``random_state``), fits a clone of every member
    on the rest (each member again holds out its own share to calibrate its
    own threshold), standardises each member's scores by that member's
    **own held-out normal scores**, and calibrates the ensemble's
    ``threshold_`` on its held-out clips, which no member has seen. Scores:
    **higher = more anomalous**; a combined score of about 0 is a typical
    normal clip, 1 is one "normal spread" above it.

    Members may use different features: give the ensemble clips (a ClipSet
    or paths), and each member extracts its own; or give one
    :class:`~soundanomaly.features.ClipFeatures` (every member takes it), or
    a list with one ClipFeatures per member (same clips, same order).

    Saved and loaded as one model folder (every member's parameters, state,
    threshold and standardisation inside).

    Parameters
    ----------
    detectors : list of BaseDetector
        The members, never fitted themselves (``fit`` fits clones, kept in
        ``detectors_``). Unsupervised detectors only (those that learn from
        normal clips); not an Ensemble.
    combine : {"mean", "max"}, default "mean"
        How the standardised member scores become one: their mean, or the
        largest (flags a clip as soon as one member finds it odd; more false
        alarms at the same threshold quantile, more sensitive to a fault only
        one member sees).
    standardize : {"standard", "robust"}, default "standard"
        ``"standard"``: ``(score - mean) / std`` of the member's held-out
        normal scores; ``"robust"``: ``(score - median) / (IQR / 1.349)``
        (equal for normally distributed scores). With ``combine="mean"`` only
        the spreads change the ranking. The standard deviation gives less
        weight to a member whose normal scores have a long tail (one that is
        erratic on normal clips); on the quality benchmark that was as good or
        better (docs/quality).
        ``"robust"`` resists a stray loud clip among few held-out ones. A
        spread of 0 falls back to the standard deviation.
    threshold : float, ThresholdCalibrator or None, default None
        The ensemble's own threshold rule (see
        :class:`~soundanomaly.detectors.base.BaseDetector`); a number holds
        nothing out at the ensemble level, so members train on every clip.
    holdout : float in [0, 1), default 0.2
        Share of the normal clips the ensemble keeps out of its members'
        training to calibrate ``threshold_``.
    random_state : int or None, default 0
        Seeds the ensemble's hold-out split.
    **run_options
        Deprecated constructor run options (see
        :class:`~soundanomaly.detectors.options.RunOptions`); the members run
        with the ensemble's (one progress bar setting, one ``on_error``: with
        ``"skip"``, a held-out clip without a valid combined score is left out
        of the calibration with a warning).

    Attributes
    ----------
    detectors_ : list of soundanomaly.detectors.base.BaseDetector
        The fitted members.
    centres_, spreads_ : np.ndarray [shape=(n_members,)]
        Each member's standardisation: ``(score - centre) / spread``.

    Notes
    -----
    Each member is standardised by its own held-out normal scores (clips it
    did not train on), so the members' scales agree where it matters, among
    normal clips, whatever their units. A member without held-out scores
    (a numeric ``threshold`` or ``holdout=0``) is standardised by its
    training scores, with a :class:`~soundanomaly.exceptions.CalibrationWarning`
    (they are optimistic: its scores weigh more). Members see
    ``1 - holdout`` of the clips; with few clips, ``threshold=<number>``
    trains them on all.

    Examples
    --------
    Few clips here, so every threshold aims at 10 % false alarms (1 % needs about 100 held-out clips):

    >>> import numpy as np
    >>> from soundanomaly.calibration import ThresholdCalibrator
    >>> from soundanomaly.detectors import ClipStatsDetector, GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> normal = ClipFeatures.from_arrays([rng.normal(size=(4, 6)).astype("float32") for _ in range(60)])
    >>> odd = ClipFeatures.from_arrays([rng.normal(3, 1, size=(4, 6)).astype("float32")])
    >>> rule = ThresholdCalibrator(target_fpr=0.1)
    >>> members = [GaussianDetector(threshold=rule), ClipStatsDetector(threshold=rule)]
    >>> ensemble = Ensemble(members, threshold=rule).fit(normal)
    >>> [type(m).__name__ for m in ensemble.detectors_], len(ensemble.holdout_scores_)
    (['GaussianDetector', 'ClipStatsDetector'], 12)
    >>> ensemble.predict(odd).tolist()
    [1]
    """

    def __init__(
        self,
        detectors: Sequence[BaseDetector] | None = None,
        *,
        combine: Combine = "mean",
        standardize: Standardize = "standard",
        threshold: float | ThresholdCalibrator | None = None,
        holdout: float = 0.2,
        random_state: int | None = 0,
        **run_options: Any,
    ) -> None:
        super().__init__(threshold=threshold, **run_options)
        self.detectors = detectors
        self.combine = combine
        self.standardize = standardize
        self.holdout = holdout
        self.random_state = random_state

    _parameter_constraints: ClassVar[Constraints] = {
        "combine": [Options("mean", "max")],
        "standardize": [Options("standard", "robust")],
        "holdout": [Interval(float, 0, 1, closed="left")],
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        detectors = self.detectors
        if detectors is not None:
            if isinstance(detectors, (str, bytes, BaseDetector)) or not isinstance(detectors, Sequence):
                raise ParameterError(f"detectors must be a list of detectors, got {detectors!r}")
            if not 1 <= len(detectors) <= MAX_MEMBERS:
                raise ParameterError(f"detectors must hold 1 to {MAX_MEMBERS} detectors, got {len(detectors)}")
            for i, member in enumerate(detectors):
                if not isinstance(member, BaseDetector):
                    raise ParameterError(f"detectors[{i}] must be a detector (BaseDetector), got {member!r}")
                if isinstance(member, Ensemble):
                    raise ParameterError(f"detectors[{i}] must not itself be an Ensemble")
                if member.supervised:
                    raise ParameterError(
                        f"detectors[{i}] ({type(member).__name__}) is supervised; an Ensemble combines detectors "
                        "that learn from normal clips"
                    )

    def _member_models(self) -> list[tuple[str, str, BaseDetector]]:
        return [(f"member {i}", f"m{i}__", model) for i, model in enumerate(self.detectors_)]

    def _template_features(self) -> Any:
        return self.detectors[0].features if self.detectors else self._default_features()

    # -- data ---------------------------------------------------------------------
    def _member_data(self, data: _MemberData, n_members: int) -> list[ClipData]:
        """One input per member: ``data`` itself, or the member's own ClipFeatures from a list of them."""
        if isinstance(data, (list, tuple)) and data and all(isinstance(x, ClipFeatures) for x in data):
            if len(data) != n_members:
                raise ParameterError(f"got {len(data)} ClipFeatures for {n_members} ensemble members; give one each")
            sizes = {len(x) for x in data}
            if len(sizes) != 1:
                raise ParameterError(f"the members' ClipFeatures hold different numbers of clips: {sorted(sizes)}")
            named = [x.paths for x in data if x.paths]
            if any(p != named[0] for p in named):
                raise ParameterError("the members' ClipFeatures hold different clips (their paths differ)")
            return list(data)
        self._check_data(data)
        return [data] * n_members  # type: ignore[list-item]

    @staticmethod
    def _clip_paths(data: ClipData) -> list[str]:
        if isinstance(data, ClipFeatures):
            return list(data.paths)
        if isinstance(data, ClipSet):
            return list(data.paths)
        return [os.fspath(p) for p in data]

    # -- fitting ------------------------------------------------------------------
    def _templates(self) -> list[BaseDetector]:
        if not self.detectors:
            raise ParameterError("Ensemble needs detectors, e.g. Ensemble([GaussianDetector(), ClipStatsDetector()])")
        return list(self.detectors)

    def fit(
        self,
        data: _MemberData,
        labels: npt.ArrayLike | None = None,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        validation: _MemberData | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> Self:
        """Fit every member on the same clips, standardise, and calibrate ``threshold_`` on held-out clips.

        Parameters
        ----------
        data : ClipSet, sequence of paths, ClipFeatures, or list of ClipFeatures (one per member)
            Abnormal clips of a labelled ClipSet (or with ``labels`` 1) are
            left out with a warning: members learn from normal clips.
        labels : array-like of {0, 1} or {"normal", "abnormal"}, optional
        groups, sessions : sequence of str, optional
            Per-clip group / session keys, passed to every member (default:
            from a ClipSet or the paths, see :mod:`soundanomaly.datasets.keys`).
        validation : optional
            Not supported: an ensemble standardises and calibrates on its own
            hold-out (use :meth:`calibrate` afterwards to move the threshold).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Bad input, or a member cannot fit (the message names it).
        """
        if validation is not None:
            raise ParameterError(
                "Ensemble calibrates on its own hold-out (which no member trains on); fit it without validation= "
                "and move the threshold with calibrate(validation_clips)"
            )
        with self._using(options):
            return self._fit_members(data, labels, groups, sessions)

    def _fit_members(
        self,
        data: _MemberData,
        labels: npt.ArrayLike | None,
        groups: Sequence[str] | None,
        sessions: Sequence[str] | None,
    ) -> Self:
        templates = self._templates()
        parts = self._member_data(data, len(templates))
        n = len(parts[0])
        y = None if labels is None else check_labels(labels, n=n)
        first = parts[0]
        if isinstance(first, ClipSet) and y is None:
            y = np.array([r.label == "abnormal" for r in first], np.int8)
        g = group_keys(first, groups, required=False)
        ses = session_keys(first, sessions)
        if y is not None and y.any():
            keep = np.flatnonzero(y == 0).astype(np.int64)
            if not len(keep):
                raise ParameterError("Ensemble trains on normal sound only, and every clip given is abnormal")
            warnings.warn(
                f"Ensemble trains on normal sound only: using the {len(keep)} normal clip(s) and leaving out "
                f"{n - len(keep)} abnormal one(s)",
                UserWarning,
                stacklevel=2,
            )
            parts = [take_data(p, keep) for p in parts]
            g = None if g is None else g[keep]
            ses = None if ses is None else ses[keep]
            n = len(keep)

        calibrating = not isinstance(self.threshold, numbers.Real)
        train_idx, hold_idx = self._holdout_split(n, None, calibrating)
        train_parts = parts if not len(hold_idx) else [take_data(p, train_idx) for p in parts]
        train_groups = None if g is None else g[train_idx]
        train_sessions = None if ses is None else ses[train_idx].tolist()
        models: list[BaseDetector] = []
        centres, spreads = [], []
        for i, (template, part) in enumerate(zip(templates, train_parts, strict=True)):
            model = self._clone(template)
            name = type(template).__name__
            try:
                model.fit(part, groups=None if train_groups is None else train_groups.tolist(), sessions=train_sessions)
            except ParameterError as exc:
                raise ParameterError(f"Ensemble member detectors[{i}] ({name}) cannot fit: {exc}") from exc
            centre, spread = self._reference(model, i)
            models.append(model)
            centres.append(centre)
            spreads.append(spread)
        self.detectors_ = models
        self.centres_ = np.asarray(centres, dtype=np.float64)
        self.spreads_ = np.asarray(spreads, dtype=np.float64)
        self._collect_fit_records(models)

        self.train_scores_ = self._combined(train_parts, None if train_groups is None else train_groups.tolist())
        if len(hold_idx):
            hold_groups = None if g is None else g[hold_idx].tolist()
            held = self._combined([take_data(p, hold_idx) for p in parts], hold_groups)
            bad = np.flatnonzero(~np.isfinite(held))
            if len(bad):
                if self.on_error == "raise" or len(bad) == len(held):
                    raise InvalidScoreError([f"held-out clip #{int(i)}" for i in bad])
                warnings.warn(
                    f"Ensemble: leaving {len(bad)} held-out clip(s) without a valid score out of the calibration",
                    InvalidScoreWarning,
                    stacklevel=2,
                )
                held = held[np.isfinite(held)]
            self.holdout_scores_ = held
        else:
            self.holdout_scores_ = np.empty(0, dtype=np.float64)
        self.holdout_labels_ = None
        finite_train = np.isfinite(self.train_scores_)
        if not finite_train.all():  # clips a member skipped (its on_error="skip") have no score to keep
            if not finite_train.any():
                raise InvalidScoreError(["every training clip"])
            self.train_scores_ = self.train_scores_[finite_train]
        self._calibrate_threshold(calibrating, None)
        self.training_clips_ = clip_records(self._clip_paths(parts[0]))
        return self

    def _reference(self, model: BaseDetector, index: int) -> tuple[float, float]:
        """Centre and spread of a fitted member's held-out normal scores (its training scores if none)."""
        scores = np.asarray(getattr(model, "holdout_scores_", np.empty(0)), dtype=np.float64)
        labels = getattr(model, "holdout_labels_", None)
        if labels is not None and len(labels) == len(scores):
            scores = scores[np.asarray(labels) == 0]
        scores = scores[np.isfinite(scores)]
        name = f"detectors[{index}] ({type(model).__name__})"
        if len(scores) < MIN_HOLDOUT_CLIPS:
            warnings.warn(
                f"Ensemble: {name} has no held-out scores (numeric threshold, holdout=0 or too few clips); "
                "standardising it by its training scores, which are optimistic",
                CalibrationWarning,
                stacklevel=3,
            )
            scores = np.asarray(model.train_scores_, dtype=np.float64)
            scores = scores[np.isfinite(scores)]
        if len(scores) < 2:
            raise ParameterError(f"Ensemble member {name} has fewer than 2 finite scores to standardise by")
        if self.standardize == "robust":
            centre = float(np.median(scores))
            q25, q75 = np.percentile(scores, [25.0, 75.0])
            spread = float(q75 - q25) / _IQR_TO_STD
        else:
            centre, spread = float(np.mean(scores)), float(np.std(scores))
        floor = 1e-9 * (1.0 + abs(centre))
        if not spread > floor:
            spread = float(np.std(scores))
        if not spread > floor:
            raise ParameterError(
                f"Ensemble member {name}: its held-out normal scores do not vary ({centre:.6g}); cannot standardise"
            )
        return centre, spread

    # -- scoring ------------------------------------------------------------------
    def _member_scores(
        self, parts: list[ClipData], groups: Sequence[str] | None
    ) -> tuple[npt.NDArray[np.float64], tuple[str, ...]]:
        """Standardised member scores, shape (n_members, n_clips), and the per-clip status."""
        n = len(parts[0])
        out = np.empty((len(self.detectors_), n), dtype=np.float64)
        status = ["ok"] * n
        for i, (model, part) in enumerate(zip(self.detectors_, parts, strict=True)):
            scores = np.asarray(model.score(part, groups=groups, options=self.run_options), dtype=np.float64)
            if scores.shape != (n,):
                raise ParameterError(f"detectors_[{i}] returned {scores.shape} scores for {n} clips")
            out[i] = (scores - self.centres_[i]) / self.spreads_[i]
            for j, state in enumerate(getattr(model, "last_status_", ())[:n]):
                if state != "ok" and status[j] == "ok":
                    status[j] = state
        return out, tuple(status)

    def _combined(self, parts: list[ClipData], groups: Sequence[str] | None) -> npt.NDArray[np.float64]:
        per_member, status = self._member_scores(parts, groups)
        self.last_status_ = status
        self.last_source_rates_ = tuple(getattr(self.detectors_[0], "last_source_rates_", ()))
        with np.errstate(invalid="ignore"):
            combined = per_member.mean(axis=0) if self.combine == "mean" else per_member.max(axis=0)
        return np.asarray(combined, dtype=np.float64)  # NaN when a member has none: predict flags it

    def score(
        self,
        data: _MemberData,
        *,
        groups: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Combined standardised score of each clip: **higher = more anomalous** (about 0 for typical normal clips).

        Parameters
        ----------
        data : ClipSet, sequence of paths, ClipFeatures, or list of ClipFeatures (one per member)
        groups : sequence of str, optional
            Per-clip group keys, passed to the members (machine-id detectors use them).
        sessions : sequence of str, optional
            Accepted for the common API (members score without them).
        options : RunOptions or dict, optional
            Run options for this call (the members run with them).

        Returns
        -------
        np.ndarray [shape=(n_clips,)], float64
            NaN for a clip some member could not score (``on_error="skip"`` members).
        """
        self._check_fitted()
        with self._using(options):
            return self._combined(self._member_data(data, len(self.detectors_)), groups)

    def member_scores(self, data: _MemberData, *, groups: Sequence[str] | None = None) -> npt.NDArray[np.float64]:
        """Each member's standardised score per clip, shape ``(n_members, n_clips)`` (what ``score`` combines).

        Examples
        --------
        >>> import numpy as np
        >>> from soundanomaly.calibration import ThresholdCalibrator
        >>> from soundanomaly.detectors import ClipStatsDetector, GaussianDetector
        >>> from soundanomaly.features import ClipFeatures
        >>> rng = np.random.default_rng(0)
        >>> clips = ClipFeatures.from_arrays([rng.normal(size=(4, 6)).astype("float32") for _ in range(60)])
        >>> rule = ThresholdCalibrator(target_fpr=0.1)
        >>> members = [GaussianDetector(threshold=rule), ClipStatsDetector(threshold=rule)]
        >>> ensemble = Ensemble(members, threshold=rule).fit(clips)
        >>> ensemble.member_scores(clips).shape
        (2, 60)
        """
        self._check_fitted()
        per_member, self.last_status_ = self._member_scores(self._member_data(data, len(self.detectors_)), groups)
        return per_member

    # -- persistence --------------------------------------------------------------
    def _manifest_extra(self) -> dict[str, Any]:
        return {"members": self._member_entries()}

    def _own_state(self) -> dict[str, Any]:
        return {"centres": self.centres_, "spreads": self.spreads_}

    def _own_state_spec(self) -> dict[str, tuple[int | None, ...]]:
        m = len(self.detectors_)
        return {"centres": (m,), "spreads": (m,)}

    def _load_manifest_extra(self, extra: dict[str, Any]) -> None:
        if set(extra) != {"members"}:
            raise ModelFormatError(f"Ensemble manifest 'extra' must hold exactly 'members', got {sorted(extra)}")
        entries = extra["members"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_MEMBERS:
            raise ModelFormatError(f"Ensemble manifest 'members' must be a list of 1 to {MAX_MEMBERS} entries")
        self.detectors_ = self._load_members(entries, [f"Ensemble member {i}" for i in range(len(entries))])
        for i, model in enumerate(self.detectors_):
            if model.supervised:
                raise ModelFormatError(
                    f"Ensemble member {i}: {type(model).__name__} is supervised; an Ensemble holds unsupervised "
                    "detectors only"
                )
        if self.detectors is None:  # unfitted templates, so that the loaded ensemble can be refitted
            self.detectors = [type(m)(**m._signature_params()) for m in self.detectors_]

    def _set_own_state(self, state: dict[str, FloatArray]) -> None:
        spreads = state["spreads"].astype(np.float64)
        if not (spreads > 0).all():
            raise ModelFormatError("state array 'spreads' must be positive")
        self.centres_ = state["centres"].astype(np.float64)
        self.spreads_ = spreads
