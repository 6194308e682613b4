"""Input validation at the door (scikit-learn's ``check_array`` habit): one clear error, never a silent cast."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["check_finite_float", "check_labels", "check_positive_int", "check_scores"]

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
