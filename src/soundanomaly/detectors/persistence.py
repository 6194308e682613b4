"""Save and load detectors: one model folder (``manifest.json`` + ``state.npz``), written atomically.

A container (:class:`~soundanomaly.detectors.PerGroup`,
:class:`~soundanomaly.detectors.Ensemble`) saves each of its detectors with
the same :func:`member_entry` / :func:`member_state` a top-level detector is
saved with, and loads them back through the same checks. A model folder is
data, not instructions: the manifest is validated key by key, parameters are
checked by the class's declared constraints, array headers before payloads
(:mod:`soundanomaly.detectors.state`), run options are never read from it,
and only classes of the registry (or already imported) are built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from soundanomaly import _safeio, registry
from soundanomaly import sessions as _sessions
from soundanomaly.calibration import Calibration, ThresholdCalibrator, sweep
from soundanomaly.detectors.options import RUN_OPTION_NAMES
from soundanomaly.detectors.state import read_state
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.features.registry import extractor_params, features_from_params
from soundanomaly.typing import FloatArray, PathLike

if TYPE_CHECKING:
    from soundanomaly.detectors.base import BaseDetector

__all__ = [
    "FORMAT_VERSION",
    "MAX_RECORDED_CLIPS",
    "clip_records",
    "detector_class",
    "find_training_clips",
    "load_detector",
    "load_member",
    "load_model",
    "member_entry",
    "member_state",
    "members_spec",
    "persisted_params",
    "restore_members",
    "save_model",
]

_log = logging.getLogger("soundanomaly.detectors")
_D = TypeVar("_D", bound="BaseDetector")

#: Version of the on-disk model format written by :func:`save_model` (1: before 0.2; still read).
FORMAT_VERSION = 2
#: Most training clips recorded (path + content hash) in a saved model.
MAX_RECORDED_CLIPS = 20_000
_MAX_MANIFEST_BYTES = 64 << 20

# Manifest keys per format version: required, optional.
_MANIFEST_KEYS: dict[int, tuple[frozenset[str], frozenset[str]]] = {
    1: (
        frozenset(
            {"format_version", "library_version", "detector", "params", "features", "threshold", "n_features_in"}
        ),
        frozenset({"extra"}),
    ),
    2: (
        frozenset(
            {
                "format_version",
                "library_version",
                "detector",
                "params",
                "features",
                "threshold",
                "n_features_in",
                "extra",
                "training_clips",
                "calibration",
            }
        ),
        frozenset(),
    ),
}
MEMBER_KEYS = frozenset({"detector", "params", "features", "threshold", "n_features_in", "extra", "calibration"})


def detector_class(name: str) -> type[BaseDetector] | None:
    """The detector class a model names: from the registry table, or an imported subclass; else None.

    Nothing that a model file names is imported unless the registry lists it.
    """
    from soundanomaly.detectors.base import BaseDetector

    if name in registry.names("detector"):
        found = registry.get("detector", name)
        return found if isinstance(found, type) and issubclass(found, BaseDetector) else None
    stack: list[type[BaseDetector]] = [BaseDetector]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__name__ == name:
                return sub
            stack.append(sub)
    return None


def persisted_params(detector: BaseDetector) -> dict[str, Any]:
    """JSON-able constructor parameters for the manifest (features are saved on their own; run options never)."""
    out: dict[str, Any] = {}
    for name, value in detector._signature_params().items():
        if name == "features" or name in RUN_OPTION_NAMES:
            continue
        if isinstance(value, ThresholdCalibrator):
            value = {"ThresholdCalibrator": value.get_params()}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            _log.debug("parameter %s=%r is not saved (not JSON)", name, value)
            continue
        out[name] = value
    return out


def save_model(
    detector: BaseDetector, path: PathLike, *, overwrite: bool = False, inputs: Sequence[PathLike] = ()
) -> Path:
    """Write a fitted detector to folder ``path``, atomically (``detector.save`` calls this).

    The folder holds ``manifest.json`` (format version, detector and
    feature parameters, threshold, calibration, training clips),
    ``state.npz`` and a marker file. It appears complete or not at all.

    Parameters
    ----------
    path : path
        ``"."`` works in an empty current directory.
    overwrite : bool, default False
        Replace a folder soundanomaly did not write. A saved model (or an
        empty folder) is always replaced, as a whole.
    inputs : paths
        Data this run read: the output may never equal or contain one,
        even with ``overwrite``.

    Returns
    -------
    Path

    Raises
    ------
    OutputExistsError
        ``path`` holds other data (without ``overwrite``) or contains an input.
    """
    from soundanomaly import __version__

    detector._check_fitted()
    manifest = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        **member_entry(detector),  # a container's detectors are saved by the same function, recursively
        "training_clips": getattr(detector, "training_clips_", []),
    }
    if manifest["calibration"] is not None and getattr(detector, "session_thresholds_", None):
        manifest["calibration"] = {**manifest["calibration"], "sessions": dict(detector.session_thresholds_)}
    state: dict[str, Any] = {**detector._get_state(), "train_scores": np.asarray(detector.train_scores_, np.float64)}
    holdout = getattr(detector, "holdout_scores_", None)
    if holdout is not None:
        state["holdout_scores"] = np.asarray(holdout, np.float64)
        labels = getattr(detector, "holdout_labels_", None)
        if labels is not None:
            state["holdout_labels"] = np.asarray(labels, np.float64)
    text = json.dumps(manifest, indent=2, allow_nan=False)
    with _safeio.atomic_dir(path, kind="model", overwrite=overwrite, inputs=inputs) as tmp:
        (tmp / "manifest.json").write_text(text)
        np.savez(tmp / "state.npz", **state)
    return Path(path)


@_safeio.consistent_load  # one complete save or an error, never a mix of two concurrent saves
def load_detector(
    cls: type[_D],
    path: PathLike,
    *,
    features: Any = None,
    trust_endpoints: bool = False,
    **params: Any,
) -> _D:
    """Load a detector written by :func:`save_model` (any subclass of ``cls``): ``cls.load`` calls this.

    A model folder is data, not instructions: the manifest is validated key
    by key, each ``state.npz`` array header is checked against the shapes
    the detector expects *before* its payload is read (no pickles, sizes
    capped), and parameters that open connections (endpoint URLs, regions,
    backend options with roles/buckets) are ignored unless
    ``trust_endpoints=True``; pass them yourself as keyword arguments.
    A save that was killed mid-swap is recovered first.

    Parameters
    ----------
    path : path
    features : extractor, optional
        If given, must equal the saved feature parameters.
    trust_endpoints : bool, default False
        Use the saved connection parameters.
    **params
        Constructor parameters overriding the saved ones (e.g. ``endpoint_url=...``), or run options
        for the loaded detector (e.g. ``progress=True``; see :class:`~soundanomaly.detectors.options.RunOptions`).

    Raises
    ------
    ModelFormatError
        Anything wrong with the folder, the manifest or the state.
    """
    folder = Path(path)
    with contextlib.suppress(OSError):
        _safeio.recover(folder)
    manifest = read_manifest(folder)
    version = manifest["format_version"]
    name = manifest["detector"]
    detector_cls = detector_class(name) if isinstance(name, str) else None
    if detector_cls is None or not issubclass(detector_cls, cls):
        known = "" if detector_cls is not None else "; import the module that defines it first"
        raise ModelFormatError(f"{folder}: holds a {name!r}, not a {cls.__name__}{known}")
    saved_features = features_from_params(manifest["features"])
    if features is not None and extractor_params(features) != extractor_params(saved_features):
        raise ModelFormatError(
            f"{folder}: model was trained on features {extractor_params(saved_features)}, "
            f"not {extractor_params(features)}"
        )
    allowed = set(detector_cls._param_names()) - {"features"}
    run_options = {k: params.pop(k) for k in list(params) if k in RUN_OPTION_NAMES}
    saved = manifest["params"]
    if not isinstance(saved, dict):
        raise ModelFormatError(f"{folder}: manifest 'params' must be an object")
    unknown = set(saved) - allowed - set(RUN_OPTION_NAMES)
    if unknown:
        raise ModelFormatError(f"{folder}: parameters {sorted(unknown)} are not {name}'s (another detector's?)")
    bad = set(params) - allowed
    if bad:
        raise ParameterError(f"{name} has no parameter(s) {sorted(bad)}")
    detector = construct_saved(detector_cls, saved, saved_features, str(folder), trusted=trust_endpoints)
    if params:
        detector.set_params(**params)
    if run_options:
        detector.set_run_options(**run_options)
    detector.n_features_in_ = manifest["n_features_in"]
    detector.threshold_ = float(manifest["threshold"])
    try:
        detector._load_manifest_extra(manifest.get("extra") or {})
        use_saved_features(detector)
        spec = detector._state_spec()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFormatError(f"{folder}: invalid manifest 'extra' for {name}: {exc}") from exc
    base_spec: dict[str, tuple[tuple[int | None, ...], bool]] = {
        "train_scores": ((None,), True),
        "holdout_scores": ((None,), False),
        "holdout_labels": ((None,), False),
    }
    full_spec = None if spec is None else {**{k: (v, True) for k, v in spec.items()}, **base_spec}
    state = read_state(folder / "state.npz", full_spec, base_spec)
    detector.train_scores_ = state.pop("train_scores").astype(np.float64)
    detector.holdout_scores_ = state.pop("holdout_scores", np.empty(0)).astype(np.float64)
    labels = state.pop("holdout_labels", None)
    detector.holdout_labels_ = None if labels is None else labels.astype(np.int8)
    try:
        detector._set_state(state)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFormatError(f"{folder}: state.npz does not fit {name}: {exc}") from exc
    detector.training_clips_ = manifest.get("training_clips") or []
    detector.calibration_ = loaded_calibration(manifest.get("calibration"), detector)
    detector.session_thresholds_ = loaded_session_thresholds(manifest.get("calibration"))
    _log.debug("loaded %s (format %d) from %s", name, version, folder)
    return detector


def file_hash(path: str) -> str | None:
    if "://" in path or not path:
        return None
    try:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def clip_records(paths: Sequence[str]) -> list[list[str | None]]:
    records: list[list[str | None]] = []
    for path in list(paths)[:MAX_RECORDED_CLIPS]:
        if path:
            records.append([path, file_hash(path)])
    return records


def find_training_clips(model: Any, paths: Sequence[PathLike]) -> list[str]:
    """Which of ``paths`` the model was trained (or calibrated) on, by content hash (or path when unhashed).

    Use it before evaluating: metrics on training clips are optimistic. The
    model records at most :data:`MAX_RECORDED_CLIPS` clips.

    Parameters
    ----------
    model : detector with ``training_clips_``, or that list itself
    paths : clip paths

    Returns
    -------
    list of str
        The given paths that are training clips, in input order.

    Examples
    --------
    >>> import numpy as np, soundfile as sf
    >>> from soundanomaly.detectors import GaussianDetector
    >>> for i in range(4):
    ...     sf.write(f"n{i}.wav", np.random.default_rng(i).normal(0, 0.1, 16000), 16000)
    >>> detector = GaussianDetector(threshold=5.0).fit([f"n{i}.wav" for i in range(3)])
    >>> find_training_clips(detector, ["n0.wav", "n3.wav"])
    ['n0.wav']
    """
    records = model if isinstance(model, list) else getattr(model, "training_clips_", None) or []
    hashes = {r[1] for r in records if isinstance(r, list) and len(r) == 2 and r[1]}
    names = {os.path.abspath(str(r[0])) for r in records if isinstance(r, list) and len(r) == 2 and not r[1]}
    found = []
    for item in paths:
        path = os.fspath(item)
        digest = file_hash(path) if hashes else None
        if (digest is not None and digest in hashes) or ("://" not in path and os.path.abspath(path) in names):
            found.append(path)
    return found


def check_threshold_and_width(manifest: dict[str, Any], where: str) -> None:
    """A saved detector's (or sub-detector's) threshold is a finite number, its ``n_features_in`` a positive int."""
    threshold = manifest["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ModelFormatError(f"{where}: threshold must be a finite number, got {threshold!r}")
    n_features = manifest["n_features_in"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ModelFormatError(f"{where}: n_features_in must be a positive integer, got {n_features!r}")


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / "manifest.json"
    try:
        if not manifest_path.is_file():
            raise ModelFormatError(f"{folder}: not a saved model (no manifest.json)")
        if manifest_path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ModelFormatError(f"{manifest_path}: too large for a model manifest")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFormatError(f"{manifest_path}: cannot be read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{manifest_path}: invalid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{manifest_path}: must hold a JSON object, got a {type(manifest).__name__}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(f"{manifest_path}: format_version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{folder}: model format version {version!r} is newer than this soundanomaly supports "
            f"({FORMAT_VERSION}); upgrade soundanomaly"
        )
    required, optional = _MANIFEST_KEYS[version]
    missing = required - set(manifest)
    if missing:
        raise ModelFormatError(f"{manifest_path}: missing key(s) {sorted(missing)}")
    extra = set(manifest) - required - optional
    if extra:
        raise ModelFormatError(f"{manifest_path}: unknown key(s) {sorted(extra)}")
    if not isinstance(manifest["detector"], str):
        raise ModelFormatError(f"{manifest_path}: 'detector' must be a string")
    check_threshold_and_width(manifest, str(manifest_path))
    for key, kinds in (("extra", (dict,)), ("training_clips", (list,)), ("calibration", (dict,))):
        value = manifest.get(key)
        if value is not None and not isinstance(value, kinds):
            raise ModelFormatError(f"{manifest_path}: {key!r} has the wrong type ({type(value).__name__})")
    return manifest


def loaded_calibration(info: Any, detector: BaseDetector) -> Calibration | None:
    if not isinstance(info, dict):
        return None
    scores = detector.holdout_scores_ if len(detector.holdout_scores_) else detector.train_scores_
    try:
        labels = detector.holdout_labels_ if len(detector.holdout_scores_) else None
        return Calibration(
            float(detector.threshold_),
            str(info.get("strategy", "")),
            sweep(scores, labels) if len(scores) else sweep([detector.threshold_]),
            int(info.get("n_normal", 0)),
            int(info.get("n_abnormal", 0)),
            str(info.get("source", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"invalid saved calibration: {exc}") from exc


def loaded_session_thresholds(info: Any) -> dict[str, float]:
    """The per-session thresholds a saved calibration holds (``{}`` when none), checked."""
    if not isinstance(info, dict) or "sessions" not in info:
        return {}
    try:
        return _sessions.check_session_thresholds(info["sessions"], where="saved session thresholds")
    except ParameterError as exc:
        raise ModelFormatError(str(exc)) from exc


def construct_saved(cls: type[_D], saved: dict[str, Any], features: Any, where: str, trusted: bool = False) -> _D:
    """A detector built from its saved parameters (already checked to be ``cls``'s) and feature extractor.

    Run options (saved by versions before 0.3) never steer anything and are dropped; connection
    parameters are dropped unless ``trusted``; a saved threshold calibrator is rebuilt; the saved
    extractor is set (by :func:`use_saved_features`) only where it differs from the detector's default.
    """
    kwargs = cls._saved_params(saved)
    kwargs = {k: v for k, v in kwargs.items() if trusted or k not in cls._untrusted_params}
    if isinstance(kwargs.get("threshold"), dict):
        try:
            kwargs["threshold"] = ThresholdCalibrator(**kwargs["threshold"]["ThresholdCalibrator"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{where}: invalid saved threshold calibrator") from exc
    try:
        detector = cls(**kwargs)
    except (TypeError, ValueError, KeyError, AttributeError, ParameterError) as exc:
        raise ModelFormatError(f"{where}: the saved parameters are not valid for {cls.__name__}: {exc}") from exc
    detector.__dict__["_saved_features"] = features
    return detector


def use_saved_features(detector: BaseDetector) -> None:
    """After the extras are loaded: give ``detector`` its saved extractor where its default differs."""
    saved = detector.__dict__.pop("_saved_features", None)
    if saved is not None and extractor_params(detector.features) != extractor_params(saved):
        detector.features = saved


def member_entry(model: BaseDetector) -> dict[str, Any]:
    """A fitted sub-detector's manifest entry (PerGroup's groups, Ensemble's members)."""
    calibration = getattr(model, "calibration_", None)
    return {
        "detector": type(model).__name__,
        "params": model._persisted_params(),
        "features": extractor_params(model.features),
        "threshold": float(model.threshold_),
        "n_features_in": int(model.n_features_in_),
        "extra": model._manifest_extra(),
        "calibration": None if calibration is None else calibration.to_dict(),
    }


def member_state(model: BaseDetector, prefix: str) -> dict[str, FloatArray]:
    """A sub-detector's state arrays under ``prefix``, with its training and held-out scores."""
    state = {f"{prefix}{name}": value for name, value in model._get_state().items()}
    state[f"{prefix}train_scores"] = np.asarray(model.train_scores_, np.float64)
    state[f"{prefix}holdout_scores"] = np.asarray(getattr(model, "holdout_scores_", np.empty(0)), np.float64)
    return state


def load_member(entry: Any, where: str, container: type, extra_keys: frozenset[str] = frozenset()) -> BaseDetector:
    """Rebuild one (still stateless) sub-detector from its :func:`_member_entry`, as strictly as ``BaseDetector.load``.

    ``where`` names it in errors; a sub-detector may not be a ``container`` (no unbounded nesting);
    ``extra_keys`` are the container's own keys in the entry (checked by the container).
    """
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{where}: must be a JSON object")
    keys = MEMBER_KEYS | extra_keys
    missing, unknown = keys - set(entry), set(entry) - keys
    if missing or unknown:
        raise ModelFormatError(f"{where}: missing key(s) {sorted(missing)}, unknown key(s) {sorted(unknown)}")
    name = entry["detector"]
    if not isinstance(name, str):
        raise ModelFormatError(f"{where}: 'detector' must be a string")
    cls = detector_class(name)
    if cls is None or issubclass(cls, container):
        raise ModelFormatError(f"{where}: unknown detector {name!r} (import the module that defines it first)")
    check_threshold_and_width(entry, where)
    for key in ("params", "extra"):
        if not isinstance(entry[key], dict):
            raise ModelFormatError(f"{where}: {key!r} must be a JSON object")
    if entry["calibration"] is not None and not isinstance(entry["calibration"], dict):
        raise ModelFormatError(f"{where}: 'calibration' must be a JSON object or null")
    features = features_from_params(entry["features"])
    stray = set(entry["params"]) - (set(cls._param_names()) - {"features"}) - set(RUN_OPTION_NAMES)
    if stray:
        raise ModelFormatError(f"{where}: parameters {sorted(stray)} are not {name}'s")
    model = construct_saved(cls, entry["params"], features, where)
    model.threshold_ = float(entry["threshold"])
    model.n_features_in_ = entry["n_features_in"]
    try:
        model._load_manifest_extra(entry["extra"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFormatError(f"{where}: invalid 'extra' for {name}: {exc}") from exc
    use_saved_features(model)
    return model


def member_spec(model: BaseDetector) -> dict[str, tuple[int | None, ...]] | None:
    """The state arrays :func:`_member_state` writes for ``model`` (None: the model declares no spec)."""
    spec = model._state_spec()
    if spec is None:
        return None
    return {**spec, "train_scores": (None,), "holdout_scores": (None,)}


def members_spec(members: Sequence[tuple[str, BaseDetector]]) -> dict[str, tuple[int | None, ...]] | None:
    """The state spec of ``(prefix, model)`` sub-detectors (None if any declares none)."""
    spec: dict[str, tuple[int | None, ...]] = {}
    for prefix, model in members:
        own = member_spec(model)
        if own is None:
            return None  # every header is still checked (float, size caps)
        spec.update({f"{prefix}{k}": v for k, v in own.items()})
    return spec


def restore_members(
    state: dict[str, FloatArray], members: Sequence[tuple[str, str, BaseDetector, Any]], own: Sequence[str] = ()
) -> None:
    """Restore ``(label, prefix, model, calibration)`` sub-detectors from a container's state.

    Arrays must be the container's ``own`` or carry a member's prefix, and each member's must
    match its spec: nothing stray is loaded, nothing missing is guessed.
    """
    prefixes = tuple(prefix for _, prefix, _, _ in members)
    stray = sorted(k for k in state if k not in own and not k.startswith(prefixes))
    if stray:
        raise ModelFormatError(f"unexpected state array(s) {stray}")
    for label, prefix, model, calibration in members:
        arrays = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        spec = member_spec(model)
        if spec is not None:
            if set(arrays) != set(spec):
                raise ModelFormatError(f"{label}: state arrays {sorted(arrays)}, expected {sorted(spec)}")
            for key, shape in spec.items():
                got = arrays[key].shape
                if len(got) != len(shape) or any(w is not None and s != w for s, w in zip(got, shape, strict=True)):
                    raise ModelFormatError(f"{label}: array {key!r} has shape {got}, expected {shape}")
        if "train_scores" not in arrays:
            raise ModelFormatError(f"{label}: missing array 'train_scores'")
        try:
            restore_member(model, arrays, calibration)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(f"{label} ({type(model).__name__}): state does not fit: {exc}") from exc


def restore_member(model: BaseDetector, own: dict[str, FloatArray], calibration: Any) -> None:
    """Inverse of :func:`_member_state` (``own`` without the prefix; ``train_scores`` checked by the caller)."""
    model.train_scores_ = own.pop("train_scores").astype(np.float64)
    model.holdout_scores_ = own.pop("holdout_scores", np.empty(0)).astype(np.float64)
    model.holdout_labels_ = None
    model._set_state(own)
    model.calibration_ = loaded_calibration(calibration, model)


def load_model(path: PathLike, **options: Any) -> BaseDetector:
    """Load any detector saved with :meth:`BaseDetector.save`, whatever its class.

    Options go to :meth:`BaseDetector.load` (``features``, ``trust_endpoints``, parameter overrides).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> train = ClipFeatures.from_arrays([rng.normal(size=(20, 4)).astype("float32") for _ in range(3)])
    >>> path = GaussianDetector(threshold=3.0).fit(train).save("model")
    >>> type(load_model(path)).__name__
    'GaussianDetector'

    """
    from soundanomaly.detectors.base import BaseDetector

    return load_detector(BaseDetector, path, **options)
