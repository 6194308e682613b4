"""Runtime backends, looked up by name and imported only when used.

A registry maps a backend name to ``"module:attribute"`` plus the extra that
provides its dependencies. Third parties add backends with :func:`register`
or the ``soundanomaly.backends`` entry-point group.

Examples
--------
>>> available()
['local', 'sagemaker']
>>> get("nope")
Traceback (most recent call last):
...
soundanomaly.exceptions.ParameterError: unknown backend 'nope'; known backends: local, sagemaker
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from soundanomaly import registry
from soundanomaly.exceptions import MissingDependencyError, ParameterError

__all__ = ["BackendSpec", "available", "get", "register"]


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what to install for it.

    Examples
    --------
    >>> BackendSpec("mypkg.backend:Backend", extra="mypkg", package="mypkg").extra
    'mypkg'

    """

    target: str  # "package.module:attribute"
    extra: str
    package: str  # the import that fails when the extra is missing


#: The backends' part of the one registry table (:data:`soundanomaly.registry.BACKENDS`).
_REGISTRY: dict[str, Any] = registry.BACKENDS
_ENTRY_POINTS_LOADED = False


def register(name: str, target: str, *, extra: str, package: str, clobber: bool = False) -> None:
    """Register a backend under ``name`` (``clobber=True`` to replace one).

    Examples
    --------
    >>> register("mine", "mypkg.backend:Backend", extra="mine", package="mypkg")
    >>> get("mine")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.MissingDependencyError: backend 'mine' needs the optional package 'mypkg'; install it with: pip install 'soundanomaly[mine]'
    >>> _ = _REGISTRY.pop("mine")

    """
    if name in _REGISTRY and not clobber:
        raise ParameterError(f"backend {name!r} is already registered; pass clobber=True to replace it")
    if ":" not in target:
        raise ParameterError(f"target must look like 'package.module:Class', got {target!r}")
    _REGISTRY[name] = registry.Entry(target, package=package, extra=extra)


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="soundanomaly.backends"):
        _REGISTRY.setdefault(ep.name, registry.Entry(ep.value, package=ep.module.split(".")[0], extra=ep.name))


def available() -> list[str]:
    """Names of the registered backends.

    Examples
    --------
    >>> "local" in available()
    True

    """
    _load_entry_points()
    return sorted(_REGISTRY)


def get(name: str) -> Any:
    """The backend class registered as ``name``, imported now.

    Raises
    ------
    ParameterError
        For an unknown name (the message lists the known ones).
    MissingDependencyError
        When the backend's packages are not installed (the message names the extra).

    Examples
    --------
    >>> get("local").__name__  # doctest: +SKIP
    'LocalBackend'

    """
    _load_entry_points()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ParameterError(f"unknown backend {name!r}; known backends: {', '.join(sorted(_REGISTRY))}")
    module_name, attribute = spec.target.split(":")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off
    try:
        importlib.import_module(spec.package)
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(spec.package, spec.extra, f"backend {name!r}") from exc
    return getattr(module, attribute)
