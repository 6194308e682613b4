"""Run options: how a fit or scoring run goes (chunking, workers, cache, progress bar, unreadable clips).

They are not model parameters: they never change what a model learns, they
are never saved with it, and a saved model's file cannot set them. Give them
per call (``fit(..., options=RunOptions(progress=True))``, or a dict), or set
them on a detector for its later calls with
:meth:`~soundanomaly.detectors.base.BaseDetector.set_run_options`. Passing
them to a constructor still works for one release, with a ``FutureWarning``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from soundanomaly._validation import Constraints, Instance, Interval, Options, validate_params
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import PathLike

__all__ = ["RUN_OPTION_NAMES", "RunOptions", "RunOptionsMixin"]

_CONSTRAINTS: Constraints = {
    "chunk_size": [Interval(int, 1, None)],
    "n_jobs": [Interval(int, 1, None), Options(-1)],
    "cache_dir": [Instance(str, os.PathLike, text="a path"), None],
    "progress": [Instance(bool, int, text="a bool")],
    "on_error": [Options("raise", "skip")],
}


@dataclass(frozen=True)
class RunOptions:
    """How a run goes; none of it is model state.

    Attributes
    ----------
    chunk_size : int >= 1, default 64
        Clips per feature-extraction chunk when scoring paths: memory stays flat in the number of clips.
    n_jobs : int >= 1 or -1, default 1
        Worker processes for feature extraction (``-1``: every core).
    cache_dir : str, os.PathLike or None, default None
        On-disk feature cache (see ``BaseFeatureExtractor.extract``).
    progress : bool, default False
        One progress bar on stderr for the whole fit or scoring run.
    on_error : {"raise", "skip"}, default "raise"
        A clip that cannot be read, or that gets a NaN/infinite score: ``"raise"``
        stops with an error naming it; ``"skip"`` goes on: ``fit`` leaves it out,
        ``score`` gives it a NaN score and ``predict`` labels it 1 (fail closed).

    Examples
    --------
    >>> RunOptions(progress=True).replace(n_jobs=2)
    RunOptions(chunk_size=64, n_jobs=2, cache_dir=None, progress=True, on_error='raise')
    >>> RunOptions(on_error="ignore")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: RunOptions: on_error must be 'raise' or 'skip', got 'ignore'
    """

    chunk_size: int = 64
    n_jobs: int = 1
    cache_dir: PathLike | None = None
    progress: bool = False
    on_error: str = "raise"

    def __post_init__(self) -> None:
        validate_params(dataclasses.asdict(self), _CONSTRAINTS, owner="RunOptions")

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (validated)."""
        unknown = sorted(set(changes) - set(RUN_OPTION_NAMES))
        if unknown:
            raise ParameterError(f"unknown run option(s) {unknown}; run options: {list(RUN_OPTION_NAMES)}")
        return dataclasses.replace(self, **changes)


#: The run options' names (what constructors took before 0.3).
RUN_OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunOptions))
_DEFAULTS = RunOptions()


def _option(name: str) -> property:
    def get(self: RunOptionsMixin) -> Any:
        return getattr(self._run_options(), name)

    def set_(self: RunOptionsMixin, value: Any) -> None:
        self.__dict__["_run"] = self._run_options().replace(**{name: value})

    return property(get, set_, doc=f"Run option ``{name}`` (see :class:`RunOptions`); not a model parameter.")


class RunOptionsMixin:
    """The run options of a detector: attributes for reading, ``set_run_options`` and per-call ``options=``."""

    chunk_size = _option("chunk_size")
    n_jobs = _option("n_jobs")
    cache_dir = _option("cache_dir")
    progress = _option("progress")
    on_error = _option("on_error")

    def _run_options(self) -> RunOptions:
        run = self.__dict__.get("_run")
        return run if isinstance(run, RunOptions) else _DEFAULTS

    @property
    def run_options(self) -> RunOptions:
        """The run options in effect (see :class:`RunOptions`)."""
        return self._run_options()

    def set_run_options(self, options: RunOptions | Mapping[str, Any] | None = None, **changes: Any) -> Any:
        """Set run options for this detector's later calls (never saved with the model); returns ``self``.

        Examples
        --------
        >>> from soundanomaly.detectors import GaussianDetector
        >>> GaussianDetector().set_run_options(progress=True, n_jobs=2).run_options.n_jobs
        2
        """
        base = self._run_options() if options is None else as_run_options(options, self._run_options())
        self.__dict__["_run"] = base.replace(**changes) if changes else base
        return self

    def _take_constructor_options(self, given: Mapping[str, Any], owner: str) -> None:
        """Old-style constructor run options: kept for one release, with a FutureWarning when not the default."""
        unknown = sorted(set(given) - set(RUN_OPTION_NAMES))
        if unknown:
            raise TypeError(f"{owner}.__init__() got unexpected keyword argument(s) {unknown}")
        run = self._run_options().replace(**given)  # invalid values raise ParameterError first
        changed = {k: v for k, v in given.items() if not _same(v, getattr(_DEFAULTS, k))}
        if changed:
            warnings.warn(
                f"{owner}: {sorted(changed)} are run options, not model parameters: pass them to fit()/score() as "
                f"options=RunOptions(...), or call set_run_options(); the constructor keywords go in a later release",
                FutureWarning,
                stacklevel=4,
            )
        self.__dict__["_run"] = run

    @contextlib.contextmanager
    def _using(self, options: RunOptions | Mapping[str, Any] | None) -> Iterator[RunOptions]:
        """Run with ``options`` (a RunOptions, or changes to the current ones) for one call."""
        before = self.__dict__.get("_run")
        current = self._run_options() if options is None else as_run_options(options, self._run_options())
        self.__dict__["_run"] = current
        try:
            yield current
        finally:
            if before is None:
                self.__dict__.pop("_run", None)
            else:
                self.__dict__["_run"] = before


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # odd objects are not the default
        return False


def as_run_options(options: RunOptions | Mapping[str, Any], base: RunOptions = _DEFAULTS) -> RunOptions:
    """A :class:`RunOptions` from itself or from a dict of changes to ``base``.

    Examples
    --------
    >>> as_run_options({"progress": True}).progress
    True
    """
    if isinstance(options, RunOptions):
        return options
    if isinstance(options, Mapping):
        return base.replace(**dict(options))
    raise ParameterError(f"options must be a RunOptions or a dict of run options, got {options!r}")
