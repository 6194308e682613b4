"""Speed and memory benchmarks: soundanomaly versus the reference recipe and PyOD's AudioAE.

Everything runs in one process on the same clips, so the printed ratios
compare like with like. Not part of the test suite. Usage::

    nox -s benchmarks                     # or: python benchmarks/run.py
    python benchmarks/run.py --clips 100 --skip-training --skip-pyod   # quick

Sections: (1) per-clip scoring, reference loop vs ours, on one core;
(2) feature extraction alone, librosa per file vs ours, with the largest
numerical difference; (3) PyOD AudioAE time and AUC beside ours; (4) peak
memory scoring 1,000 and 10,000 clips; (5) training 30 epochs on 3,260
clips' worth of windows on every core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

#: The real MIMII clips beside the repository (``../shared/data/mimii-fan``), used when present.
SHARED_MIMII = Path(__file__).resolve().parents[2] / "shared" / "data" / "mimii-fan"
ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pin_one_core() -> None:
    """Pin this process (and BLAS/TF thread pools) to one core before numpy/TF load."""
    os.environ.update(ONE_CORE_ENV)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def timed(fn, *args, repeat: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


# ---- the reference recipe, as written in the blog/notebooks -------------------------------
def reference_load(path: str, channel: int = 0):  # type: ignore[no-untyped-def]
    import librosa
    import numpy as np

    multi_channel, sr = librosa.load(path, sr=None, mono=False)
    signal = np.array(multi_channel)[channel, :] if multi_channel.ndim > 1 else multi_channel
    return signal, sr


def reference_features(signal, sr, n_mels=64, frames=5, n_fft=1024, hop_length=512):  # type: ignore[no-untyped-def]
    import librosa
    import numpy as np

    mel = librosa.feature.melspectrogram(y=signal, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    log_mel = librosa.power_to_db(mel, ref=np.max)
    n = log_mel.shape[1] - frames + 1
    features = np.zeros((n, n_mels * frames), np.float32)
    for t in range(frames):
        features[:, n_mels * t : n_mels * (t + 1)] = log_mel[:, t : t + n].T
    return features


def reference_scores(paths, model):  # type: ignore[no-untyped-def]
    import numpy as np

    scores = []
    for path in paths:
        signal, sr = reference_load(path)
        features = reference_features(signal, sr)
        predictions = model.predict(features, verbose=0)
        scores.append(np.mean(np.mean(np.square(features - predictions), axis=1)))
    return np.array(scores)


# ---- sections --------------------------------------------------------------------------------
def section_scoring(paths: list[str], detector, label: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import numpy as np

    model = detector.to_keras()
    detector.score(paths[:3])  # warm-up
    t_ours, ours = timed(detector.score, paths, repeat=3)  # first: TF's idle threads must not share the core
    reference_scores(paths[:3], model)  # warm-up: numba compilation, TF graph
    t_ref, ref = timed(reference_scores, paths, model)
    rel = float(np.max(np.abs(ours - ref) / ref))
    per_ref, per_ours = 1000 * t_ref / len(paths), 1000 * t_ours / len(paths)
    print(
        f"  [{label}] {len(paths)} clips: reference {per_ref:.2f} ms/clip, soundanomaly {per_ours:.2f} ms/clip, "
        f"ratio {t_ref / t_ours:.1f}x; max relative score difference {rel:.1e}"
    )
    return {"reference_ms": per_ref, "ours_ms": per_ours, "ratio": t_ref / t_ours, "max_rel_diff": rel}


def section_features(paths: list[str], label: str) -> dict[str, float]:
    import numpy as np

    from soundanomaly.features import LogMelFrames

    def librosa_all() -> list[np.ndarray]:
        return [reference_features(*reference_load(p)) for p in paths]

    extractor = LogMelFrames()
    librosa_all() if len(paths) < 3 else [reference_features(*reference_load(p)) for p in paths[:3]]
    extractor.extract(paths[:3], progress=False)
    t_ref, ref = timed(librosa_all)
    t_ours, ours = timed(extractor.extract, paths, progress=False, repeat=3)
    diff = max(float(np.max(np.abs(ours.clip(i) - r))) for i, r in enumerate(ref))
    print(
        f"  [{label}] librosa {1000 * t_ref / len(paths):.2f} ms/clip, soundanomaly {1000 * t_ours / len(paths):.2f} "
        f"ms/clip, ratio {t_ref / t_ours:.1f}x; max |difference| {diff:.1e} dB"
    )
    return {
        "librosa_ms": 1000 * t_ref / len(paths),
        "ours_ms": 1000 * t_ours / len(paths),
        "ratio": t_ref / t_ours,
        "max_abs_diff_db": diff,
    }


def section_pyod(train: list[str], test: list[str], test_labels, ours_detector_factory) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from soundanomaly.evaluation import roc_auc

    try:
        from pyod.models.audio_ae import AudioAE
    except ImportError as exc:
        print(f"  PyOD AudioAE not available ({exc}); install pyod and torch==2.13.0")
        return {}
    pyod = AudioAE(sr=16000)  # its default resamples to 22,050 Hz; MIMII is 16 kHz
    try:
        t_fit_p, _ = timed(pyod.fit, train)
    except ImportError as exc:  # its deep models import torch and tqdm only here
        print(f"  PyOD AudioAE cannot train ({exc}); install torch==2.13.0 and tqdm")
        return {}
    t_score_p, pyod_scores = timed(pyod.decision_function, test)
    ours = ours_detector_factory()
    t_fit_o, _ = timed(ours.fit, train)
    t_score_o, our_scores = timed(ours.score, test)
    auc_p, auc_o = roc_auc(test_labels, pyod_scores), roc_auc(test_labels, our_scores)
    print(
        f"  PyOD AudioAE (40 epochs, 320-128-32-8): fit {t_fit_p:.1f} s, score {1000 * t_score_p / len(test):.2f} "
        f"ms/clip, AUC {auc_p:.3f}"
    )
    print(
        f"  soundanomaly AutoencoderDetector (30 epochs, 64-64-8-64-64): fit {t_fit_o:.1f} s, score "
        f"{1000 * t_score_o / len(test):.2f} ms/clip, AUC {auc_o:.3f}"
    )
    return {
        "pyod_fit_s": t_fit_p,
        "pyod_score_ms": 1000 * t_score_p / len(test),
        "pyod_auc": auc_p,
        "ours_fit_s": t_fit_o,
        "ours_score_ms": 1000 * t_score_o / len(test),
        "ours_auc": auc_o,
    }


# Peak RSS is read from /proc/self/status (VmHWM): ru_maxrss survives exec on Linux and
# would report the parent's peak (it has TensorFlow loaded).
MEMORY_CHILD = """
import sys, itertools, time
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from soundanomaly.detectors import load_model as load
detector = load(sys.argv[1])
paths = [l.strip() for l in open(sys.argv[2])]
n = int(sys.argv[3])
detector.score(paths[:2])  # imports and first-call set-up
base = peak_kib()
start = time.perf_counter()
if n:
    scores = detector.score(list(itertools.islice(itertools.cycle(paths), n)))
    assert len(scores) == n
