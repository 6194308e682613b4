"""Streaming benchmark: real-time factor, latency and memory of :class:`soundanomaly.monitor.Monitor`.

Streams ``--hours`` (default 10) of synthetic fan audio through a monitor in
0.1 s blocks, on one core, for the Gaussian and the autoencoder detector, and
reports:

* **real-time factor**: seconds of audio processed per second of CPU time
  (``time.process_time``: on a shared machine, time spent waiting for the
  core does not count; the wall-clock figure is printed too);
  batch scoring of the same audio cut into 10 s clips (features + scoring,
  no file reading) is measured alongside, on the same core at the same time,
  because a shared machine's numbers drift;
* **latency**: compute time of the ``push`` that completes a window (the
  delay between a window's last sample arriving and its score), p50/p99/max,
  against the hop;
* **memory**: resident set size after 1 hour and at the end of the stream
  (flat = the same), and the highest one sampled, in a fresh process that
  loads the saved model without TensorFlow.

With ``--reference-src DIR`` (the ``src`` folder of another checkout, e.g.
``git archive c91f061 src | tar -x -C /tmp/ref``) it instead compares the
Gaussian monitor's stream real-time factor of that code and of this one, in
alternating fresh processes on the same core (each fits the same model with
its own code), and prints best, median and their ratio: the before/after
check of a refactoring, robust to a shared machine's drift.

Not part of the test suite. Usage::

    python benchmarks/monitor.py                 # 10 h per detector
    python benchmarks/monitor.py --hours 1 --skip-autoencoder
    python benchmarks/monitor.py --reference-src /tmp/ref/src --hours 0.5 --rounds 6
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(ONE_CORE_ENV)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import numpy as np  # noqa: E402

SR = 16000
TARGET_RTF = 3000.0
TARGET_MEMORY_MB = 300.0


def rss_mb() -> float:
    """Current resident set size in MB (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:  # pragma: no cover - not Linux
        return peak_mb()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux


def save_models(folder: str, skip_autoencoder: bool) -> dict[str, str]:
    """Fit the detectors on synthetic normal clips and save them (the streams load them without TensorFlow)."""
    from soundanomaly.datasets.synthetic import generate_clip
    from soundanomaly.detectors import GaussianDetector
    from soundanomaly.features import ClipFeatures, LogMelFrames

    features = LogMelFrames()
    clips = [generate_clip(0, duration=10.0, clip_index=1000 + i) for i in range(8)]
    train = ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())
    paths = {"gaussian": str(GaussianDetector(threshold=2.0).fit(train).save(os.path.join(folder, "gaussian")))}
    if not skip_autoencoder:
        try:
            from soundanomaly.detectors import AutoencoderDetector

            detector = AutoencoderDetector(epochs=2, threshold=2.0).fit(train)
            paths["autoencoder"] = str(detector.save(os.path.join(folder, "autoencoder")))
        except ImportError as exc:
            print(f"autoencoder skipped: {exc}")
    return paths


def batch_rtf(detector: object, audio: np.ndarray, repeat: int = 5) -> float:
    """Audio seconds per compute second of clip scoring (10 s clips, features + scores)."""
    from soundanomaly.features import ClipFeatures

    clips = [audio[i : i + 10 * SR] for i in range(0, len(audio) - 10 * SR + 1, 10 * SR)]
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        features = ClipFeatures.from_arrays([detector.features.transform(c, SR) for c in clips])  # type: ignore[attr-defined]
        detector.score(features)  # type: ignore[attr-defined]
        best = min(best, time.process_time() - start)
    return len(clips) * 10.0 / best


def stream(
    detector: object, audio: np.ndarray, hours: float, window: float, hop: float, block: float
) -> dict[str, float]:
    from soundanomaly.monitor import Monitor

    monitor = Monitor(detector, window_seconds=window, hop_seconds=hop)
    size = round(block * SR)
    blocks = [audio[i : i + size] for i in range(0, len(audio) - size + 1, size)]
    total_blocks = round(hours * 3600 / block)
    latencies: list[float] = []
    warm = round(min(3600.0, hours * 3600 / 10) / block)  # RSS reference: after 1 h (or a tenth of the stream)
    rss_warm = rss_max = rss_mb()
    pushed = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while pushed < total_blocks:
        for piece in blocks:
            if pushed >= total_blocks:
                break
            start = time.perf_counter()
            windows = monitor.push(piece, SR)
            if windows:
                latencies.append(time.perf_counter() - start)
            pushed += 1
            if pushed == warm:
                rss_warm = rss_mb()
            if pushed % 10000 == 0:
                rss_max = max(rss_max, rss_mb())
    compute = time.process_time() - cpu
    lat = np.asarray(latencies)
    return {
        "audio_s": pushed * block,
        "compute_s": compute,
        "wall_s": time.perf_counter() - wall,
        "rtf": pushed * block / compute,
        "rtf_wall": pushed * block / (time.perf_counter() - wall),
        "warm_h": warm * block / 3600,
        "rss_max_mb": max(rss_max, rss_mb()),
        "windows": len(latencies),
        "lat_p50_ms": 1e3 * float(np.percentile(lat, 50)),
        "lat_p99_ms": 1e3 * float(np.percentile(lat, 99)),
        "lat_max_ms": 1e3 * float(lat.max()),
        "hop_s": monitor.hop_samples_ / SR,
        "rss_1h_mb": rss_warm,
        "rss_end_mb": rss_mb(),
        "events": len(monitor.events),
    }


