"""Build one ONNX graph from a fitted detector: raw PCM in, ``score`` and ``label`` out.

Every step is the library's own arithmetic written as ONNX operators, from the
fitted NumPy state (no converter): centred zero-padded framing, the periodic
Hann window folded into a DFT matrix (log-mel frames) or an FFT (the clip
statistics' Welch spectrum), the Slaney mel matrix, dB relative to the
window's loudest bin floored at ``top_db``, frame stacking, the detector's
window score, the clip aggregation and the predict rule (``score >
threshold``, NaN → 1). Dtypes follow the library: features in float32, the
Mahalanobis and k-NN distances and the aggregation in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["OPSET", "build_graph"]

#: ONNX opset of exported files (DFT arrived in 17; ONNX Runtime 1.14+ runs it).
OPSET = 17
_AMIN = 1e-10  # the library's power floor before the logarithm (features.logmel)
_DB = 10.0 / math.log(10.0)  # 10 * log10(x) = ln(x) * _DB


class _Graph:
    """A list of ONNX nodes and constants with fresh names (a thin layer over ``onnx.helper``)."""

    def __init__(self) -> None:
        import onnx
        import onnx.helper
        import onnx.numpy_helper

        self.onnx, self.helper, self.numpy_helper = onnx, onnx.helper, onnx.numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, dtype: Any = None, stem: str = "c") -> str:
        array = np.asarray(value, dtype=dtype)
        name = self._name(stem)
        self.initializers.append(self.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64), stem="i")

    def op(self, op_type: str, *inputs: str, stem: str | None = None, n_out: int = 1, **attrs: Any) -> str:
        """Add a node; return its first output's name (``n_out`` outputs, e.g. TopK's values and indices)."""
        outs = [self._name(stem or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0]

    def rows(self, x: str, start: int, stop: int, axis: int = 0) -> str:
        return self.op("Slice", x, self.ints(start), self.ints(stop), self.ints(axis))


# -- front ends -------------------------------------------------------------------------------------------------------
def _frames(g: _Graph, signal: str, n_fft: int, hop: int, n_frames: int) -> str:
    """Rows ``signal[i * hop : i * hop + n_fft]`` for ``i < n_frames``, shape ``(n_frames, n_fft)``."""
    if n_fft % hop == 0:  # whole blocks of hop samples, side by side: exact copies, no index table
        ratio = n_fft // hop
        blocks = g.op("Reshape", g.rows(signal, 0, (n_frames + ratio - 1) * hop), g.ints(n_frames + ratio - 1, hop))
        if ratio == 1:
            return blocks
        return g.op("Concat", *(g.rows(blocks, j, j + n_frames) for j in range(ratio)), axis=1)
    index = np.arange(n_frames, dtype=np.int64)[:, None] * hop + np.arange(n_fft, dtype=np.int64)[None, :]
    return g.op("Gather", signal, g.const(index), axis=0)


def _log_mel(
    g: _Graph, pcm: str, n_samples: int, *, sr: int, n_mels: int, n_fft: int, hop: int, top_db: float
) -> tuple[str, int]:
    """``_log_mel_by_frame``: ``(n_frames, n_mels)`` float32 dB re the loudest bin, and ``n_frames``."""
    from soundanomaly.features.logmel import mel_basis

    pad = n_fft // 2
    n_frames = 1 + n_samples // hop
    padded = g.op("Pad", pcm, g.ints(pad, n_fft), mode="constant")  # zeros past the end: edge frames, odd n_fft
    frames = _frames(g, padded, n_fft, hop, n_frames)
    basis = np.asarray(mel_basis(sr, n_fft, n_mels), dtype=np.float32)  # (n_mels, n_bins)
    p = _split(n_fft)
    mel = _mel_direct(g, frames, basis, n_fft) if p is None else _mel_two_stage(g, frames, basis, n_fft, n_frames, p)
    db = g.op("Mul", g.op("Log", g.op("Max", mel, g.const(_AMIN, np.float32))), g.const(_DB, np.float32))
    relative = g.op("Sub", db, g.op("ReduceMax", db, keepdims=1))
    return g.op("Max", relative, g.const(-top_db, np.float32), stem="logmel"), n_frames


def _mel_direct(g: _Graph, frames: str, basis: npt.NDArray[np.float32], n_fft: int) -> str:
    """Mel power of ``frames`` through one windowed DFT matrix (any ``n_fft``)."""
    used = np.flatnonzero(basis.any(axis=0))
    lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)  # bins no filter weighs add exact zeros
    window = np.asarray(_hann(n_fft), dtype=np.float64)
    angle = 2.0 * np.pi * np.outer(np.arange(n_fft), np.arange(lo, hi)) / n_fft
    dft = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
    spectrum = g.op("MatMul", frames, g.const(dft, np.float32, "dft"))
    squares = g.op("Mul", spectrum, spectrum)
    width = hi - lo
    power = g.op("Add", g.rows(squares, 0, width, 1), g.rows(squares, width, 2 * width, 1))
    return g.op("MatMul", power, g.const(basis[:, lo:hi].T, np.float32, "mel"))


def _split(n: int) -> int | None:
    """The divisor ``p`` of ``n`` nearest ``sqrt(n)`` with ``p, n / p >= 8``; None if there is none."""
    divisors = [p for p in range(8, n // 8 + 1) if n % p == 0]
    return min(divisors, key=lambda p: abs(p - n**0.5)) if divisors else None


def _mel_two_stage(g: _Graph, frames: str, basis: npt.NDArray[np.float32], n_fft: int, n_frames: int, p: int) -> str:
    """Mel power through a two-stage (Cooley-Tukey) DFT written as matrix products: ~8x fewer operations.

    With ``n = q * n1 + n2`` and ``k = k1 + p * k2``: a ``p``-point DFT over ``n1`` (real in), then, for
    each ``k1``, the sum over ``n2`` of ``W_N^(n2 * (k1 + p * k2))`` (twiddles folded in; only the
    ``k2`` that reach the one-sided half). The bins come out in ``(k1, k2)`` order; the mel matrix's rows
    are permuted to match, so no reordering is needed.
    """
    q = n_fft // p
    k2s = (n_fft // 2) // p + 1
    x = g.op("Reshape", g.op("Mul", frames, g.const(_hann(n_fft), np.float32)), g.ints(n_frames, p, q))
    angle = 2.0 * np.pi * np.outer(np.arange(p), np.arange(p)) / p
    first = np.concatenate([np.cos(angle), -np.sin(angle)], axis=0)  # ([re k1 | im k1], n1)
    a = g.op("MatMul", g.const(first, np.float32, "dft1"), x)  # (F, 2p, n2): rows re k1 then im k1
    # (k1, F, re/im, n2): the innermost axis stays in place, so the transpose moves whole rows
    a = g.op("Transpose", g.op("Reshape", a, g.ints(n_frames, 2, p, q)), perm=[2, 0, 1, 3])
    a = g.op("Reshape", a, g.ints(p, n_frames, 2 * q))
    theta = -2.0 * np.pi * np.arange(q)[None, :, None] * (np.arange(p)[:, None, None] + p * np.arange(k2s)) / n_fft
    c, s = np.cos(theta), np.sin(theta)  # (k1, n2, k2)
    second = np.concatenate([np.concatenate([c, s], axis=2), np.concatenate([-s, c], axis=2)], axis=1)
    y = g.op("MatMul", a, g.const(second, np.float32, "dft2"))  # (k1, F, [re k2 | im k2])
    squares = g.op("Mul", y, y)
    power = g.op("Add", g.rows(squares, 0, k2s, 2), g.rows(squares, k2s, 2 * k2s, 2))  # (k1, F, k2)
    power = g.op("Reshape", g.op("Transpose", power, perm=[1, 0, 2]), g.ints(n_frames, p * k2s))
    bins = (np.arange(p)[:, None] + p * np.arange(k2s)[None, :]).reshape(-1)  # bin of each (k1, k2) column
    rows = np.zeros((p * k2s, basis.shape[0]), dtype=np.float32)
    inside = bins <= n_fft // 2
    rows[inside] = basis[:, bins[inside]].T
    return g.op("MatMul", power, g.const(rows, np.float32, "mel"))


def _log_mel_frames(g: _Graph, pcm: str, n_samples: int, params: dict[str, Any], sr: int) -> str:
    frames = int(params["frames"])
    n_fft, hop = int(params["n_fft"]), int(params["hop_length"])
    db, n_frames = _log_mel(g, pcm, n_samples, sr=sr, n_mels=int(params["n_mels"]), n_fft=n_fft, hop=hop, top_db=80.0)
    n_windows = n_frames - frames + 1
    if frames == 1:
        return db
    return g.op("Concat", *(g.rows(db, j, j + n_windows) for j in range(frames)), axis=1, stem="features")


def _clip_statistics(g: _Graph, pcm: str, n_samples: int, params: dict[str, Any], sr: int) -> str:
    """``ClipStatistics.transform``: Welch bands in dB less their mean, log-mel mean and spread; ``(1, d)``."""
    from soundanomaly.detectors.clipstats import ClipStatistics

    n_fft, n_bands, fmin, n_mels = (
        int(params["n_fft"]),
        int(params["n_bands"]),
        float(params["fmin"]),
        int(params["n_mels"]),
    )
    hop = n_fft // 2
    n_segments = 1 + (n_samples - n_fft) // hop
    segments = _frames(g, pcm, n_fft, hop, n_segments)
    detrended = g.op("Sub", segments, g.op("ReduceMean", segments, axes=[1], keepdims=1))
    windowed = g.op("Mul", detrended, g.const(_hann(n_fft), np.float32))
    spectrum = g.op("DFT", g.op("Unsqueeze", windowed, g.ints(2)), axis=1, onesided=1)  # (n_seg, n_bins, 2)
    power = g.op("ReduceSum", g.op("Mul", spectrum, spectrum), g.ints(2), keepdims=0)
    psd = g.op("Cast", g.op("ReduceMean", power, axes=[0], keepdims=0), to=_double(g))
    lo, hi = ClipStatistics(n_fft=n_fft, n_bands=n_bands, fmin=fmin, n_mels=n_mels).band_ranges(sr)
    cumulative = g.op("Concat", g.const(np.zeros(1)), g.op("CumSum", psd, g.const(np.int64(0))), axis=0)
    total = g.op(
        "Sub",
        g.op("Gather", cumulative, g.const(hi.astype(np.int64))),
        g.op("Gather", cumulative, g.const(lo.astype(np.int64))),
    )
    bands = g.op("Div", total, g.const((hi - lo).astype(np.float64)))
    db = g.op("Mul", g.op("Log", g.op("Max", bands, g.const(1e-20))), g.const(_DB))
    parts = [g.op("Sub", db, g.op("ReduceMean", db, axes=[0], keepdims=1))]
    if n_mels:
        mel, _ = _log_mel(g, pcm, n_samples, sr=sr, n_mels=n_mels, n_fft=1024, hop=512, top_db=80.0)
        mean = g.op("ReduceMean", mel, axes=[0], keepdims=1)
        spread = g.op(
            "Sqrt",
            g.op("ReduceMean", g.op("Pow", g.op("Sub", mel, mean), g.const(2.0, np.float32)), axes=[0], keepdims=0),
        )
        parts += [g.op("Cast", g.op("Squeeze", mean, g.ints(0)), to=_double(g)), g.op("Cast", spread, to=_double(g))]
    vector = g.op("Concat", *parts, axis=0)
    return g.op("Unsqueeze", g.op("Cast", vector, to=_float(g)), g.ints(0), stem="features")


def _time_weighted_frequency(g: _Graph, pcm: str, n_samples: int, params: dict[str, Any], sr: int) -> str:
    """``TimeWeightedFrequency.transform``: each log-mel band's frames ranked, averaged with ``decay**rank``."""
    n_fft, hop, decay = int(params["n_fft"]), int(params["hop_length"]), float(params["decay"])
    db, n_frames = _log_mel(g, pcm, n_samples, sr=sr, n_mels=int(params["n_mels"]), n_fft=n_fft, hop=hop, top_db=80.0)
    ranked = g.op("TopK", g.op("Cast", db, to=_double(g)), g.ints(n_frames), axis=0, largest=1, sorted=1, n_out=2)
    weights = np.power(decay, np.arange(n_frames, dtype=np.float64)) if decay > 0 else np.eye(1, n_frames)[0]
    pooled = g.op("MatMul", g.const((weights / weights.sum())[None, :], stem="ranks"), ranked)  # (1, n_mels)
    return g.op("Cast", pooled, to=_float(g), stem="features")


