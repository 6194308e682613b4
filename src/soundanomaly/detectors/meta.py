"""The small base of detectors made of detectors (:class:`PerGroup`, :class:`Ensemble`).

A meta-detector holds unfitted templates among its parameters, fits clones of
them (scikit-learn's meta-estimator habit: it is not a subclass of the leaf it
wraps and has its own few parameters), hands them its run options, and saves
and loads them through the same functions a top-level detector is saved with
(:mod:`soundanomaly.detectors.persistence`). A subclass writes ``fit``,
``score`` and which fitted members it has (:meth:`MetaDetector._member_models`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.options import RUN_OPTION_NAMES
from soundanomaly.detectors.persistence import load_member, member_entry, member_state, members_spec, restore_members
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.typing import FloatArray

__all__ = ["MetaDetector"]


class MetaDetector(BaseDetector):
    """Base of the detectors made of fitted detectors; see :mod:`soundanomaly.detectors.meta`.

    Parameters
    ----------
    threshold : float, ThresholdCalibrator or None, default None
        The meta-detector's own threshold rule (see the subclass).
    **run_options
        Deprecated constructor run options (see :class:`~soundanomaly.detectors.options.RunOptions`);
        the members run with the meta-detector's run options.

    Examples
    --------
    >>> from soundanomaly.detectors import PerGroup, GaussianDetector
    >>> isinstance(PerGroup(GaussianDetector()), MetaDetector)
    True
    """

    #: Base parameters a meta-detector does not have: they belong to its members.
    _member_params: ClassVar[frozenset[str]] = frozenset({"features", "channel", "aggregate"})
    _member_calibrations: list[Any]

    def __init__(self, *, threshold: float | ThresholdCalibrator | None = None, **run_options: Any) -> None:
        self.threshold = threshold
        if run_options:
            self._take_constructor_options(run_options, type(self).__name__)

    # -- what subclasses write ----------------------------------------------------
    def _member_models(self) -> list[tuple[str, str, BaseDetector]]:  # pragma: no cover - abstract
        """The fitted members as ``(label for errors, state prefix, model)``."""
        raise NotImplementedError

    def _own_state(self) -> dict[str, Any]:
        """The meta-detector's own state arrays (besides its members')."""
        return {}

    def _own_state_spec(self) -> dict[str, tuple[int | None, ...]]:
        return {}

    def _set_own_state(self, state: dict[str, FloatArray]) -> None:
        return None

    # -- shared -------------------------------------------------------------------
    @property
    def features(self) -> Any:
        """The feature extractor of the members (the first one's)."""
        given = self.__dict__.get("_features_given")
        if given is not None:
            return given
        fitted = self.__dict__.get("_members_features")
        if fitted is not None:
            return fitted
        return self._template_features()

    @features.setter
    def features(self, value: Any) -> None:
        self.__dict__["_features_given"] = value

    def _template_features(self) -> Any:
        return self._default_features()

    def _signature_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names() if name in self.__dict__}

    def _clone(self, template: BaseDetector, **overrides: Any) -> BaseDetector:
        """An unfitted copy of ``template`` (parameters, with ``overrides``), running with this run's options."""
        params = {**template._signature_params(), **{k: v for k, v in overrides.items() if v is not None}}
        model = type(template)(**params)
        model.set_run_options(self.run_options)
        return model

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        raise ParameterError(f"{type(self).__name__} scores whole clips with its members; call score()")

    def _collect_fit_records(self, models: Sequence[BaseDetector]) -> None:
        self.__dict__["_members_features"] = models[0].features
        self.n_features_in_ = models[0].n_features_in_
        self.fit_skipped_ = tuple(s for m in models for s in getattr(m, "fit_skipped_", ()))

    @classmethod
    def _saved_params(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Models saved before 0.3 recorded base parameters the meta-detector ignored: they are dropped."""
        legacy = any(k in RUN_OPTION_NAMES for k in saved)
        drop = set(RUN_OPTION_NAMES) | (cls._member_params if legacy else set())
        return {k: v for k, v in saved.items() if k not in drop}

    # -- persistence: the members through the same functions as a top-level detector ---------
    def _member_entries(self) -> list[dict[str, Any]]:
        return [member_entry(model) for _, _, model in self._member_models()]

    def _load_members(
        self, entries: Sequence[Any], labels: Sequence[str], keys: frozenset[str] = frozenset()
    ) -> list[BaseDetector]:
        models = [load_member(entry, label, type(self), keys) for entry, label in zip(entries, labels, strict=True)]
        self._member_calibrations = [entry["calibration"] for entry in entries]
        self.__dict__["_members_features"] = models[0].features
        return models

    def _get_state(self) -> dict[str, FloatArray]:
        state = dict(self._own_state())
        for _, prefix, model in self._member_models():
            state.update(member_state(model, prefix))
        return state

    def _state_spec(self) -> dict[str, tuple[int | None, ...]] | None:
        members = members_spec([(prefix, model) for _, prefix, model in self._member_models()])
        return None if members is None else {**self._own_state_spec(), **members}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        own = self._own_state_spec()
        for key, shape in own.items():
            got = state[key].shape if key in state else None
            if (
                got is None
                or len(got) != len(shape)
                or any(w is not None and g != w for g, w in zip(got, shape, strict=True))
            ):
                raise ModelFormatError(f"state array {key!r} missing or not of shape {shape}")
        members = [
            (label, prefix, model, self._member_calibrations[i])
            for i, (label, prefix, model) in enumerate(self._member_models())
        ]
        restore_members(state, members, own=tuple(own))
        self._set_own_state({k: state[k] for k in own})