def child(args: argparse.Namespace) -> None:
    """One detector in a fresh process (no TensorFlow loaded): batch, stream, batch; JSON on the last line."""
    import json

    from soundanomaly.datasets.synthetic import generate_clip
    from soundanomaly.detectors import load_model as _load_model

    detector = fitted_gaussian() if args.child == "gaussian-fit" else _load_model(args.child)
    audio = np.concatenate([generate_clip(0, duration=10.0, clip_index=i) for i in range(12)])  # 2 min, looped
    before = batch_rtf(detector, audio)
    result = stream(detector, audio, args.hours, args.window, args.hop, args.block)
    result["batch_before"], result["batch_after"] = before, batch_rtf(detector, audio)
    print(json.dumps(result))


def fitted_gaussian() -> object:
    """The Gaussian of :func:`save_models`, fitted in this process (by whichever code is on the path)."""
    from soundanomaly.datasets.synthetic import generate_clip
    from soundanomaly.detectors import GaussianDetector
    from soundanomaly.features import ClipFeatures, LogMelFrames

    features = LogMelFrames()
    clips = [generate_clip(0, duration=10.0, clip_index=1000 + i) for i in range(8)]
    train = ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())
    return GaussianDetector(threshold=2.0).fit(train)


def compare(args: argparse.Namespace) -> None:
    """Stream RTF of the reference code and of this code, alternating fresh processes; best, median, ratio."""
    import json
    import statistics
    import subprocess

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")
    sources = {"reference": args.reference_src, "this": os.path.abspath(here)}
    rtf: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(args.rounds):
        for name, src in sources.items():
            command = [sys.executable, __file__, "--child", "gaussian-fit", "--hours", str(args.hours), "--window",
                       str(args.window), "--hop", str(args.hop), "--block", str(args.block)]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": src}
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            rtf[name].append(json.loads(done.stdout.strip().splitlines()[-1])["rtf"])
            print(f"{name:9s} stream real-time factor {rtf[name][-1]:6.0f}x", flush=True)
    best = {name: max(values) for name, values in rtf.items()}
    median = {name: statistics.median(values) for name, values in rtf.items()}
    print(
        f"\nGaussian stream, {args.rounds} rounds of {args.hours:g} h: reference best {best['reference']:.0f}x "
        f"median {median['reference']:.0f}x; this best {best['this']:.0f}x median {median['this']:.0f}x; "
        f"this / reference: best {best['this'] / best['reference']:.2f}, median "
        f"{median['this'] / median['reference']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=10.0, help="audio streamed per detector (default: 10)")
    parser.add_argument("--window", type=float, default=10.0, help="window in seconds (default: 10)")
    parser.add_argument("--hop", type=float, default=1.0, help="hop in seconds (default: 1)")
    parser.add_argument("--block", type=float, default=0.1, help="seconds per pushed block (default: 0.1)")
    parser.add_argument("--skip-autoencoder", action="store_true")
    parser.add_argument("--reference-src", help="compare the stream speed with the code in this src folder")
    parser.add_argument("--rounds", type=int, default=5, help="--reference-src: alternating runs each (default: 5)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.reference_src:
        compare(args)
        return

    import json
    import subprocess
    import tempfile

    print(f"python {sys.version.split()[0]}, one core (affinity {sorted(os.sched_getaffinity(0))})")
    met = []
    with tempfile.TemporaryDirectory() as folder:
        for name, path in save_models(folder, args.skip_autoencoder).items():
            command = [sys.executable, __file__, "--child", path, "--hours", str(args.hours), "--window",
                       str(args.window), "--hop", str(args.hop), "--block", str(args.block)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"\n{name}: {result['audio_s'] / 3600:.1f} h streamed in {result['compute_s']:.1f} s of CPU time "
                f"({result['wall_s']:.1f} s wall) "
                f"(window {args.window:g} s, hop {result['hop_s']:.3f} s, blocks {args.block:g} s, "
                f"{result['windows']} windows, {result['events']} alerts)\n"
                f"  real-time factor (CPU time)  stream {result['rtf']:6.0f}x   batch 10 s clips "
                f"{result['batch_before']:6.0f}x before, {result['batch_after']:6.0f}x after (same core, same process); "
                f"stream by wall clock {result['rtf_wall']:.0f}x\n"
                f"  stream / batch (a shared core's speed drifts; the ratio less so)  "
                f"{result['rtf'] / max(result['batch_before'], result['batch_after']):.2f} to "
                f"{result['rtf'] / min(result['batch_before'], result['batch_after']):.2f}\n"
                f"  latency (push that completes a window)  p50 {result['lat_p50_ms']:.2f} ms  "
                f"p99 {result['lat_p99_ms']:.2f} ms  max {result['lat_max_ms']:.2f} ms   "
                f"(hop {1e3 * result['hop_s']:.0f} ms)\n"
                f"  memory  RSS after {result['warm_h']:.1f} h {result['rss_1h_mb']:.0f} MB, at the end "
                f"{result['rss_end_mb']:.0f} MB, highest sampled {result['rss_max_mb']:.0f} MB"
            )
            met.append((f"{name}: real-time factor >= {TARGET_RTF:.0f}x", result["rtf"] >= TARGET_RTF))
            met.append((f"{name}: latency <= one hop", result["lat_max_ms"] / 1e3 <= result["hop_s"]))
            flat = result["rss_max_mb"] < TARGET_MEMORY_MB and result["rss_end_mb"] <= result["rss_1h_mb"] + 5
            met.append((f"{name}: memory flat, < {TARGET_MEMORY_MB:.0f} MB", flat))
    print()
    for text, ok in met:
        print(f"{'met    ' if ok else 'NOT met'}  {text}")


if __name__ == "__main__":
    main()
