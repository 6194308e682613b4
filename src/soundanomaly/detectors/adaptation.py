"""Adapting a fitted detector to a new session or domain from a few normal clips (no retraining).

:meth:`AdaptingBase.adapt` is the DCASE first-shot setting and a plant's "mark
this period as normal": the clips join the model through the detector's
``_adapt`` hook, and their out-of-fold scores calibrate the session's own
threshold (``session_thresholds_``, the rules of :mod:`soundanomaly.sessions`).
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
import warnings
from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from soundanomaly import sessions as _sessions
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets.clips import ClipSet
from soundanomaly.datasets.keys import session_keys
from soundanomaly.detectors.inputs import global_rng_kept, kept_mask
from soundanomaly.detectors.scoring import ScoringBase
from soundanomaly.exceptions import CalibrationWarning, ParameterError
from soundanomaly.features.base import ClipFeatures, take_clips
from soundanomaly.typing import ClipData

__all__ = ["DEFAULT_TARGET_FPR", "AdaptingBase"]

#: False-alarm rate the default threshold aims at on held-out normal clips.
DEFAULT_TARGET_FPR = 0.01


def _subclasses(cls: type[AdaptingBase]) -> list[type[AdaptingBase]]:
    out: list[type[AdaptingBase]] = []
    stack: list[type[AdaptingBase]] = [cls]
    while stack:
        for sub in stack.pop().__subclasses__():
            if not sub.__name__.startswith("_"):
                out.append(sub)
            stack.append(sub)
    return out


class AdaptingBase(ScoringBase):
    """Session adaptation for every detector (see :class:`~soundanomaly.detectors.base.BaseDetector`).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> isinstance(GaussianDetector(), AdaptingBase)
    True
    """

    threshold: float | ThresholdCalibrator | None
    random_state: int | None
    calibration_: Calibration | None
    session_thresholds_: dict[str, float]

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
        >>> from soundanomaly.calibration import ThresholdCalibrator
        >>> detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(source)
        >>> before = detector.predict(new_day).mean()
        >>> after = detector.adapt(new_day, sessions=["day2"] * 5).predict(new_day).mean()
        >>> float(before), float(after), sorted(detector.session_thresholds_)
        (1.0, 0.0, ['day2'])
        """
        self._check_fitted()
        name = type(self).__name__
        if type(self)._adapt is AdaptingBase._adapt:
            able = sorted(c.__name__ for c in _subclasses(AdaptingBase) if c._adapt is not AdaptingBase._adapt)
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
            keys = keys[kept_mask(paths, features)]
        features, _, _, kept_keys = self._drop_nonfinite(features, None, None, keys)
        keys = keys if kept_keys is None else kept_keys
        scores = np.empty(0)
        with global_rng_kept():
            if len(features) >= 2:
                scores = np.full(len(features), np.nan)
                everything = np.arange(len(features))
                for fold in _sessions.fold_indices(len(features), random_state=self.random_state):
                    rest = np.setdiff1d(everything, fold)
                    partial = self._adapt_copy()
                    partial._adapt(take_clips(features, rest), keys[rest])
                    scores[fold] = partial._score_features(take_clips(features, fold))
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
