"""One table of every detector, feature extractor and backend, imported only when used (fsspec-style).

Each entry maps a name to ``"module:attribute"``, plus the optional package it
needs and the extra that installs it. The CLI's ``--detector`` choices, the
demo, saved-model loading and the contract tests all read this table; adding a
detector is its own file plus **one line** in :data:`DETECTORS`. Nothing named
by a model file is ever imported unless it is in this table (or registered by
the caller's own code).

Examples
--------
>>> "GaussianDetector" in names("detector"), cli_name("GaussianDetector")
(True, 'gaussian')
>>> get("detector", "gaussian").__name__
'GaussianDetector'
>>> get("extractor", "Nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
soundanomaly.exceptions.ParameterError: unknown extractor 'Nope'; known: ...LogMelFrames...
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Literal

from soundanomaly.exceptions import MissingDependencyError, ParameterError

__all__ = [
    "BACKENDS",
    "DETECTORS",
    "EXTRACTORS",
    "Entry",
    "Kind",
    "all_detectors",
    "cli_name",
    "cli_names",
    "demo_detectors",
    "entry_of",
    "get",
    "names",
    "register",
]

Kind = Literal["detector", "extractor", "backend"]


@dataclass(frozen=True)
class Entry:
    """Where a registered class lives and what it needs.

    Attributes
    ----------
    target : str
        ``"package.module:Attribute"``.
    cli : str or None
        Its name on the command line (detectors), e.g. ``"gaussian"``.
    package : str or None
        The optional package whose absence makes it unusable (imported first).
    extra : str or None
        The ``soundanomaly[extra]`` that installs ``package`` (detectors: what training needs, e.g. ``"tf"``).
    demo : str or None
        Detectors: the label of its row in the demo report (:func:`demo_detectors`); None: not in the demo.
    demo_per_group : bool
        Detectors: the demo fits one per machine id (wrapped in :class:`~soundanomaly.detectors.PerGroup`).

    Examples
    --------
    >>> Entry("soundanomaly.detectors.gaussian:GaussianDetector", cli="gaussian").module
    'soundanomaly.detectors.gaussian'
    """

    target: str
    cli: str | None = None
    package: str | None = None
    extra: str | None = None
    demo: str | None = None
    demo_per_group: bool = False

    @property
    def module(self) -> str:
        """The module to import."""
        return self.target.partition(":")[0]


# fmt: off
#: Every detector: class name -> entry (one line per detector).
DETECTORS: dict[str, Entry] = {
    "GaussianDetector": Entry("soundanomaly.detectors.gaussian:GaussianDetector", cli="gaussian", demo="Gaussian/Mahalanobis baseline"),
    "AutoencoderDetector": Entry("soundanomaly.detectors.autoencoder:AutoencoderDetector", cli="autoencoder", extra="tf"),
    "ClipStatsDetector": Entry("soundanomaly.detectors.clipstats:ClipStatsDetector", cli="clipstats", demo="clip statistics k-NN, per machine id", demo_per_group=True),
    "MachineIdDetector": Entry("soundanomaly.detectors.machine_id:MachineIdDetector", cli="machine-id", extra="tf"),
    "SpectrogramCNNDetector": Entry("soundanomaly.detectors.cnn:SpectrogramCNNDetector", extra="tf"),
    "RekognitionDetector": Entry("soundanomaly.detectors.rekognition:RekognitionDetector"),
    "PerGroup": Entry("soundanomaly.detectors.pergroup:PerGroup"),
    "Ensemble": Entry("soundanomaly.detectors.ensemble:Ensemble"),
    "DomainKNNDetector": Entry("soundanomaly.detectors.domain_knn:DomainKNNDetector", cli="domain-knn"),
    "SelectiveMahalanobisDetector": Entry("soundanomaly.detectors.selective_mahalanobis:SelectiveMahalanobisDetector", cli="selective-mahalanobis"),
    "TWFRGMMDetector": Entry("soundanomaly.detectors.twfr_gmm:TWFRGMMDetector", cli="twfr-gmm"),
    "AuxiliaryClassifierDetector": Entry("soundanomaly.detectors.auxiliary:AuxiliaryClassifierDetector", cli="auxiliary", extra="tf"),
}
#: Every feature extractor a saved model may name: ``params()["name"]`` -> entry.
EXTRACTORS: dict[str, Entry] = {
    "LogMelFrames": Entry("soundanomaly.features.logmel:LogMelFrames"),
    "SpectrogramImages": Entry("soundanomaly.features.images:SpectrogramImages"),
    "ClipStatistics": Entry("soundanomaly.features.clipstats:ClipStatistics"),
    "MultiChannel": Entry("soundanomaly.features.multichannel:MultiChannel"),
    "TimeWeightedFrequency": Entry("soundanomaly.features.twfr:TimeWeightedFrequency"),
}
#: Every training backend of :class:`~soundanomaly.detectors.AutoencoderDetector`.
BACKENDS: dict[str, Entry] = {
    "local": Entry("soundanomaly.backends.local:LocalBackend", package="tensorflow", extra="tf"),
    "sagemaker": Entry("soundanomaly.backends.sagemaker:SageMakerBackend", package="sagemaker", extra="aws"),
}
# fmt: on
_TABLES: dict[str, dict[str, Entry]] = {"detector": DETECTORS, "extractor": EXTRACTORS, "backend": BACKENDS}
#: Classes registered by the caller's own code (never imported by name).
_LOADED: dict[str, dict[str, Any]] = {"detector": {}, "extractor": {}, "backend": {}}


def _table(kind: str) -> dict[str, Entry]:
    if kind not in _TABLES:
        raise ParameterError(f"kind must be 'detector', 'extractor' or 'backend', got {kind!r}")
    return _TABLES[kind]


def names(kind: Kind) -> list[str]:
    """The registered names of one kind, sorted.

    Examples
    --------
    >>> names("backend")
    ['local', 'sagemaker']
    """
    return sorted(set(_table(kind)) | set(_LOADED[kind]))


def cli_name(name: str) -> str | None:
    """A detector's command-line name (None for one the CLI does not train).

    Examples
    --------
    >>> cli_name("ClipStatsDetector"), cli_name("PerGroup")
    ('clipstats', None)
    """
    entry = DETECTORS.get(name)
    return None if entry is None else entry.cli


def cli_names() -> list[str]:
    """The detectors the command line trains, by their command-line names, in table order.

    Examples
    --------
    >>> cli_names()[:3]
    ['gaussian', 'autoencoder', 'clipstats']
    """
    return [entry.cli for entry in DETECTORS.values() if entry.cli is not None]


def demo_detectors() -> list[tuple[str, str, bool]]:
    """The demo report's extra rows, in table order: ``(label, detector name, per machine id)``.

    The first is the report's baseline. A detector joins the demo with ``demo=`` on its line of :data:`DETECTORS`.

    Examples
    --------
    >>> demo_detectors()[0]
    ('Gaussian/Mahalanobis baseline', 'GaussianDetector', False)
    """
    return [(entry.demo, name, entry.demo_per_group) for name, entry in DETECTORS.items() if entry.demo is not None]


def entry_of(name: str) -> Entry:
    """The registry entry of detector ``name`` (class or command-line name).

    Examples
    --------
    >>> entry_of("autoencoder").extra
    'tf'
    """
    found = DETECTORS.get(name) or next((e for e in DETECTORS.values() if e.cli == name), None)
    if found is None:
        raise ParameterError(f"unknown detector {name!r}; known: {', '.join(names('detector'))}")
    return found


def register(kind: Kind, name: str, target: str | type, *, cli: str | None = None, clobber: bool = False) -> None:
    """Add a detector, extractor or backend: a ``"module:Attribute"`` target, or a class already imported.

    Re-registering a name needs ``clobber=True``.

    Examples
    --------
    >>> class Quiet:
    ...     pass
    >>> register("extractor", "Quiet", Quiet)
    >>> get("extractor", "Quiet") is Quiet
    True
    >>> register("extractor", "Quiet", Quiet)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: extractor 'Quiet' is already registered; pass clobber=True to replace it
    """
    table = _table(kind)
    if not clobber and (name in _LOADED[kind] or (name in table and isinstance(target, str))):
        raise ParameterError(f"{kind} {name!r} is already registered; pass clobber=True to replace it")
    if isinstance(target, str):
        if ":" not in target:
            raise ParameterError(f"target must look like 'package.module:Attribute', got {target!r}")
        table[name] = Entry(target, cli=cli)
        _LOADED[kind].pop(name, None)
    else:
        _LOADED[kind][name] = target


def get(kind: Kind, name: str) -> Any:
    """The class registered as ``name`` (for detectors, also its CLI name), imported now.

    Raises
    ------
    ParameterError
        For an unknown name (the message lists the known ones).
    MissingDependencyError
        When its optional package is not installed (the message names the extra).
    """
    table = _table(kind)
    if name in _LOADED[kind]:
        return _LOADED[kind][name]
    entry = table.get(name)
    if entry is None and kind == "detector":
        entry = next((e for e in table.values() if e.cli == name), None)
    if entry is None:
        raise ParameterError(f"unknown {kind} {name!r}; known: {', '.join(names(kind))}")
    module_name, _, attribute = entry.target.partition(":")
    if kind == "backend":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off
    try:
        if entry.package is not None:
            importlib.import_module(entry.package)
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if entry.package is None:
            raise
        raise MissingDependencyError(entry.package, entry.extra or entry.package, f"{kind} {name!r}") from exc
    return getattr(module, attribute)


def all_detectors() -> list[tuple[str, type]]:
    """Every registered detector class, imported, as ``(name, class)`` sorted by name.

    What the contract tests run over: a detector added to :data:`DETECTORS`
    cannot skip them.

    Examples
    --------
    >>> dict(all_detectors())["Ensemble"].__name__
    'Ensemble'
    """
    return [(name, get("detector", name)) for name in names("detector")]
