"""What a detector does with its input before and after its own arithmetic, written once.

Checking what ``fit``/``score`` are given, taking clips by index, telling
which clips an extraction skipped, checking per-window scores, reducing them
to one score per clip by ``aggregate``, and keeping the caller's global random
state: the steps every detector shares (see :class:`~soundanomaly.detectors.base.BaseDetector`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from soundanomaly.datasets.clips import ClipSet
from soundanomaly.exceptions import ParameterError, SoundAnomalyError
from soundanomaly.features.base import ClipFeatures, take_clips
from soundanomaly.typing import ClipData, FloatArray

__all__ = [
    "check_data",
    "check_features_vary",
    "checked_window_scores",
    "clip_paths",
    "feature_scale",
    "global_rng_kept",
    "kept_mask",
    "parse_aggregate",
    "reduce_windows",
    "take_data",
]


def check_features_vary(x: npt.NDArray[np.float64]) -> None:
    """Refuse training features that barely vary (silent clips, a dead microphone): every clip would score the same.

    The one rule of "degenerate training data", for every detector that fits a spread.

    Examples
    --------
    >>> check_features_vary(np.zeros((5, 3)))
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: training features barely vary (mean variance 0): silent clips or a dead microphone? Every clip would score the same; train on recordings of the running machine
    """
    spread = float(np.mean(np.var(x, axis=0))) if len(x) > 1 else 0.0
    if not spread > 1e-10 * (float(np.mean(np.mean(x, axis=0) ** 2)) + 1.0):
        raise ParameterError(
            f"training features barely vary (mean variance {spread:.3g}): silent clips or a dead microphone? "
            "Every clip would score the same; train on recordings of the running machine"
        )


def feature_scale(x: npt.NDArray[np.float64], scaling: str) -> npt.NDArray[np.float64]:
    """Per-value divisor of centred training features: ones, or with ``scaling="std"`` their spread.

    The spread is floored at 1e-3 of the median spread, so a value that never varies in training is not
    divided by zero. The one scaling rule of every detector with a ``scaling`` parameter.

    Examples
    --------
    >>> np.round(feature_scale(np.array([[0.0, 1.0], [2.0, 1.0]]), "std"), 6).tolist()
    [1.0, 0.0005]
    >>> feature_scale(np.zeros((3, 2)), "none").tolist()
    [1.0, 1.0]
    """
    if scaling != "std":
        return np.ones(x.shape[1])
    spread = x.std(axis=0)
    return np.asarray(np.maximum(spread, 1e-3 * (float(np.median(spread)) + 1e-12)), dtype=np.float64)


def check_data(data: object) -> None:
    """Refuse anything but a ClipSet, a non-empty sequence of clip paths, or ClipFeatures (one clear error).

    Examples
    --------
    >>> check_data("a.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: data must be a sequence of paths, not a single path; wrap it in a list
    """
    if isinstance(data, (ClipFeatures, ClipSet)):
        return
    if isinstance(data, (str, bytes, os.PathLike)):
        raise ParameterError("data must be a sequence of paths, not a single path; wrap it in a list")
    if isinstance(data, np.ndarray) or (
        isinstance(data, Sequence) and any(isinstance(item, np.ndarray) for item in data)
    ):
        raise ParameterError(
            "data must be a ClipSet, a sequence of clip paths or ClipFeatures; for feature matrices "
            "use ClipFeatures.from_arrays(arrays)"
        )
    if not isinstance(data, Sequence):
        raise ParameterError(f"data must be a ClipSet, a sequence of paths or ClipFeatures, got {type(data).__name__}")
    if not data:
        raise ParameterError("data is empty: no clips")
    for item in data:
        if not isinstance(item, (str, os.PathLike)):
            raise ParameterError(f"data must hold clip paths (str or os.PathLike), got a {type(item).__name__}")


def clip_paths(data: ClipData) -> list[str]:
    """The clip paths of a ClipSet or a sequence of paths (checked by :func:`check_data`).

    Examples
    --------
    >>> from pathlib import Path
    >>> clip_paths([Path("a.wav")])
    ['a.wav']
    """
    check_data(data)
    paths = data.paths if isinstance(data, ClipSet) else [os.fspath(p) for p in data]  # type: ignore[arg-type]
    if not paths:
        raise ParameterError("data is empty: no clips")
    return paths


def take_data(data: ClipData, indices: npt.NDArray[np.int64]) -> ClipData:
    if isinstance(data, ClipFeatures):
        return take_clips(data, indices)
    if isinstance(data, ClipSet):
        return data.take(int(i) for i in indices)
    return [data[int(i)] for i in indices]


def kept_mask(paths: Sequence[str] | None, features: ClipFeatures) -> npt.NDArray[np.bool_]:
    """Which of ``paths`` are present in ``features`` (the others were skipped by extract)."""
    if paths is None:
        return np.ones(len(features), dtype=bool)
    skipped = list(getattr(features, "skipped", ()))
    if not skipped:
        return np.ones(len(paths), dtype=bool)
    pending: dict[str, int] = {}
    for path, _ in skipped:
        pending[path] = pending.get(path, 0) + 1
    mask = np.ones(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        if pending.get(path, 0) > 0:
            pending[path] -= 1
            mask[i] = False
    return mask


def checked_window_scores(
    score_windows: Callable[[FloatArray], npt.NDArray[np.float64]], windows: FloatArray
) -> npt.NDArray[np.float64]:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # non-finite scores are handled by the caller
        scores = np.asarray(score_windows(windows), dtype=np.float64)
    if scores.shape != (len(windows),):
        raise SoundAnomalyError(f"_score_windows returned shape {scores.shape}, expected ({len(windows)},)")
    return scores


def parse_aggregate(spec: object) -> tuple[str, float]:
    """``"mean"``, ``"max"``, ``"percentile:<q in [0, 100]>"`` or ``"topk:<k >= 1>"`` -> (kind, argument).

    Examples
    --------
    >>> parse_aggregate("percentile:90")
    ('percentile', 90.0)
    """
    if isinstance(spec, str):
        if spec in ("mean", "max"):
            return spec, 0.0
        kind, _, arg = spec.partition(":")
        try:
            value = float(arg)
        except ValueError:
            value = math.nan
        if kind == "percentile" and 0.0 <= value <= 100.0:
            return kind, value
        if kind == "topk" and value >= 1 and value == int(value):
            return kind, value
    raise ParameterError(
        f"aggregate must be 'mean', 'max', 'percentile:<q in 0..100>' or 'topk:<k >= 1>', got {spec!r}"
    )


def reduce_windows(
    per_window: npt.ArrayLike, offsets: npt.NDArray[np.int64], aggregate: str = "mean"
) -> npt.NDArray[np.float64]:
    """Per-clip score from per-window scores, by ``aggregate`` (see :func:`parse_aggregate`); clip ``i`` owns ``per_window[offsets[i]:offsets[i+1]]``.

    NaN in a clip's windows gives that clip NaN (never a normal-looking score).

    Examples
    --------
    >>> offsets = np.array([0, 3, 4])
    >>> reduce_windows([1.0, 5.0, 3.0, 2.0], offsets, "max").tolist()
    [5.0, 2.0]
    >>> reduce_windows([1.0, 5.0, 3.0, 2.0], offsets, "topk:2").tolist()
    [4.0, 2.0]
    """
    values = np.asarray(per_window, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) < 2:
        return np.empty(0, dtype=np.float64)
    kind, arg = parse_aggregate(aggregate)
    lengths = np.diff(offsets)
    if kind == "mean":
        return np.asarray(np.add.reduceat(values, offsets[:-1]) / lengths, dtype=np.float64)
    if kind == "max":
        return np.asarray(np.maximum.reduceat(values, offsets[:-1]), dtype=np.float64)
    out = np.empty(len(lengths), dtype=np.float64)
    for i in range(len(lengths)):
        clip = values[offsets[i] : offsets[i + 1]]
        if kind == "percentile":
            out[i] = np.nan if np.isnan(clip).any() else np.percentile(clip, arg)
        else:
            k = min(int(arg), len(clip))
            out[i] = np.nan if np.isnan(clip).any() else np.sort(clip)[-k:].mean()
    return out


@contextlib.contextmanager
def global_rng_kept() -> Iterator[None]:
    """Put the caller's global NumPy and ``random`` states back (backends may call keras.utils.set_random_seed)."""
    numpy_state = np.random.get_state()  # noqa: NPY002 - the caller's legacy global state is what we protect
    python_state = random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