def _hann(n: int) -> npt.NDArray[np.float32]:
    """The periodic Hann window both extractors use (scipy's, in float32)."""
    import scipy.signal

    return np.asarray(scipy.signal.get_window("hann", n, fftbins=True), dtype=np.float32)


_FRONT_ENDS = {
    "LogMelFrames": _log_mel_frames,
    "ClipStatistics": _clip_statistics,
    "TimeWeightedFrequency": _time_weighted_frequency,
}


def _double(g: _Graph) -> int:
    return int(g.onnx.TensorProto.DOUBLE)


def _float(g: _Graph) -> int:
    return int(g.onnx.TensorProto.FLOAT)


def front_end_names() -> tuple[str, ...]:
    """Feature extractors an exported file can compute."""
    return tuple(_FRONT_ENDS)


# -- window scores -------------------------------------------------------------------------------------------------
def _standardised(g: _Graph, x: str, parts: dict[str, Any]) -> str:
    """``(x - mean) / scale`` in float64, then less ``centre`` and scaled to unit length when the parts say so."""
    z = g.op("Sub", g.op("Cast", x, to=_double(g)), g.const(np.asarray(parts["mean"], np.float64), stem="mean"))
    scale = parts.get("scale")
    if scale is not None:
        z = g.op("Div", z, g.const(np.asarray(scale, np.float64), stem="scale"))
    centre = parts.get("centre")
    if centre is not None:
        z = g.op("Sub", z, g.const(np.asarray(centre, np.float64), stem="centre"))
    if parts.get("unit_norm"):
        norm = g.op("Sqrt", g.op("ReduceSum", g.op("Mul", z, z), g.ints(1), keepdims=1))
        z = g.op("Div", z, g.op("Max", norm, g.const(1e-12)))
    return z