print(peak_kib(), base, time.perf_counter() - start)
"""


def section_memory(model_dir: Path, paths: list[str], counts: list[int]) -> dict[str, float]:
    listing = model_dir.parent / "paths.txt"
    listing.write_text("\n".join(paths))
    out: dict[str, float] = {}
    for n in counts:
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(model_dir), str(listing), str(n)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **ONE_CORE_ENV},
        )
        peak_kb, _base_kb, seconds = result.stdout.split()
        out[f"peak_mib_{n}"] = int(peak_kb) / 1024
        rate = f", {1000 * float(seconds) / n:.2f} ms/clip" if n else ""
        print(f"  scoring {n:>6} clips: peak RSS {int(peak_kb) / 1024:.0f} MiB{rate}")
    return out


def section_training(features, n_clips: int = 3260) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import numpy as np

    from soundanomaly.detectors import AutoencoderDetector
    from soundanomaly.features import ClipFeatures

    per_clip = features.windows.shape[0] // len(features)
    reps = int(np.ceil(n_clips / len(features)))
    windows = np.tile(features.windows, (reps, 1))[: n_clips * per_clip]
    tiled = ClipFeatures(windows, np.arange(0, len(windows) + 1, per_clip, dtype=np.int64)[: n_clips + 1])
    detector = AutoencoderDetector(epochs=30, batch_size=512)
    t, _ = timed(detector.fit, tiled)
    print(f"  30 epochs on {n_clips} clips ({len(windows):,} windows, batch 512): {t:.0f} s on {os.cpu_count()} cores")
    return {"train_30_epochs_s": t, "windows": len(windows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200, help="synthetic clips scored (default 200)")
    parser.add_argument("--skip-pyod", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--training-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Training runs on every core (section 5); everything else on one. Run training in a child first.
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    from soundanomaly.datasets import MIMII, autoencoder_split
    from soundanomaly.demo import synthetic_default

    per_id = max(4, args.clips // 4)
    root = synthetic_default(progress=True, n_normal=per_id, n_abnormal=max(2, per_id // 3))
    clips = MIMII(root)
    split = autoencoder_split(clips, seed=0)
    from soundanomaly.features import LogMelFrames

    train_features = LogMelFrames().extract(split.train.paths, progress=False)
    if args.training_only:
        print("json=" + json.dumps(section_training(train_features)))
        return 0
    if not args.skip_training:
        # TensorFlow's thread pools are fixed at first use, so training runs in a child process.
        print("(5) training on every core")
        child = subprocess.run(
            [sys.executable, __file__, "--training-only", "--clips", str(args.clips)], text=True, capture_output=True
        )
        print(child.stdout.strip() or child.stderr[-2000:])
        if child.returncode == 0:
            results["training"] = json.loads(child.stdout.strip().splitlines()[-1].split("json=")[1])

    pin_one_core()
    from soundanomaly.detectors import AutoencoderDetector

    detector = AutoencoderDetector(epochs=5).fit(train_features)
    paths = clips.paths[: args.clips]
    print("(1) end-to-end scoring on one core (decode + features + autoencoder + per-clip score)")
    results["scoring_synthetic"] = section_scoring(paths, detector, "synthetic mono")
    real = sorted(str(p) for p in SHARED_MIMII.rglob("*.wav")) if SHARED_MIMII.is_dir() else []
    if real:
        results["scoring_mimii"] = section_scoring(real, detector, "real MIMII 8-channel")
    print("(2) feature extraction alone, one core")
    results["features_synthetic"] = section_features(paths, "synthetic mono")
    if real:
        results["features_mimii"] = section_features(real, "real MIMII 8-channel")
    if not args.skip_pyod:
        print("(3) PyOD AudioAE beside soundanomaly, same clips, one core")
        results["pyod"] = section_pyod(
            split.train.paths, split.test.paths, split.test.labels, lambda: AutoencoderDetector(epochs=30)
        )
    if not args.skip_memory:
        print("(4) peak memory scoring many clips (paths cycled over the synthetic set), one core")
        model_dir = detector.save(Path(os.environ.get("TMPDIR", "/tmp")) / "soundanomaly-bench" / "model")
        results["memory"] = section_memory(model_dir, clips.paths, [0, 1000, 10000])
    print("targets (issue #7)")
    for line in target_lines(results):
        print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def target_lines(results: dict[str, object]) -> list[str]:
    """One line per target of the performance issue: measured value, target, met or not."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = []
    for key in ("scoring_synthetic", "scoring_mimii"):
        r = results.get(key)
        if isinstance(r, dict):
            ok = r["ours_ms"] <= 3.3 and r["ratio"] >= 20
            lines.append(f"{key}: {r['ours_ms']:.2f} ms/clip, {r['ratio']:.1f}x (<= 3.3 ms, >= 20x): {verdict(ok)}")
    for key in ("features_synthetic", "features_mimii"):
        r = results.get(key)
        if isinstance(r, dict):
            ok = r["ratio"] >= 3 and r["max_abs_diff_db"] <= 1e-4
            lines.append(
                f"{key}: {r['ratio']:.2f}x librosa, max diff {r['max_abs_diff_db']:.1e} dB (>= 3x, <= 1e-4 dB): "
                f"{verdict(ok)}"
            )
    memory = results.get("memory")
    if isinstance(memory, dict) and "peak_mib_1000" in memory and "peak_mib_10000" in memory:
        growth = memory["peak_mib_10000"] - memory["peak_mib_1000"]
        lines.append(f"memory: +{growth:.0f} MiB from 1,000 to 10,000 clips (flat: < 50 MiB): {verdict(growth < 50)}")
    training = results.get("training")
    if isinstance(training, dict):
        t = training["train_30_epochs_s"]
        lines.append(f"training: {t:.0f} s for 30 epochs (<= 300 s): {verdict(t <= 300)}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
