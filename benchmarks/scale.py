"""Scale-out benchmark (issue 24): clips/s on 1 and 2 Dask workers, per-core cost, a 100,000-clip resumed job.

Everything is measured in one run, as ratios against a reference measured
alongside (a shared machine's absolute numbers drift):

1. **Scaling**: ``PerGroup(ClipStatsDetector())`` (the recommended detector)
   scores ``--clips`` synthetic 10 s fan clips with :func:`soundanomaly.scale.score_many`
   on a ``dask.distributed.LocalCluster`` of 1 and then 2 single-threaded
   worker processes; the reference is today's single-process scoring
   (``detector.score(paths)`` in this process). Rounds alternate and the
   best of ``--rounds`` is kept for each, so a burst of load from other
   processes does not decide the ratio. Targets: 2 workers >= 1.7x the
   clips/s of 1 (on a 2-core machine), and per-worker cost within 10 % of the
   single-process ms/clip.
2. **A 100,000-clip job** (0.2 s clips, ``GaussianDetector``, shards of
   1,000, a local pool of every core) is interrupted at ~50 % (a
   ``KeyboardInterrupt`` from the progress hook, as Ctrl-C) and resumed; the
   Parquet output is checked for every clip exactly once, and the driver's
   resident memory is sampled after every shard (flat = it does not grow with
   the number of clips).
3. **Extrapolation** to one year of 10 s clips from 50 microphones
   (157,680,000 clips) from the measured per-core cost (CPU time per clip in a
   Dask worker: robust on a shared machine), with the cost of a run on common
   cloud instance types at approximate on-demand prices.

Usage::

    python benchmarks/scale.py                     # ~5 min on 2 cores
    python benchmarks/scale.py --clips 200 --tiny 20000 --rounds 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

import numpy as np

YEAR_50_MICS = 365 * 24 * 360 * 50  # 10 s clips
#: Approximate on-demand prices (USD per hour, us-east-1, Linux, late 2026 list prices; they change).
INSTANCES = (
    ("c7i.4xlarge", 16, 0.71),
    ("c7i.16xlarge", 64, 2.86),
    ("c7g.16xlarge (Graviton)", 64, 2.32),
    ("c7i.16xlarge spot (~65% off)", 64, 1.00),
)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _write_tiny(root: Path, n: int) -> None:
    """``n`` clips of 0.2 s (PCM-16) in a MIMII layout, 1,000 per folder, four ids (raw bytes: fast to write)."""
    import io

    import soundfile as sf

    rng = np.random.default_rng(7)
    base = (rng.normal(0, 0.05, 3200) * 32767).astype("<i2")
    buffer = io.BytesIO()
    sf.write(buffer, base, 16000, subtype="PCM_16", format="WAV")
    header = buffer.getvalue()[: -base.nbytes]
    made = None
    for i in range(n):
        folder = root / f"batch_{i // 1000:03d}" / "fan" / f"id_{(i * 4 // n) * 2:02d}" / "normal"
        if folder != made:
            folder.mkdir(parents=True, exist_ok=True)
            made = folder
        (folder / f"{i:08d}.wav").write_bytes(header + np.roll(base, i).tobytes())


def _warm_worker(folder: str, path: str) -> None:
    from soundanomaly.scale._work import ModelRef, fingerprint_folder, score_shard

    score_shard(ModelRef(fingerprint_folder(folder), folder), [path])


def scaling(work: Path, n_clips: int, rounds: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from soundanomaly.datasets import MIMII, synthetic
    from soundanomaly.detectors import ClipStatsDetector, PerGroup
    from soundanomaly.scale import score_many

    per_id = max(2, n_clips // 4)
    root = synthetic.write_dataset(work / "clips", ids=(0, 2, 4, 6), n_normal=per_id, n_abnormal=0, seed=3)
    clips = MIMII(root)
    paths = list(clips.paths)
    model = PerGroup(ClipStatsDetector()).fit(clips)
    folder = model.save(work / "model")
    model.score(paths[:8])  # warm-up: imports, caches
    reference: list[float] = []
    reference_cpu: list[float] = []
    in_process: list[float] = []
    timings: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    # both clusters live for the whole run, warmed once; rounds alternate between them and the reference
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as one,
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as two,
        Client(one) as client_one,
        Client(two) as client_two,
    ):
        clients = {1: client_one, 2: client_two}
        for client in clients.values():
            # every worker process pays its one-time start (imports, numba's compilation of librosa's
            # kernels, the model) on one clip first: a long job pays it once per worker
            client.run(_warm_worker, str(folder), paths[0])
        for round_ in range(rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.score(paths)
            reference.append((time.perf_counter() - start) / len(paths))
            reference_cpu.append((time.process_time() - start_cpu) / len(paths))
            summary = score_many(folder, str(root), work / f"inproc-{round_}", jobs=1, shard_size=64)
            in_process.append(summary.seconds / summary.clips)
            for workers, client in clients.items():
                out = work / f"scores-{workers}-{round_}"
                before = client.run(time.process_time)
                summary = score_many(
                    folder, str(root), out, client=client, shard_size=max(8, len(paths) // (8 * workers))
                )
                after = client.run(time.process_time)
                timings[workers].append(summary.seconds / summary.clips)
                cpu[workers].append(sum(after[w] - before[w] for w in after) / summary.clips)
                shutil.rmtree(out)
            print(
                f"  round {round_ + 1}: single process {reference[-1] * 1e3:.2f} ms/clip (score_many in-process "
                f"{in_process[-1] * 1e3:.2f}), 1 worker {timings[1][-1] * 1e3:.2f} ms/clip, 2 workers "
                f"{timings[2][-1] * 1e3:.2f} ms/clip (wall clock); CPU {reference_cpu[-1] * 1e3:.2f} / "
                f"{cpu[1][-1] * 1e3:.2f} / {cpu[2][-1] * 1e3:.2f} ms/clip; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    crossover = _pool_crossover(model, paths)
    extraction = _extraction(paths)
    best_ref, best_1, best_2 = min(reference), min(timings[1]), min(timings[2])
    return {
        "clips": len(paths),
        "reference_ms_per_clip": best_ref * 1e3,
        "one_worker_clips_per_s": 1 / best_1,
        "two_workers_clips_per_s": 1 / best_2,
        "scaling_ratio": best_1 / best_2,
        "per_core_ms_per_clip_2_workers": best_2 * 2 * 1e3,
        "per_core_vs_single_process": best_2 * 2 / best_ref,
        "rounds": rounds,
        "reference_cpu_ms_per_clip": min(reference_cpu) * 1e3,
        "median_reference_cpu_ms_per_clip": float(np.median(reference_cpu)) * 1e3,
        "median_worker_cpu_ms_per_clip_1": float(np.median(cpu[1])) * 1e3,
        "median_worker_cpu_ms_per_clip_2": float(np.median(cpu[2])) * 1e3,
        "median_scaling_ratio": float(np.median(timings[1]) / np.median(timings[2])),
        "score_many_in_process_ms_per_clip": min(in_process) * 1e3,
        "worker_cpu_ms_per_clip_1": min(cpu[1]) * 1e3,
        "worker_cpu_ms_per_clip_2": min(cpu[2]) * 1e3,
        "worker_cpu_vs_single_process": min(cpu[2]) / min(reference_cpu),
        "pool_vs_one_process": crossover,
        "extraction_fit_path": extraction,
    }


def _pool_crossover(model: Any, paths: list[str]) -> list[dict[str, float]]:
    """``score_clips`` on a fresh local pool of every core vs ``model.score`` in this process, by clip count.

    A fresh pool pays its start-up (processes, the model loaded in each) on
    every call: the clip count where it starts to win sets ``auto_jobs``.
    """
    from soundanomaly.scale import default_jobs, score_clips

    rows = []
    for n in sorted({min(n, len(paths)) for n in (16, 64, 256, len(paths))}):
        subset = paths[:n]
        start = time.perf_counter()
        model.score(subset)
        one = time.perf_counter() - start
        start = time.perf_counter()
        score_clips(model, subset, jobs=default_jobs(), shard_size=max(4, n // (4 * default_jobs())))
        pool = time.perf_counter() - start
        rows.append({"clips": n, "one_process_s": one, "pool_s": pool, "speedup": one / pool})
        print(f"  {n:4d} clips: one process {one:.2f} s, a fresh pool of {default_jobs()} {pool:.2f} s", flush=True)
    return rows


def _extraction(paths: list[str]) -> dict[str, float]:
    """The fit path: features come back to this process (``extract(n_jobs=...)``), for two extractors."""
    from soundanomaly.detectors.clipstats import ClipStatistics
    from soundanomaly.features import LogMelFrames

    out: dict[str, float] = {}
    for extractor in (LogMelFrames(), ClipStatistics()):
        extractor.extract(paths[:2])
        name = type(extractor).__name__
        times = {}
        for jobs in (1, 2):
            start = time.perf_counter()
            extractor.extract(paths, n_jobs=jobs)
            times[jobs] = time.perf_counter() - start
        out[f"{name}_speedup_2_jobs"] = times[1] / times[2]
        print(f"  extract {name}: 1 process {times[1]:.2f} s, 2 processes {times[2]:.2f} s", flush=True)
    return out


def resumed_job(work: Path, n: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from soundanomaly.detectors import GaussianDetector
    from soundanomaly.scale import iter_clips, score_many

    root = work / "tiny"
    start = time.perf_counter()
    _write_tiny(root, n)
    print(f"  wrote {n} clips in {time.perf_counter() - start:.0f} s", flush=True)
    train = [p for _, p in zip(range(200), iter_clips(root), strict=False)]
    folder = GaussianDetector(threshold=100.0).fit(train).save(work / "tiny-model")
    out = work / "tiny-scores"
    shard_size = 1000
    n_shards = -(-n // shard_size)
    samples: list[tuple[int, float]] = []
    done = [0]

    def hook(shard: int, clips: int) -> None:
        done[0] += 1
        samples.append((done[0], rss_mb()))
        if done[0] == n_shards // 2:
            raise KeyboardInterrupt

    start = time.perf_counter()
    try:
        score_many(folder, root, out, shard_size=shard_size, on_shard=hook)
        raise SystemExit("the job was not interrupted")
    except KeyboardInterrupt:
        first = time.perf_counter() - start
    partial = len(list(out.glob("part-*.parquet")))
    start = time.perf_counter()
    summary = score_many(folder, root, out, shard_size=shard_size, on_shard=hook)
    second = time.perf_counter() - start
    paths = pq.read_table(out, columns=["path"]).column("path").to_pylist()
    listed = sum(1 for _ in iter_clips(root))
    rss = [mb for _, mb in samples]
    tenth = max(1, len(rss) // 10)
    return {
        "clips": n,
        "shards": n_shards,
        "interrupted_after_shards": partial,
        "resumed_shards": summary.resumed,
        "rows": len(paths),
        "unique_paths": len(set(paths)),
        "listed": listed,
        "exactly_once": len(paths) == len(set(paths)) == listed == n,
        "seconds_first_run": first,
        "seconds_resumed_run": second,
        "clips_per_s": (n - partial * shard_size) / second,
        "driver_rss_mb_early": float(np.median(rss[:tenth])),
        "driver_rss_mb_late": float(np.median(rss[-tenth:])),
        "driver_rss_mb_max": max(rss),
    }


def extrapolate(per_core_ms: float) -> list[dict[str, Any]]:
    core_hours = YEAR_50_MICS * per_core_ms / 1e3 / 3600
    rows = []
    for name, vcpus, price in INSTANCES:
        hours = core_hours / vcpus
        rows.append(
            {"instance": name, "vcpus": vcpus, "usd_per_hour": price, "instance_hours": hours, "usd": hours * price}
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400, help="10 s clips for the scaling runs (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept (3)")
    parser.add_argument(
        "--tiny", type=int, default=100_000, help="clips of the resumed job (default 100000; 0 skips it)"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    print(f"scale benchmark on {cores} core(s), load average {os.getloadavg()[0]:.1f} (other processes share them)")
    results: dict[str, Any] = {"cores": cores, "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="soundanomaly-scale-") as tmp:
        work = Path(tmp)
        print(f"1. scaling: {args.clips} clips of 10 s, PerGroup(ClipStatsDetector()), Dask LocalCluster", flush=True)
        scale = scaling(work, args.clips, args.rounds)
        results["scaling"] = scale
        print(
            f"   single process {scale['reference_ms_per_clip']:.2f} ms/clip | 1 worker "
            f"{scale['one_worker_clips_per_s']:.0f} clips/s | 2 workers {scale['two_workers_clips_per_s']:.0f} "
            f"clips/s | ratio {scale['scaling_ratio']:.2f}x (target >= 1.7) | per core "
            f"{scale['per_core_ms_per_clip_2_workers']:.2f} ms/clip = {scale['per_core_vs_single_process']:.2f}x "
            "single process (target <= 1.10), wall clock | CPU time per clip: single process "
            f"{scale['reference_cpu_ms_per_clip']:.2f} ms, in a worker {scale['worker_cpu_ms_per_clip_2']:.2f} ms = "
            f"{scale['worker_cpu_vs_single_process']:.2f}x (best of each) | medians: scaling "
            f"{scale['median_scaling_ratio']:.2f}x, CPU per clip {scale['median_reference_cpu_ms_per_clip']:.2f} ms "
            f"single process, {scale['median_worker_cpu_ms_per_clip_1']:.2f} / "
            f"{scale['median_worker_cpu_ms_per_clip_2']:.2f} ms in 1 / 2 workers",
            flush=True,
        )
        if not args.tiny:
            return _report(results, scale, args.json)
        print(f"2. a {args.tiny}-clip job (0.2 s clips), interrupted at ~50 % and resumed", flush=True)
        job = resumed_job(work, args.tiny)
        results["resumed_job"] = job
        print(
            f"   interrupted after {job['interrupted_after_shards']}/{job['shards']} shards, resumed "
            f"{job['resumed_shards']} | rows {job['rows']}, unique {job['unique_paths']}, listed {job['listed']}: "
            f"exactly once = {job['exactly_once']} | {job['clips_per_s']:.0f} clips/s | driver RSS "
            f"{job['driver_rss_mb_early']:.0f} MB early, {job['driver_rss_mb_late']:.0f} MB late, max "
            f"{job['driver_rss_mb_max']:.0f} MB",
            flush=True,
        )
    return _report(results, scale, args.json)


def _report(results: dict[str, Any], scale: dict[str, Any], json_path: str | None) -> int:
    # CPU time per clip in a worker: what one core does when it is not shared (wall clock on a shared
    # machine counts the other processes' turns too)
    per_core = scale["worker_cpu_ms_per_clip_2"]
    table = extrapolate(per_core)
    results["year_50_mics"] = {"clips": YEAR_50_MICS, "per_core_ms_per_clip": per_core, "instances": table}
    print(
        f"3. one year x 50 microphones = {YEAR_50_MICS:,} clips at {per_core:.2f} ms/clip/core = "
        f"{YEAR_50_MICS * per_core / 3.6e6:,.0f} core-hours (CPU time per clip in a Dask worker; approximate "
        "prices; one worker per vCPU assumed)"
    )
    print("   | instance | vCPUs | USD/h | instance-hours | USD per run |")
    print("   |---|---|---|---|---|")
    for row in table:
        print(
            f"   | {row['instance']} | {row['vcpus']} | {row['usd_per_hour']:.2f} | "
            f"{row['instance_hours']:.1f} | {row['usd']:.0f} |"
        )
    results["load_average_end"] = os.getloadavg()[0]
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