def _window_scores(g: _Graph, x: str, parts: dict[str, Any], n_features: int) -> str:
    """:func:`_member_scores`, then ``(score - shift) / spread`` when a Mahalanobis or mixture part has them."""
    scores = _member_scores(g, x, parts, n_features)
    if parts.get("kind") in ("mahalanobis", "gmm"):  # a session's scores standardised by its members' (D's normalise)
        if parts.get("shift") is not None:
            scores = g.op("Sub", scores, g.const(float(parts["shift"])))
        if parts.get("spread") is not None:
            scores = g.op("Div", scores, g.const(float(parts["spread"])))
    return scores


def _member_scores(g: _Graph, x: str, parts: dict[str, Any], n_features: int) -> str:
    """Per-window scores, float64 ``(n_windows,)``, as the detector's ``_score_windows``.

    Parts (from ``detector._export_parts()``): ``"mahalanobis"`` (``mean``, ``scale``, optional ``centre``,
    ``precision``; divided by the number of features), ``"knn"`` (``mean``, ``scale``, ``reference``,
    ``n_neighbors``, optional ``unit_norm``; ``(mean distance - shift) / spread``, by default ``shift=0``,
    ``spread=sqrt(n_features)``), ``"gmm"`` (``weights``, ``means``, ``chols``), ``"autoencoder"``
    (``weights``), ``"min"`` (the least of ``members``). Mahalanobis and mixture parts may carry ``shift``
    and ``spread`` too (see :func:`_window_scores`).
    """
    kind = parts.get("kind")
    if kind == "min":
        members = [_window_scores(g, x, member, n_features) for member in parts["members"]]
        if not members:
            raise ParameterError("a model without members cannot be exported")
        stacked = g.op("Concat", *(g.op("Unsqueeze", m, g.ints(0)) for m in members), axis=0)
        return g.op("ReduceMin", stacked, axes=[0], keepdims=0)
    if kind == "mahalanobis":
        z = _standardised(g, x, parts)
        product = g.op("MatMul", z, g.const(np.asarray(parts["precision"], np.float64), stem="precision"))
        total = g.op("ReduceSum", g.op("Mul", product, z), g.ints(1), keepdims=0)
        return g.op("Div", total, g.const(float(n_features)))
    if kind == "knn":
        reference = np.asarray(parts["reference"], np.float64)
        if len(reference) < 1:
            raise ParameterError("a k-NN model without reference clips cannot be exported")
        z = _standardised(g, x, parts)
        squares = g.op("ReduceSum", g.op("Mul", z, z), g.ints(1), keepdims=1)
        cross = g.op("MatMul", g.op("Mul", z, g.const(2.0)), g.const(np.ascontiguousarray(reference.T), stem="ref"))
        d2 = g.op("Sub", g.op("Add", squares, g.const((reference**2).sum(axis=1)[None, :])), cross)
        distances = g.op("Sqrt", g.op("Max", d2, g.const(0.0)))
        k = min(int(parts["n_neighbors"]), len(reference))
        nearest = g.op("TopK", distances, g.ints(k), axis=1, largest=0, sorted=1, n_out=2)
        mean = g.op("ReduceMean", nearest, axes=[1], keepdims=0)
        if parts.get("shift") is not None:
            mean = g.op("Sub", mean, g.const(float(parts["shift"])))
        spread = parts.get("spread")
        return g.op("Div", mean, g.const(math.sqrt(n_features) if spread is None else float(spread)))
    if kind == "gmm":  # negative log-likelihood per feature, full-covariance mixture (chols: precision factors)
        mixture, means = np.asarray(parts["weights"], np.float64), np.asarray(parts["means"], np.float64)
        chols = np.asarray(parts["chols"], np.float64)
        constant = np.log(mixture) + np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)
        constant -= 0.5 * n_features * math.log(2 * math.pi)
        centred = g.op("Sub", g.op("Cast", x, to=_double(g)), g.const(means[:, None, :], stem="means"))  # (k, n, d)
        y = g.op("MatMul", centred, g.const(chols, stem="chols"))
        log_p = g.op(
            "Sub",
            g.const(constant[:, None]),
            g.op("Mul", g.op("ReduceSum", g.op("Mul", y, y), g.ints(2), keepdims=0), g.const(0.5)),
        )
        top = g.op("ReduceMax", log_p, axes=[0], keepdims=1)
        total = g.op("ReduceSum", g.op("Exp", g.op("Sub", log_p, top)), g.ints(0), keepdims=0)
        likelihood = g.op("Add", g.op("Squeeze", top, g.ints(0)), g.op("Log", total))
        return g.op("Div", likelihood, g.const(-float(n_features)))
    if kind == "autoencoder":
        weights = [np.asarray(w, np.float32) for w in parts["weights"]]
        h = x
        n_layers = len(weights) // 2
        for i in range(n_layers):
            kernel, bias = g.const(weights[2 * i], stem="kernel"), g.const(weights[2 * i + 1], stem="bias")
            h = g.op("Add", g.op("MatMul", h, kernel), bias)
            if i < n_layers - 1:
                h = g.op("Relu", h)
        diff = g.op("Sub", h, x)
        total = g.op("ReduceSum", g.op("Mul", diff, diff), g.ints(1), keepdims=0)
        error = g.op("Div", total, g.const(np.float32(n_features)))
        return g.op("Cast", error, to=_double(g))
    raise ParameterError(f"unknown exported window score {kind!r}")


