"""Edge benchmark (#25): parity, int8 quality, artifact sizes, latency, install size and memory of the edge runtime.

Measures, in one run on one core (``sched_setaffinity``, one thread everywhere):

* **parity** on the 14 real MIMII fan clips (``../shared/data/mimii-fan``,
  skipped when absent): ONNX Runtime scores of the exported file against the
  library's scores, max relative difference, for each exportable detector;
* **int8 quality**: AUC of the float library model, the float TFLite and the
  int8 TFLite model part on a synthetic quality set with a **frozen seed**
  (never tuned against): fan id 0 at 6 dB, the four fault types;
* **sizes**: ONNX files, TFLite float/int8, the C header; a flash/RAM estimate
  for a microcontroller (model + mel filterbank + window; tensor arena +
  the window's log-mel buffer + FFT buffer);
* **latency** (CPU time, median) per 10 s window and per 1 s hop: the exported file in ONNX
  Runtime (1 thread) beside the library's own scoring of the same audio
  (features + detector; and its incremental ``Monitor`` for the hop), and the
  TFLite model part (LiteRT interpreter, 309 vectors of one window);
* **edge runtime**: installed size of a fresh venv with only ``numpy``,
  ``onnxruntime`` and this package (``--no-deps``) against the library's own
  dependency closure, and peak RSS scoring a 10 s WAV in each;
* the **MLPerf Tiny** anomaly-detection reference figures beside ours.

Not part of the test suite. Usage::

    python benchmarks/edge.py                  # writes benchmarks/results/edge.json
    python benchmarks/edge.py --quick          # fewer clips and repeats
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
import wave
from pathlib import Path
from typing import Any

ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(ONE_CORE_ENV)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "mimii-fan"
SR = 16000
FROZEN_SEED = 2025  # the quality set's seed: chosen once, never tuned against
MLPERF_TINY = {
    "model": "dense autoencoder on 5 x 128 log-mel frames (ToyADMOS ToyCar)",
    "parameters": 270_000,
    "auc_target": 0.85,
    "auc_reference_float": 0.864,
    "latency_ms_cortex_m33": 9.45,
    "latency_ms_with_npu": 4.17,
}
TARGETS = {"parity_rtol": 1e-4, "int8_auc_drop": 0.01, "ae_int8_bytes": 300_000, "window_ms": 5.0, "rss_mb": 100.0}


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm up
    return float(np.median([_timed(fn) for _ in range(repeats)]) * 1e3)


def _interleaved_ms(first: Any, second: Any, repeats: int) -> tuple[float, float]:
    """Median times of two calls taken in turn (a shared machine's load hits both alike)."""
    first(), second()
    times = np.empty((repeats, 2))
    for i in range(repeats):
        times[i] = _timed(first), _timed(second)
    return float(np.median(times[:, 0]) * 1e3), float(np.median(times[:, 1]) * 1e3)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
        handle.writeframes(np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes())
    return path


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity_real(tmp: Path, epochs: int) -> dict[str, Any]:
    """Max relative difference, ONNX against the library, on the 14 real clips (6 normal train every model)."""
    import soundfile

    from soundanomaly.detectors import AutoencoderDetector, ClipStatsDetector, GaussianDetector
    from soundanomaly.export import save_onnx

    if not REAL.is_dir():
        return {"skipped": f"no real clips at {REAL}"}
    paths = sorted(str(p) for p in REAL.rglob("*.wav"))
    normal = [p for p in paths if "/normal/" in p]
    pcm = [np.ascontiguousarray(soundfile.read(p, dtype="float32", always_2d=True)[0][:, 0]) for p in paths]
    detectors = {
        "gaussian": GaussianDetector(threshold=1.0, holdout=0.0),
        "autoencoder": AutoencoderDetector(threshold=1.0, holdout=0.0, epochs=epochs),
        "clipstats-knn": ClipStatsDetector(threshold=1.0, holdout=0.0, n_neighbors=2),
        "clipstats-mahalanobis": ClipStatsDetector(method="mahalanobis", threshold=1.0, holdout=0.0),
    }
    out: dict[str, Any] = {"clips": len(paths)}
    for name, detector in detectors.items():
        detector.fit(normal)
        expected = detector.score(paths)
        session = _session(save_onnx(detector, tmp / f"{name}.onnx", force=True))
        got = np.array([float(session.run(["score"], {"pcm": x})[0]) for x in pcm])
        out[name] = {"max_rel_diff": float(np.max(np.abs(got - expected) / np.abs(expected)))}
        print(f"parity {name:24s} max relative difference {out[name]['max_rel_diff']:.2e} on {len(paths)} real clips")
    return out


def quality_set(n_train: int, n_test: int) -> dict[str, Any]:
    from soundanomaly.datasets.synthetic import generate_clip
    from soundanomaly.features import ClipFeatures, LogMelFrames

    features = LogMelFrames()

    def clips(first: int, n: int, anomaly: str | None = None) -> list[np.ndarray]:
        return [
            generate_clip(0, anomaly=anomaly, snr=6.0, seed=FROZEN_SEED, clip_index=first + i, severity=0.5)
            for i in range(n)
        ]

    kinds = ["imbalance", "voltage_change", "clogging", "bearing_wear"]
    abnormal = [c for j, kind in enumerate(kinds) for c in clips(10_000 + 1000 * j, max(1, n_test // len(kinds)), kind)]
    sets = {"train": clips(0, n_train), "normal": clips(5000, n_test), "abnormal": abnormal}
    return {
        name: (ClipFeatures.from_arrays([features.transform(c, SR) for c in raw], params=features.params()), raw)
        for name, raw in sets.items()
    }


def _auc(normal: np.ndarray, abnormal: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([0] * len(normal) + [1] * len(abnormal), np.concatenate([normal, abnormal])))


def int8_quality(data: dict[str, Any], epochs: int, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """AUC float (library) / float TFLite / int8 TFLite, and the fitted models."""
    from soundanomaly.detectors import AutoencoderDetector, GaussianDetector
    from soundanomaly.export import tflite_scores, to_tflite

    train, normal, abnormal = data["train"][0], data["normal"][0], data["abnormal"][0]
    models = {
        "autoencoder": AutoencoderDetector(epochs=epochs).fit(train),
        "gaussian": GaussianDetector().fit(train),
    }
    out: dict[str, Any] = {"seed": FROZEN_SEED, "normal": len(normal), "abnormal": len(abnormal)}
    for name, detector in models.items():
        row: dict[str, Any] = {"auc_library": _auc(detector.score(normal), detector.score(abnormal))}
        for label, int8 in (("float", False), ("int8", True)):
            model = to_tflite(detector, int8=int8, calibration=train)
            (tmp / f"{name}-{label}.tflite").write_bytes(model)
            scores = [s.mean_per_clip(tflite_scores(model, s.windows)) for s in (normal, abnormal)]
            row[f"auc_tflite_{label}"] = _auc(*scores)
            row[f"bytes_tflite_{label}"] = len(model)
        row["auc_drop_int8"] = row["auc_tflite_float"] - row["auc_tflite_int8"]
        out[name] = row
        print(
            f"quality {name:12s} AUC library {row['auc_library']:.3f}  TFLite float {row['auc_tflite_float']:.3f}  "
            f"int8 {row['auc_tflite_int8']:.3f}  ({row['bytes_tflite_int8'] / 1e3:.0f} kB int8)"
        )
    return out, models


def sizes(models: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from soundanomaly.export import c_header, plan, save_onnx, tflite_interpreter
    from soundanomaly.features.logmel import mel_basis

    out: dict[str, Any] = {}
    for name, detector in models.items():
        onnx_path = save_onnx(detector, tmp / f"{name}.onnx", force=True)
        int8 = (tmp / f"{name}-int8.tflite").read_bytes()
        header = c_header(plan(detector), int8, int8=True)
        interpreter = tflite_interpreter(int8)
        interpreter.allocate_tensors()
        arena = _activation_bytes(interpreter)  # upper bound: every activation alive at once
        mel_bytes = int(np.count_nonzero(mel_basis(SR, 1024, 64))) * 4 + 64 * 4
        out[name] = {
            "onnx_bytes": onnx_path.stat().st_size,
            "tflite_int8_bytes": len(int8),
            "c_header_bytes": len(header.encode()),
            "parameters": int(sum(np.asarray(v).size for v in _parameter_arrays(detector))),
            "mcu_flash_bytes": len(int8) + mel_bytes + 1024 * 4,
            "mcu_ram_bytes": arena + 313 * 64 * 4 + 1024 * 4 * 2,
            "tensor_arena_upper_bytes": arena,
        }
        print(
            f"sizes {name:12s} ONNX {out[name]['onnx_bytes'] / 1e3:.0f} kB, TFLite int8 {len(int8) / 1e3:.0f} kB, "
            f"MCU flash ~{out[name]['mcu_flash_bytes'] / 1e3:.0f} kB, RAM ~{out[name]['mcu_ram_bytes'] / 1e3:.0f} kB"
        )
    return out


def _activation_bytes(interpreter: Any) -> int:
    """Bytes of the graph's input and of every operator's output (the tensor arena holds these, not the weights)."""
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    active = {d["index"] for d in interpreter.get_input_details()}
    for op in interpreter._get_ops_details():
        active.update(int(i) for i in op["outputs"])
    return sum(
        int(np.prod(details[i]["shape"])) * np.dtype(details[i]["dtype"]).itemsize for i in active if i in details
    )


def _parameter_arrays(detector: Any) -> list[Any]:
    from soundanomaly.export import plan

    parts = plan(detector).parts
    return [
        v for key, v in parts.items() if key != "kind" for v in (v if isinstance(v, list) else [v]) if v is not None
    ]


def latency(models: dict[str, Any], data: dict[str, Any], tmp: Path, repeats: int) -> dict[str, Any]:
    clip = np.ascontiguousarray(data["normal"][1][0], dtype=np.float32)
    return {name: _latency_one(name, detector, clip, tmp, repeats) for name, detector in models.items()}


def _latency_one(name: str, detector: Any, clip: np.ndarray, tmp: Path, repeats: int) -> dict[str, Any]:
    from soundanomaly.edge import EdgeModel, EdgeMonitor
    from soundanomaly.export import tflite_interpreter
    from soundanomaly.features import ClipFeatures, LogMelFrames
    from soundanomaly.monitor import Monitor

    features = LogMelFrames()
    edge = EdgeModel(tmp / f"{name}.onnx")
    onnx_ms, library_ms = _interleaved_ms(
        lambda: edge.score_window(clip),
        lambda: detector.score(ClipFeatures.from_arrays([features.transform(clip, SR)], params=features.params())),
        repeats,
    )
    stream = np.concatenate([clip] * 3)
    hops = [stream[10 * SR + i * SR : 11 * SR + i * SR] for i in range(min(repeats, 20))]
    monitor = Monitor(detector, window_seconds=10.0, hop_seconds=1.0)
    monitor.push(stream[: 10 * SR], SR)
    monitor_ms = float(np.median([_timed(monitor.push, h, SR) for h in hops]) * 1e3)
    runner = EdgeMonitor(edge, hop_seconds=1.0)
    runner.push(stream[: 10 * SR])
    edge_hop_ms = float(np.median([_timed(runner.push, h) for h in hops]) * 1e3)
    interpreter = tflite_interpreter((tmp / f"{name}-int8.tflite").read_bytes())
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    vector = np.zeros(source["shape"], dtype=source["dtype"])

    def invoke() -> None:
        interpreter.set_tensor(source["index"], vector)
        interpreter.invoke()

    per_vector_ms = _median_ms(invoke, repeats * 20)
    print(
        f"latency {name:12s} 10 s window: ONNX {onnx_ms:.2f} ms vs library {library_ms:.2f} ms "
        f"(x{onnx_ms / library_ms:.2f}); 1 s hop: edge {edge_hop_ms:.2f} ms vs Monitor {monitor_ms:.2f} ms; "
        f"TFLite int8 {per_vector_ms * 1e3:.1f} us/vector"
    )
    return {
        "onnx_window_ms": onnx_ms,
        "library_window_ms": library_ms,
        "onnx_hop_ms": edge_hop_ms,
        "library_monitor_hop_ms": monitor_ms,
        "tflite_int8_vector_ms": per_vector_ms,
        "tflite_int8_window_ms": per_vector_ms * 309,
        "onnx_over_library": onnx_ms / library_ms,
    }


def _timed(fn: Any, *args: Any) -> float:
    """CPU seconds of one call (``process_time``: time spent waiting for a shared core does not count)."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


_RSS_CODE = """
import json, sys, time
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]  # ru_maxrss survives exec
print(json.dumps({{"rss_mb": int(peak[0].split()[1]) / 1e3, "seconds": seconds, "modules": len(sys.modules)}}))
"""


def runtime_footprint(tmp: Path, models: dict[str, Any], clip: np.ndarray) -> dict[str, Any]:
    """A fresh venv with numpy + onnxruntime + this package (--no-deps): size on disk and peak RSS, against the library."""
    import shutil

    wav = _write_wav(tmp / "clip.wav", clip)
    source = tmp / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "wheel"), str(source)], check=True
    )
    env_dir = tmp / "edge-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    versions = [f"{n}=={__import__(n).__version__}" for n in ("numpy", "onnxruntime")]
    subprocess.run([*pip, *versions], check=True)
    subprocess.run([*pip, "--no-deps", *map(str, (tmp / "wheel").glob("*.whl"))], check=True)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    tooling = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
    edge_bytes = sum(
        f.stat().st_size
        for f in site.rglob("*")
        if f.is_file() and not f.relative_to(site).parts[0].startswith(tooling)
    )
    gaussian = tmp / "gaussian.onnx"
    edge_body = f"from soundanomaly import edge\nedge.score_file(edge.EdgeModel({str(gaussian)!r}), {str(wav)!r})"
    edge_run = json.loads(
        subprocess.run(
            [python, "-c", _RSS_CODE.format(body=edge_body)], capture_output=True, text=True, check=True, cwd=tmp
        ).stdout
    )
    folder = models["gaussian"].save(tmp / "gaussian-model", overwrite=True)
    lib_body = f"import soundanomaly\nsoundanomaly.load_model({str(folder)!r}).score([{str(wav)!r}])"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    lib_run = json.loads(
        subprocess.run(
            [sys.executable, "-c", _RSS_CODE.format(body=lib_body)], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    library_bytes = _closure_bytes(
        ["numpy", "scipy", "librosa", "soundfile", "soxr", "scikit-learn", "matplotlib", "pillow", "tqdm"]
    )
    out = {
        "edge_install_mb": edge_bytes / 1e6,
        "library_core_install_mb": library_bytes / 1e6,
        "edge_rss_mb": edge_run["rss_mb"],
        "library_rss_mb": lib_run["rss_mb"],
        "edge_cold_start_s": edge_run["seconds"],
        "library_cold_start_s": lib_run["seconds"],
    }
    print(
        f"runtime: install {out['edge_install_mb']:.0f} MB (library core deps {out['library_core_install_mb']:.0f} MB); "
        f"peak RSS scoring a 10 s WAV {out['edge_rss_mb']:.0f} MB (library {out['library_rss_mb']:.0f} MB); "
        f"cold start {out['edge_cold_start_s']:.2f} s (library {out['library_cold_start_s']:.2f} s)"
    )
    return out


def _closure_bytes(roots: list[str]) -> int:
    """Installed bytes of distributions ``roots`` and everything they require (extras left out)."""
    import importlib.metadata as md
    import re

    seen: set[str] = set()
    todo = list(roots)
    total = 0
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        total += sum((f.size or 0) for f in dist.files or [])
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer clips, epochs and repeats")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "edge.json"))
    args = parser.parse_args()
    n_train, n_test, epochs, repeats = (16, 12, 10, 10) if args.quick else (40, 24, 30, 30)
    results: dict[str, Any] = {"targets": TARGETS, "mlperf_tiny": MLPERF_TINY, "machine": os.uname().machine}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        results["parity_real_clips"] = parity_real(tmp, epochs)
        data = quality_set(n_train, n_test)
        results["int8_quality"], models = int8_quality(data, epochs, tmp)
        results["sizes"] = sizes(models, tmp)
        results["latency_one_core"] = latency(models, data, tmp, repeats)
        results["edge_runtime"] = runtime_footprint(tmp, models, data["normal"][1][0])
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
