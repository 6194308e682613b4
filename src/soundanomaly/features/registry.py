"""Rebuild a feature extractor from the parameters a saved model records, through the one registry table.

A saved model stores its extractor as ``params()`` (with a ``"name"``).
:func:`features_from_params` looks the name up in
:data:`soundanomaly.registry.EXTRACTORS` (built-ins), then in the classes
registered with :func:`register_extractor`, then among the imported
subclasses of :class:`~soundanomaly.features.base.BaseFeatureExtractor`.
Nothing is ever imported because a model file names it, and the parameters
are checked by the extractor's own constructor (which bounds them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from soundanomaly import registry
from soundanomaly.exceptions import ModelFormatError, ParameterError, SoundAnomalyError
from soundanomaly.features.base import BaseFeatureExtractor
from soundanomaly.typing import FloatArray

__all__ = ["ProtocolExtractor", "as_batch_extractor", "extractor_params", "features_from_params", "register_extractor"]


def register_extractor(cls: type[Any], *, name: str | None = None) -> type[Any]:
    """Make a feature extractor class loadable from saved models; usable as a decorator.

    A saved model stores its extractor as ``params()`` (which should hold a
    ``"name"``; the class name is used otherwise). Loading rebuilds it as
    ``cls(**params_without_name)``. Built-in extractors and every imported
    subclass of :class:`~soundanomaly.features.base.BaseFeatureExtractor` are
    found automatically; an extractor written only to the
    :class:`~soundanomaly.typing.FeatureExtractor` protocol must be registered.

    Parameters
    ----------
    cls : class
        Has ``transform(signal, sr)`` and ``params()``; its constructor takes the params as keywords.
    name : str, optional
        Registry key; default ``cls.__name__``.

    Examples
    --------
    >>> import numpy as np
    >>> @register_extractor
    ... class Energy:
    ...     def __init__(self, *, frame=400):
    ...         self.frame = frame
    ...     def transform(self, signal, sr):
    ...         n = len(signal) // self.frame * self.frame
    ...         return (signal[:n].reshape(-1, self.frame) ** 2).mean(axis=1, keepdims=True).astype(np.float32)
    ...     def params(self):
    ...         return {"name": "Energy", "frame": self.frame}
    >>> features_from_params({"name": "Energy", "frame": 800}).frame
    800

    """
    if not isinstance(cls, type) or not callable(getattr(cls, "transform", None)):
        raise ParameterError(f"register_extractor needs a class with transform() and params(), got {cls!r}")
    registry.register("extractor", name or cls.__name__, cls, clobber=True)
    return cls


def _find(name: str) -> type[Any] | None:
    try:
        found: type[Any] = registry.get("extractor", name)
        return found
    except ParameterError:
        pass
    stack: list[type[Any]] = [BaseFeatureExtractor]
    while stack:  # already-imported subclasses register themselves by class name
        for sub in stack.pop().__subclasses__():
            if sub.__name__ == name:
                return register_extractor(sub)
            stack.append(sub)
    return None


def features_from_params(params: dict[str, Any]) -> Any:
    """Rebuild a feature extractor from its ``params()`` dict (see :func:`register_extractor`).

    Raises
    ------
    ModelFormatError
        Not a dict, an unknown extractor name, or parameters its class refuses
        (out of bounds, wrong type).

    Examples
    --------
    >>> features_from_params({"name": "LogMelFrames", "n_mels": 32}).n_mels
    32
    >>> features_from_params({"name": "LogMelFrames", "n_fft": 2**27})
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ModelFormatError: feature extractor 'LogMelFrames' refuses the saved parameters {'n_fft': 134217728}: n_fft must be an int in [16, 65536], got 134217728
    """
    if not isinstance(params, dict):
        raise ModelFormatError(f"feature parameters must be a JSON object, got {type(params).__name__}")
    params = dict(params)
    name = params.pop("name", None)
    cls = _find(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFormatError(
            f"unknown feature extractor {name!r}; known: {registry.names('extractor')} (register a custom one "
            "with soundanomaly.register_extractor)"
        )
    if name == "SpectrogramImages" and isinstance(params.get("size"), list):
        params["size"] = tuple(params["size"])
    try:
        return cls(**params)
    except (TypeError, ValueError, KeyError, AttributeError, SoundAnomalyError) as exc:
        raise ModelFormatError(f"feature extractor {name!r} refuses the saved parameters {params}: {exc}") from exc


def extractor_params(extractor: Any) -> dict[str, Any]:
    """``extractor.params()`` with its ``"name"`` (the class name when it gives none): what a model saves.

    Examples
    --------
    >>> from soundanomaly.features import LogMelFrames
    >>> extractor_params(LogMelFrames())["name"]
    'LogMelFrames'
    """
    params = dict(extractor.params())
    params.setdefault("name", type(extractor).__name__)
    return params


class ProtocolExtractor(BaseFeatureExtractor):
    """Gives an extractor written only to the FeatureExtractor protocol the batch machinery (files, cache, skip).

    Examples
    --------
    >>> import numpy as np
    >>> class Peak:
    ...     def transform(self, signal, sr):
    ...         return np.abs(signal).max(keepdims=True)[None, :].astype("float32")
    ...     def params(self):
    ...         return {"name": "Peak"}
    >>> ProtocolExtractor(Peak()).transform(np.ones(4, "float32"), 16000).shape
    (1, 1)
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        rate = getattr(inner, "sr", None)
        if rate is not None:
            self.sr = rate

    def transform(self, signal: FloatArray, sr: int) -> FloatArray:
        return np.asarray(self.inner.transform(signal, sr), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return extractor_params(self.inner)


def as_batch_extractor(extractor: Any) -> BaseFeatureExtractor:
    """The extractor itself if it is a :class:`BaseFeatureExtractor`, else wrapped in :class:`ProtocolExtractor`.

    Examples
    --------
    >>> from soundanomaly.features import LogMelFrames
    >>> extractor = LogMelFrames()
    >>> as_batch_extractor(extractor) is extractor
    True
    """
    return extractor if isinstance(extractor, BaseFeatureExtractor) else ProtocolExtractor(extractor)