def _aggregate(g: _Graph, scores: str, n_windows: int, kind: str, arg: float) -> str:
    """The clip score from window scores, as ``BaseDetector._reduce``; any NaN window gives NaN."""
    if kind == "mean":
        value = g.op("ReduceMean", scores, axes=[0], keepdims=0)
    elif kind == "max":
        value = g.op("ReduceMax", scores, axes=[0], keepdims=0)
    elif kind == "topk":
        top = g.op("TopK", scores, g.ints(min(int(arg), n_windows)), axis=0, largest=1, sorted=1, n_out=2)
        value = g.op("ReduceMean", top, axes=[0], keepdims=0)
    elif kind == "percentile":
        ascending = g.op("TopK", scores, g.ints(n_windows), axis=0, largest=0, sorted=1, n_out=2)
        position = arg / 100.0 * (n_windows - 1)  # numpy's "linear" method, its two-sided lerp
        lo, hi = math.floor(position), math.ceil(position)
        frac = position - lo
        a, b = g.rows(ascending, lo, lo + 1), g.rows(ascending, hi, hi + 1)
        step = g.op("Sub", b, a)
        if frac >= 0.5:
            value = g.op("Sub", b, g.op("Mul", step, g.const(1.0 - frac)))
        else:
            value = g.op("Add", a, g.op("Mul", step, g.const(frac)))
        value = g.op("Squeeze", value, g.ints(0))
    else:
        raise ParameterError(f"aggregate {kind!r} cannot be exported")
    has_nan = g.op(
        "Cast",
        g.op("ReduceMax", g.op("Cast", g.op("IsNaN", scores), to=_double(g)), keepdims=0),
        to=int(g.onnx.TensorProto.BOOL),
    )
    return g.op("Where", has_nan, g.const(np.nan), value)


