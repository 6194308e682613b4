"""Parameters declared once per class (scikit-learn's ``BaseEstimator`` habits, no I/O).

A class lists its constructor parameters' constraints in
``_parameter_constraints`` (merged along the class hierarchy) and writes an
``__init__`` that only stores its own keyword-only arguments, passing the rest
on with ``**base``: the full signature (its own parameters, then its
parent's) is derived once, so ``get_params``, ``set_params``, ``repr`` and
``sklearn.base.clone`` see every parameter, and the one validator
(:func:`soundanomaly._validation.validate_params`) runs once the outermost
constructor has stored everything.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, Self

from soundanomaly._validation import Constraints, validate_params
from soundanomaly.detectors.options import RUN_OPTION_NAMES
from soundanomaly.exceptions import ParameterError

__all__ = ["Parameterized"]


def _merged_signature(cls: type, init: Callable[..., None]) -> inspect.Signature:
    """``init``'s keyword parameters, then those of the parent's ``__init__`` that it passes on with ``**base``.

    Other ``**kwargs`` (the deprecated ``**run_options``) are not parameters and stay out of the signature.
    """
    own = inspect.signature(init)
    params = [p for p in own.parameters.values() if p.kind != p.VAR_KEYWORD]
    if any(p.kind == p.VAR_KEYWORD and p.name == "base" for p in own.parameters.values()):
        seen = {p.name for p in params}
        # the next constructor up the MRO (a mixin without one, e.g. MahalanobisHooks, is skipped)
        parent_cls = next(k for k in cls.__mro__[1:] if "__init__" in k.__dict__)
        parent = inspect.signature(getattr(parent_cls, "__init__"))  # noqa: B009
        params += [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in parent.parameters.values()
            if p.name not in seen and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
    return own.replace(parameters=params)


class Parameterized:
    """Mixin: constructor parameters from the signature, declared constraints checked in one place."""

    #: ``{parameter: [constraint, ...]}``; a value passes if one accepts it (``None`` in the list accepts None).
    _parameter_constraints: ClassVar[Constraints] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_validating", False):
            return
        signature = _merged_signature(cls, init)

        @functools.wraps(init)
        def validating_init(self: Parameterized, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            if type(self).__init__ is validating_init:  # the outermost constructor: every parameter is stored now
                self._validate_params()

        validating_init.__signature__ = signature  # type: ignore[attr-defined]
        validating_init._validating = True  # type: ignore[attr-defined]
        setattr(cls, "__init__", validating_init)  # noqa: B010 - replacing the constructor is the point

    @classmethod
    def _constraints(cls) -> Constraints:
        merged: Constraints = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("_parameter_constraints", {}))
        return merged

    def _validate_params(self) -> None:
        """Check every parameter against the declared constraints (one :class:`ParameterError` naming it)."""
        validate_params(self._signature_params(), self._constraints(), owner=type(self).__name__)

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
        return {name: getattr(self, name) for name in self._param_names() if hasattr(self, name)}

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
        >>> GaussianDetector().set_params(holdout=2.5)
        Traceback (most recent call last):
        ...
        soundanomaly.exceptions.ParameterError: GaussianDetector: holdout must be a number in [0, 1), got 2.5
        """
        if not params:
            return self
        run = {k: params.pop(k) for k in list(params) if k in RUN_OPTION_NAMES and k not in self._param_names()}
        if run:
            warnings.warn(
                f"{sorted(run)} are run options, not parameters: use set_run_options() (set_params stops taking "
                "them in a later release)",
                FutureWarning,
                stacklevel=2,
            )
            self.set_run_options(**run)  # type: ignore[attr-defined]
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
