"""The microcontroller path: a TFLite flatbuffer of the model part and a C header for TFLite Micro.

The flatbuffer takes stacked log-mel vectors (``(1, n_mels * frames)``, the
``LogMelFrames`` features, dB re the window's loudest bin) and gives each
vector's score; the device averages them over a window as the library does.
``int8=True`` quantises every operator to int8 (input and output int8 too),
calibrated on training windows. The C header carries the bytes, the mel
filterbank (sparse rows), the window and every constant the front end needs.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["build_tflite", "c_header", "calibration_windows", "tflite_interpreter", "tflite_scores"]

#: Most training windows used to calibrate int8 quantisation.
MAX_CALIBRATION_WINDOWS = 2000
_MARK = "soundanomaly_score"


def _check(plan: Any) -> None:
    if plan.features.get("name") != "LogMelFrames":
        raise ParameterError(
            f"TFLite export takes LogMelFrames features (a microcontroller computes log-mel frames), "
            f"not {plan.features.get('name')!r}; export to ONNX instead"
        )
    kind = plan.parts["kind"]
    if kind not in ("autoencoder", "mahalanobis") or plan.parts.get("centre") is not None:
        why = "TFLite Micro has no top-k operator for the nearest-neighbour search" if kind == "knn" else ""
        raise ParameterError(
            f"{type(plan.detector).__name__} ({kind}) cannot be exported to TFLite: the microcontroller path holds "
            f"the autoencoder and single-Gaussian (Mahalanobis) models{'; ' + why if why else ''}; export to ONNX"
        )


def _score_module(plan: Any) -> Any:
    """A ``tf.Module`` whose ``score`` maps ``(1, d)`` float32 vectors to ``(1,)`` scores, the detector's math."""
    import tensorflow as tf

    d = plan.n_features
    parts = plan.parts

    class Scorer(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="soundanomaly")
            if parts["kind"] == "autoencoder":
                self.layers = [tf.constant(np.asarray(w, np.float32)) for w in parts["weights"]]
            else:
                scale = parts.get("scale")
                inverse = np.ones(d) if scale is None else 1.0 / np.asarray(scale, np.float64)
                self.mean = tf.constant(np.asarray(parts["mean"], np.float32))
                self.inverse = tf.constant(inverse.astype(np.float32))
                self.precision = tf.constant(np.asarray(parts["precision"], np.float32) / np.float32(d))

        @tf.function(input_signature=[tf.TensorSpec([1, d], tf.float32, name="features")])  # type: ignore[untyped-decorator]
        def score(self, x: Any) -> Any:
            if parts["kind"] == "autoencoder":
                h = x
                n = len(self.layers) // 2
                for i in range(n):
                    h = tf.matmul(h, self.layers[2 * i]) + self.layers[2 * i + 1]
                    if i < n - 1:
                        h = tf.nn.relu(h)
                value = tf.reduce_mean(tf.square(h - x), axis=1)
            else:
                z = (x - self.mean) * self.inverse
                value = tf.reduce_sum(tf.matmul(z, self.precision) * z, axis=1)
            return {_MARK: value}

    return Scorer()


def calibration_windows(plan: Any, data: Any, *, seed: int = 0) -> npt.NDArray[np.float32]:
    """Up to :data:`MAX_CALIBRATION_WINDOWS` feature windows of ``data`` (clips, a ClipSet or ClipFeatures), seeded."""
    from soundanomaly.features.base import ClipFeatures

    if isinstance(data, ClipFeatures):
        windows = data.windows
    else:
        paths = [str(p) for p in data] if not hasattr(data, "paths") else [str(p) for p in data.paths]
        channel = plan.detector.channel
        windows = plan.detector.features.extract(paths, channel=channel).windows
    if windows.ndim != 2 or windows.shape[1] != plan.n_features:
        raise ParameterError(f"calibration windows must have {plan.n_features} features, got shape {windows.shape}")
    rng = np.random.default_rng(seed)
    if len(windows) > MAX_CALIBRATION_WINDOWS:
        windows = windows[np.sort(rng.choice(len(windows), MAX_CALIBRATION_WINDOWS, replace=False))]
    return np.ascontiguousarray(windows, dtype=np.float32)


def _training_clips(plan: Any, model_clips: list[Any]) -> list[str]:
    import os

    return [str(c[0]) for c in model_clips if isinstance(c, (list, tuple)) and c and os.path.isfile(str(c[0]))]