def build_graph(
    *,
    features: dict[str, Any],
    parts: dict[str, Any],
    n_features: int,
    n_samples: int,
    sr: int,
    aggregate: tuple[str, float],
    offset: float,
    threshold: float,
    metadata: dict[str, str],
) -> Any:
    """The ``onnx.ModelProto``: input ``pcm`` float32 ``(n_samples,)``; outputs ``score`` (float64) and ``label`` (int8)."""
    import onnx

    name = features.get("name")
    if name not in _FRONT_ENDS:
        raise ParameterError(
            f"features {name!r} cannot be exported; exportable: {', '.join(_FRONT_ENDS)} (with their own parameters)"
        )
    g = _Graph()
    x = _FRONT_ENDS[str(name)](g, "pcm", n_samples, features, sr)
    n_windows = _n_windows(features, n_samples)
    window_scores = _window_scores(g, x, parts, n_features)
    score = _aggregate(g, window_scores, n_windows, *aggregate)
    if offset:
        score = g.op("Add", score, g.const(float(offset)))
    g.nodes.append(g.helper.make_node("Identity", [score], ["score"]))
    # results.label_scores: score > threshold, or a non-finite score (NaN, +-inf), is an anomaly
    above = g.op("Or", g.op("Not", g.op("LessOrEqual", "score", g.const(float(threshold)))), g.op("IsInf", "score"))
    g.nodes.append(g.helper.make_node("Cast", [above], ["label"], to=onnx.TensorProto.INT8))
    graph = g.helper.make_graph(
        g.nodes,
        "soundanomaly",
        [g.helper.make_tensor_value_info("pcm", onnx.TensorProto.FLOAT, [n_samples])],
        [
            g.helper.make_tensor_value_info("score", onnx.TensorProto.DOUBLE, []),
            g.helper.make_tensor_value_info("label", onnx.TensorProto.INT8, []),
        ],
        g.initializers,
    )
    model = g.helper.make_model(
        graph, opset_imports=[g.helper.make_opsetid("", OPSET)], producer_name="soundanomaly", ir_version=8
    )
    model.doc_string = "soundanomaly anomaly detector: raw PCM in, score (higher = more anomalous) and label out"
    g.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def _n_windows(features: dict[str, Any], n_samples: int) -> int:
    if features["name"] == "LogMelFrames":
        return 1 + n_samples // int(features["hop_length"]) - int(features["frames"]) + 1
    return 1


def min_samples(features: dict[str, Any]) -> int:
    """Shortest window (samples) the features need."""
    if features["name"] == "LogMelFrames":
        return (int(features["frames"]) - 1) * int(features["hop_length"])
    return int(features["n_fft"])


def dtype_check(array: npt.ArrayLike) -> bool:
    """Whether every value of ``array`` is finite (an exported constant must be)."""
    return bool(np.isfinite(np.asarray(array, dtype=np.float64)).all())
