"""Input validation at the door (scikit-learn's ``check_array`` habit): one clear error, never a silent cast."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = [
    "Constraint",
    "Constraints",
    "Instance",
    "Interval",
    "Options",
    "Satisfies",
    "check_finite_float",
    "check_labels",
    "check_positive_int",
    "check_scores",
    "int_tuple",
    "validate_params",
]

_LABEL_NAMES = {"normal": 0, "abnormal": 1, "anomaly": 1}


def check_labels(labels: Any, *, name: str = "labels", n: int | None = None) -> npt.NDArray[np.int8]:
    """Labels as int8 0/1 (**1 = anomaly**), from bools, integers 0/1 or "normal"/"abnormal"/"anomaly".

    Anything else (256, 1.5, -1, NaN, "bad", a 2-D array) raises :class:`ParameterError`.

    Examples
    --------
    >>> check_labels([0, 1, True]).tolist(), check_labels(["normal", "abnormal"]).tolist()
    ([0, 1, 1], [0, 1])
    >>> check_labels([0, 256, 1])
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: labels must be 0/1 (1 = anomaly) or 'normal'/'abnormal'; got 256 at index 1

    """
    try:
        array = np.asarray(labels)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name} must be a 1-D sequence of 0/1 labels ({exc})") from exc
    if array.ndim != 1:
        raise ParameterError(f"{name} must be 1-D, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ParameterError(f"got {len(array)} {name} for {n} clips")
    if array.dtype == bool:
        return array.astype(np.int8)
    if array.dtype.kind in "US" or array.dtype == object:
        out = np.empty(len(array), dtype=np.int8)
        for i, value in enumerate(array.tolist()):
            if isinstance(value, str) and value.lower() in _LABEL_NAMES:
                out[i] = _LABEL_NAMES[value.lower()]
            elif isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
                out[i] = int(value)
            else:
                raise ParameterError(
                    f"{name} must be 0/1 (1 = anomaly) or 'normal'/'abnormal'; got {value!r} at index {i}"
                )
        return out
    if array.dtype.kind in "iu":
        bad = np.flatnonzero((array != 0) & (array != 1))
    elif array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isin(array, (0.0, 1.0)))
    else:
        raise ParameterError(f"{name} must be 0/1 (1 = anomaly) or 'normal'/'abnormal', got dtype {array.dtype}")
    if len(bad):
        raise ParameterError(
            f"{name} must be 0/1 (1 = anomaly) or 'normal'/'abnormal'; got {array[bad[0]].item()!r} at index {int(bad[0])}"
        )
    return array.astype(np.int8)


def check_scores(scores: Any, *, name: str = "scores", n: int | None = None) -> npt.NDArray[np.float64]:
    """Scores as a finite 1-D float64 array; NaN/inf (or non-numbers) raise :class:`ParameterError`.

    Examples
    --------
    >>> check_scores([0.5, float("nan")])
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: scores contain 1 NaN or infinite value(s) (first at index 1)

    """
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name} must be a 1-D sequence of numbers ({exc})") from exc
    if array.ndim != 1 or len(array) == 0:
        raise ParameterError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ParameterError(f"got {len(array)} {name} for {n} clips")
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise ParameterError(f"{name} contain {len(bad)} NaN or infinite value(s) (first at index {int(bad[0])})")
    return array


def check_finite_float(value: Any, *, name: str) -> float:
    """A finite real number (not a bool, not a string); else :class:`ParameterError` naming ``name``.

    Examples
    --------
    >>> check_finite_float("high", name="threshold")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: threshold must be a finite number, got 'high'

    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_positive_int(value: Any, *, name: str) -> int:
    """An int >= 1 (not a bool, not 2.5); else :class:`ParameterError` naming ``name``.

    Examples
    --------
    >>> check_positive_int(2.5, name="chunk_size")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: chunk_size must be a positive int, got 2.5

    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ParameterError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# -- declared parameter constraints (scikit-learn's ``_parameter_constraints`` habit) ----------------------------


class Constraint:
    """One acceptable kind of value for a parameter; a parameter passes if any of its constraints accepts it."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __str__(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class Interval(Constraint):
    """An int (``kind=int``) or a finite real number (``kind=float``; ints too) in a range; bools never.

    Examples
    --------
    >>> str(Interval(int, 1, None)), Interval(int, 1, None).accepts(2.0)
    ('a positive int', False)
    >>> str(Interval(float, 0, 1, closed="left")), Interval(float, 0, 1, closed="left").accepts(1.0)
    ('a number in [0, 1)', False)
    """

    def __init__(
        self,
        kind: type,
        low: float | None,
        high: float | None,
        *,
        closed: str = "both",
    ) -> None:
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (not left and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (not right and value == self.high)))

    def __str__(self) -> str:
        noun = "an int" if self.kind is int else "a number"
        if self.low is None and self.high is None:
            return noun if self.kind is int else "a finite number"
        if self.high is None:
            if self.kind is int and self.low == 1 and self.closed in ("both", "left"):
                return "a positive int"
            return f"{noun} {'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.low is None:
            return f"{noun} {'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        opening = "[" if self.closed in ("both", "left") else "("
        closing = "]" if self.closed in ("both", "right") else ")"
        return f"{noun} in {opening}{self.low:g}, {self.high:g}{closing}"


class Options(Constraint):
    """One of a few given values (strings, None...).

    Examples
    --------
    >>> str(Options("mean", "max")), Options("mean", "max").accepts("sum")
    ("'mean' or 'max'", False)
    """

    def __init__(self, *values: Any) -> None:
        self.values = values

    def accepts(self, value: Any) -> bool:
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)

    def __str__(self) -> str:
        return " or ".join(repr(v) for v in self.values)


class Instance(Constraint):
    """An instance of one of ``types`` (described by ``text``).

    Examples
    --------
    >>> Instance(dict, text="a dict").accepts({})
    True
    """

    def __init__(self, *types: type, text: str) -> None:
        self.types, self.text = types, text

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.text


class Satisfies(Constraint):
    """Any value ``test`` accepts (without raising), described by ``text``.

    Examples
    --------
    >>> Satisfies(callable, "a function").accepts(len)
    True
    """

    def __init__(self, test: Any, text: str) -> None:
        self.test, self.text = test, text

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except Exception:  # a test that cannot cope with the value refuses it
            return False

    def __str__(self) -> str:
        return self.text


def int_tuple(value: Any) -> bool:
    """A non-empty sequence of positive ints (layer sizes), not a string.

    Examples
    --------
    >>> int_tuple((64, 8)), int_tuple([]), int_tuple(5)
    (True, False, False)
    """
    from collections.abc import Sequence

    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(Interval(int, 1, None).accepts(v) for v in value)
    )


#: Constraints of a parameter: any one accepting the value lets it pass; ``None`` in the list accepts None.
Constraints = dict[str, list[Constraint | None]]


def validate_params(params: dict[str, Any], constraints: Constraints, *, owner: str = "") -> None:
    """Check every constrained parameter; the first that no constraint accepts raises one :class:`ParameterError`.

    Examples
    --------
    >>> validate_params({"k": 0}, {"k": [Interval(int, 1, None)]}, owner="Knn")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: Knn: k must be a positive int, got 0
    >>> validate_params({"k": None}, {"k": [Interval(int, 1, None), None]})
    """
    for name, options in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(value is None if c is None else c.accepts(value) for c in options):
            continue
        wanted = " or ".join("None" if c is None else str(c) for c in options)
        prefix = f"{owner}: " if owner else ""
        raise ParameterError(f"{prefix}{name} must be {wanted}, got {value!r}")