def build_tflite(plan: Any, *, int8: bool = False, calibration: Any = None) -> bytes:
    """The flatbuffer bytes; ``int8`` needs calibration windows (``calibration`` or the model's training clips)."""
    _check(plan)
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from soundanomaly.exceptions import MissingDependencyError

        raise MissingDependencyError("tensorflow", "tf", "TFLite export") from exc

    module = _score_module(plan)
    function = module.score.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], module)
    if int8:
        if calibration is None:
            clips = _training_clips(plan, getattr(plan.detector, "training_clips_", []) or [])
            if not clips:
                raise ParameterError(
                    "int8 quantisation is calibrated on training windows: the model's training clips are not "
                    "readable here; pass calibration= (normal clips or ClipFeatures)"
                )
            calibration = clips
        windows = calibration_windows(plan, calibration)

        def representative() -> Any:
            for row in windows:
                yield [row[None, :]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def tflite_interpreter(data: bytes) -> Any:
    """The LiteRT interpreter (``ai-edge-litert``) when installed, else TensorFlow's deprecated ``tf.lite`` one."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated": LiteRT replaces it
            return tf.lite.Interpreter(model_content=data, num_threads=1)
    return Interpreter(model_content=data, num_threads=1)


def tflite_scores(data: bytes, windows: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-window scores of a TFLite export (dequantised for int8), one inference per window."""
    x = np.asarray(windows, dtype=np.float32)
    interpreter = tflite_interpreter(data)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = source["quantization"]
    out_scale, out_zero = target["quantization"]
    out = np.empty(len(x), dtype=np.float64)
    for i, row in enumerate(x):
        value = row[None, :]
        if source["dtype"] == np.int8:
            value = np.clip(np.round(value / in_scale + in_zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], value)
        interpreter.invoke()
        result = interpreter.get_tensor(target["index"]).astype(np.float64)
        out[i] = float(((result - out_zero) * out_scale if target["dtype"] == np.int8 else result).reshape(-1)[0])
    return out


def _c_float(value: float) -> str:
    """A C ``float`` literal that round-trips float32 (``0.0f``, never the invalid ``0f``)."""
    text = f"{float(value):.9g}"
    if not np.isfinite(value):
        raise ParameterError(f"non-finite constant {value!r} cannot go into a C header")
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _c_array(values: npt.ArrayLike, fmt: str, per_line: int = 12) -> str:
    convert = _c_float if fmt == "float" else fmt.format
    items = [convert(v) for v in np.asarray(values).reshape(-1).tolist()]
    return ",\n".join("    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))


def c_header(plan: Any, data: bytes, *, int8: bool) -> str:
    """A C header with the model bytes, the mel filterbank, the Hann window and the front end's constants."""
    from soundanomaly import __version__
    from soundanomaly.features.logmel import mel_basis

    _check(plan)
    f = plan.features
    n_fft, hop, n_mels, frames = int(f["n_fft"]), int(f["hop_length"]), int(f["n_mels"]), int(f["frames"])
    basis = np.asarray(mel_basis(plan.sr, n_fft, n_mels), dtype=np.float32)
    first, count, weights = [], [], []
    for row in basis:
        nonzero = np.flatnonzero(row)
        lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)
        first.append(lo)
        count.append(hi - lo)
        weights.extend(row[lo:hi].tolist())
    from soundanomaly.features.logmel import hann_window

    quant = ""
    if int8:
        interpreter = tflite_interpreter(data)
        (in_scale, in_zero), (out_scale, out_zero) = (
            interpreter.get_input_details()[0]["quantization"],
            interpreter.get_output_details()[0]["quantization"],
        )
        quant = (
            f"#define SA_INPUT_SCALE {_c_float(in_scale)}\n#define SA_INPUT_ZERO_POINT {int(in_zero)}\n"
            f"#define SA_OUTPUT_SCALE {_c_float(out_scale)}\n#define SA_OUTPUT_ZERO_POINT {int(out_zero)}\n"
        )
    stamp = datetime.date.today().isoformat()
    return f"""/* soundanomaly export: {plan.metadata["detector"]} ({"int8" if int8 else "float32"}), soundanomaly {__version__}, {stamp}.
 * Front end (reproduce it exactly): mono PCM at SA_SAMPLE_RATE scaled to [-1, 1); frames of SA_N_FFT samples every
 * SA_HOP_LENGTH, centred (frame i starts at i * SA_HOP_LENGTH - SA_N_FFT / 2, zeros outside the window);
 * times sa_hann_window; power spectrum |rfft|^2; mel band b = sum of sa_mel_weights over bins
 * sa_mel_first_bin[b] .. + sa_mel_n_bins[b]; dB = 10 * log10(max(mel, SA_AMIN)); subtract the window's largest dB;
 * floor at -SA_TOP_DB; stack SA_FRAMES consecutive frames (frame-major) into SA_N_FEATURES values; score each
 * vector with sa_model; the window's score is the mean of its vectors' scores; anomaly if score > SA_THRESHOLD.
 * Training data fingerprint: {plan.metadata["training_fingerprint"]}. Generated file: do not edit.
 */
#ifndef SOUNDANOMALY_MODEL_H
#define SOUNDANOMALY_MODEL_H

#include <stdint.h>

#define SA_SAMPLE_RATE {plan.sr}
#define SA_WINDOW_SAMPLES {plan.window_samples}
#define SA_N_FFT {n_fft}
#define SA_HOP_LENGTH {hop}
#define SA_N_MELS {n_mels}
#define SA_FRAMES {frames}
#define SA_N_FEATURES {plan.n_features}
#define SA_AMIN 1e-10f
#define SA_TOP_DB 80.0f
#define SA_THRESHOLD {_c_float(plan.threshold - plan.offset)}
{quant}
static const uint16_t sa_mel_first_bin[SA_N_MELS] = {{
{_c_array(first, "{}")}
}};
static const uint16_t sa_mel_n_bins[SA_N_MELS] = {{
{_c_array(count, "{}")}
}};
static const float sa_mel_weights[{len(weights)}] = {{
{_c_array(np.asarray(weights, np.float32), "float", 8)}
}};
static const float sa_hann_window[SA_N_FFT] = {{
{_c_array(np.asarray(hann_window(n_fft)), "float", 8)}
}};
static const unsigned int sa_model_len = {len(data)};
static const unsigned char sa_model[{len(data)}] __attribute__((aligned(16))) = {{
{_c_array(np.frombuffer(data, dtype=np.uint8), "0x{:02x}", 16)}
}};

#endif /* SOUNDANOMALY_MODEL_H */
"""
