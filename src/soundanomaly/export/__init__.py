"""Export a fitted detector as one portable file: ONNX (raw audio in, score out) or TFLite (log-mel in, score out).

* :func:`to_onnx` / :func:`save_onnx`: a single ONNX graph built from the
  fitted NumPy state (no converter): raw mono PCM float32 of one window at the
  model's rate in; ``score`` (float64, higher = more anomalous) and ``label``
  (int8, 1 = anomaly, from the model's threshold; a NaN score gives 1) out.
  The whole front end is inside (framing, window, DFT, mel matrix, dB re the
  window's loudest bin, frame stacking), then the detector and the clip
  aggregation. The file carries its metadata (rate, window, threshold,
  library version, training-data fingerprint) and is what
  :class:`soundanomaly.edge.EdgeModel` reads with only NumPy and ONNX Runtime.
* :func:`to_tflite` / :func:`save_tflite` (``tf`` extra): the model part for
  microcontrollers (stacked log-mel vectors in, per-vector score out), float32
  or full-integer int8 calibrated on training windows; :func:`c_header` wraps
  the bytes, the mel filterbank and the normalisation constants for a
  TFLite-Micro / CMSIS-DSP project.

Exportable: ``GaussianDetector``, ``AutoencoderDetector``, ``ClipStatsDetector``
(Mahalanobis or k-NN), the shift-robust ``DomainKNNDetector``,
``SelectiveMahalanobisDetector`` and ``TWFRGMMDetector``, and ``PerGroup`` of
those (one file per group), on ``LogMelFrames``, ``ClipStatistics`` or
``TimeWeightedFrequency`` features. A detector says what it computes through
its ``_export_parts()`` hook (arrays, no code). Anything else is refused with
one :class:`~soundanomaly.exceptions.ParameterError` saying why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from soundanomaly.exceptions import MissingDependencyError, ParameterError
from soundanomaly.export._tflite import c_header, tflite_interpreter, tflite_scores  # TensorFlow only when called
from soundanomaly.typing import PathLike

__all__ = [
    "ExportPlan",
    "c_header",
    "export_model",
    "plan",
    "save_onnx",
    "save_tflite",
    "tflite_interpreter",
    "tflite_scores",
    "to_onnx",
    "to_tflite",
]

Format = Literal["onnx", "tflite"]
#: Window length of an exported file when none is given: MIMII's and DCASE's 10 s clips.
DEFAULT_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class ExportPlan:
    """What an export holds, read from a fitted detector through its export hooks.

    Attributes
    ----------
    detector : soundanomaly.detectors.base.BaseDetector
        The detector that scores (a PerGroup's model for one group).
    parts : dict
        Its fitted window score as arrays (``detector._export_parts()``).
    features : dict
        Feature-extractor parameters.
    sr, window_samples : int
        Sample rate (Hz) and samples per scored window.
    aggregate : tuple of (str, float)
        Clip aggregation: ``("mean", 0)``, ``("max", 0)``, ``("topk", k)``, ``("percentile", q)``.
    offset, threshold : float
        Added to the aggregated score (PerGroup: minus the group's threshold); ``label = score > threshold``.
    metadata : dict of str to str
        The ``soundanomaly.*`` entries written into the file.
    """

    detector: Any
    parts: dict[str, Any]
    features: dict[str, Any]
    sr: int
    window_samples: int
    aggregate: tuple[str, float]
    offset: float
    threshold: float
    metadata: dict[str, str]

    @property
    def n_features(self) -> int:
        return int(self.detector.n_features_in_)


def _aggregate(spec: str) -> tuple[str, float]:
    kind, _, arg = str(spec).partition(":")
    if kind in ("mean", "max") and not arg:
        return kind, 0.0
    if kind in ("topk", "percentile") and arg:
        return kind, float(arg)
    raise ParameterError(f"aggregate {spec!r} cannot be exported")


def _arrays(parts: Any, name: str = "") -> list[tuple[str, Any]]:
    """Every array or number in an export-parts tree, with its key."""
    if isinstance(parts, dict):
        return [item for key, value in parts.items() if key != "kind" for item in _arrays(value, str(key))]
    if isinstance(parts, (list, tuple)):
        return [item for value in parts for item in _arrays(value, name)]
    return [] if parts is None or isinstance(parts, (str, bool)) else [(name, parts)]


def _fingerprint(model: Any) -> tuple[str, int]:
    """blake2b-128 of the training clips (paths and content hashes), or of the training scores when none."""
    clips = getattr(model, "training_clips_", None) or []
    digest = hashlib.blake2b(digest_size=16)
    if clips:
        digest.update(json.dumps(clips, sort_keys=True).encode())
    else:
        digest.update(np.ascontiguousarray(getattr(model, "train_scores_", np.empty(0)), np.float64).tobytes())
    return digest.hexdigest(), len(clips)


def plan(
    model: Any,
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    group: str | None = None,
    sample_rate: int | None = None,
) -> ExportPlan:
    """Check that ``model`` can be exported exactly and gather what the file will hold.

    Parameters
    ----------
    model : soundanomaly.detectors.base.BaseDetector
        A fitted detector.
    window_seconds : float > 0, default 10
        Length of the audio one inference scores (the training clips' length
        keeps scores on the scale of the threshold).
    group : str, optional
        For a PerGroup model: the group to export (one file per group).
    sample_rate : int, optional
        Rate for features that do not fix one (``ClipStatistics``); default
        16000. Must equal the features' own rate when they fix one.

    Raises
    ------
    ParameterError
        Not fitted, or something the file cannot represent exactly (detector, features, channel, window).
    """
    from soundanomaly import __version__
    from soundanomaly.detectors.base import BaseDetector
    from soundanomaly.edge.check import FORMAT, METADATA_KEYS
    from soundanomaly.export._onnx import front_end_names, min_samples

    if not isinstance(model, BaseDetector):
        raise ParameterError(f"model must be a fitted detector, got {type(model).__name__}")
    model.check_is_fitted()
    detector, offset, group = model.group_member(group)
    parts = detector._export_parts()
    features = dict(detector.features.params())
    if features.get("name") not in front_end_names():
        raise ParameterError(
            f"{type(detector).__name__} on features {features.get('name')!r} cannot be exported: an exported file "
            f"computes only {', '.join(front_end_names())}"
        )
    if features["name"] in ("LogMelFrames", "TimeWeightedFrequency") and int(features["n_fft"]) % 2:
        raise ParameterError(
            f"n_fft={features['n_fft']} cannot be exported: the library frames an odd n_fft one frame longer than "
            "librosa does, and an exported file reproduces only even FFT sizes"
        )
    fixed = features.get("sr")
    sr = int(sample_rate if sample_rate is not None else fixed if fixed is not None else 16000)
    if fixed is not None and sr != int(fixed):
        raise ParameterError(f"sample_rate={sr}: the model's features are computed at {fixed} Hz")
    if (
        isinstance(window_seconds, bool)
        or not isinstance(window_seconds, (int, float))
        or not 0 < window_seconds <= 600
    ):
        raise ParameterError(f"window_seconds must be a number in (0, 600], got {window_seconds!r}")
    window = round(float(window_seconds) * sr)
    if window < max(min_samples(features), 1):
        raise ParameterError(
            f"window_seconds={window_seconds} is shorter than the features need ({min_samples(features)} samples)"
        )
    channel = detector.channel  # the scoring detector (a PerGroup: its group model)
    if not (
        channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool) and -1024 <= channel < 1024)
    ):
        raise ParameterError(f"channel={channel!r} cannot be exported: an exported file scores one channel or the mean")
    aggregate = _aggregate(detector.aggregate)
    for name, array in _arrays(parts):
        if not np.isfinite(np.asarray(array, dtype=np.float64)).all():
            raise ParameterError(f"{type(detector).__name__} holds non-finite values in {name!r}: not exportable")
    threshold = float(model.threshold_)
    fingerprint, n_clips = _fingerprint(model)
    metadata = {
        "format": FORMAT,
        "library_version": __version__,
        "detector": type(detector).__name__
        if detector is model
        else f"{type(model).__name__}[{type(detector).__name__}]",
        "sample_rate": str(sr),
        "window_samples": str(window),
        "hop_quantum": str(int(features.get("hop_length", 1)) if features["name"] == "LogMelFrames" else 1),
        "threshold": repr(threshold),
        "channel": str(channel),
        "features": json.dumps(features, sort_keys=True),
        "aggregate": str(detector.aggregate),
        "group": group or "",
        "training_fingerprint": fingerprint,
        "training_clips": str(n_clips),
    }
    assert set(metadata) == set(METADATA_KEYS), "the exporter writes exactly what the edge runtime reads"
    return ExportPlan(detector, parts, features, sr, window, aggregate, float(offset), threshold, metadata)


def to_onnx(
    model: Any,
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    group: str | None = None,
    sample_rate: int | None = None,
) -> Any:
    """The ONNX model (``onnx.ModelProto``) of a fitted detector: raw PCM in, ``score`` and ``label`` out.

    Parameters are those of :func:`plan`. Needs the ``onnx`` package (the ``export`` extra).

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures, LogMelFrames
    >>> rng = np.random.default_rng(0)
    >>> clips = [rng.normal(0, 0.1, 16000).astype(np.float32) for _ in range(6)]
    >>> train = ClipFeatures.from_arrays([LogMelFrames().transform(c, 16000) for c in clips])
    >>> detector = GaussianDetector(threshold=2.0).fit(train)
    >>> onnx_model = to_onnx(detector, window_seconds=1.0)
    >>> [i.name for i in onnx_model.graph.input], [o.name for o in onnx_model.graph.output]
    (['pcm'], ['score', 'label'])
    """
    from soundanomaly.export._onnx import build_graph

    _require("onnx")
    p = plan(model, window_seconds=window_seconds, group=group, sample_rate=sample_rate)
    return build_graph(
        features=p.features,
        parts=p.parts,
        n_features=p.n_features,
        n_samples=p.window_samples,
        sr=p.sr,
        aggregate=p.aggregate,
        offset=p.offset,
        threshold=p.threshold,
        metadata={f"soundanomaly.{k}": v for k, v in p.metadata.items()},
    )


def save_onnx(
    model: Any,
    path: PathLike,
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    group: str | None = None,
    sample_rate: int | None = None,
    inputs: Iterable[PathLike] = (),
    force: bool = False,
) -> Path:
    """Write :func:`to_onnx`'s model to ``path`` atomically; see :func:`export_model` for the output rules."""
    from soundanomaly.export._output import write_export

    data = to_onnx(model, window_seconds=window_seconds, group=group, sample_rate=sample_rate).SerializeToString()
    return write_export(path, data, inputs=inputs, force=force)


def to_tflite(model: Any, *, int8: bool = False, group: str | None = None, calibration: Any = None) -> bytes:
    """TFLite flatbuffer of the model part: ``(n, n_features)`` feature vectors in, per-vector score out.

    See :mod:`soundanomaly.export._tflite`; needs TensorFlow (the ``tf`` extra).
    """
    from soundanomaly.export._tflite import build_tflite

    return build_tflite(plan(model, group=group), int8=int8, calibration=calibration)


def save_tflite(
    model: Any,
    path: PathLike,
    *,
    int8: bool = False,
    group: str | None = None,
    calibration: Any = None,
    header: bool = True,
    inputs: Iterable[PathLike] = (),
    force: bool = False,
) -> Path:
    """Write :func:`to_tflite`'s bytes to ``path`` and, with ``header``, a C header beside it (``path`` + ``.h``)."""
    from soundanomaly.export._output import write_export
    from soundanomaly.export._tflite import build_tflite, c_header

    p = plan(model, group=group)
    data = build_tflite(p, int8=int8, calibration=calibration)
    if header:
        header_path = Path(str(path) + ".h")
        write_export(header_path, c_header(p, data, int8=int8).encode(), inputs=inputs, force=force)
    return write_export(path, data, inputs=inputs, force=force)


def export_model(
    model: PathLike | Any,
    *,
    format: Format,
    out: PathLike,
    int8: bool = False,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    group: str | None = None,
    force: bool = False,
) -> Path:
    """Export a model folder (or a fitted detector) to ``out``: what ``soundanomaly export`` runs.

    ``out`` may not be or lie inside the model folder, and an existing file
    there is replaced only if the library wrote it (or with ``force``); the
    write is atomic.

    Raises
    ------
    ParameterError
        An unknown format, ``int8`` with ONNX, or a model that cannot be exported.
    OutputExistsError
        ``out`` is unsafe to write.
    """
    from soundanomaly.detectors.base import load_model

    if format not in ("onnx", "tflite"):
        raise ParameterError(f"format must be 'onnx' or 'tflite', got {format!r}")
    if int8 and format != "tflite":
        raise ParameterError("--int8 applies to --format tflite (the ONNX file is float, exact)")
    inputs: list[PathLike] = []
    if isinstance(model, (str, Path)) or hasattr(model, "__fspath__"):
        inputs.append(model)
        model = load_model(model)
    if format == "onnx":
        return save_onnx(model, out, window_seconds=window_seconds, group=group, inputs=inputs, force=force)
    return save_tflite(model, out, int8=int8, group=group, inputs=inputs, force=force)


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, "export", "exporting a model")
