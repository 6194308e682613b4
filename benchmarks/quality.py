"""Detection-quality benchmark (issue 14): which detector holds up in factory noise.

Not part of the test suite. Run with ``nox -s quality`` (or ``python benchmarks/quality.py``).

Grid: SNR {6, 0, -6} dB x severity {0.3, 0.5, 0.8} x fault type (all four) x machine id
(0, 2, 4, 6) x seeds, synthetic fans from :mod:`soundanomaly.datasets.synthetic`, every
detector pooled (one model for all ids) and per id (:class:`PerGroup`). Per cell: ROC AUC and
pAUC (FPR <= 0.1, McClish-standardised as in :func:`soundanomaly.evaluation.partial_auc`) of
that id's normal test clips against its faulty clips of that type and severity; tables show
means over ids and seeds (and faults for the headline). Plus: channel strategies on synthetic
8-microphone clips and on the 14 real MIMII clips in ``../shared/data/mimii-fan`` (too few to
train on: leave-one-out k-NN, indicative only), and end-to-end scoring ms/clip from WAV files.

Writes ``benchmarks/results/quality.json`` and, with ``--write-docs``, the tables into
``docs/quality.rst`` (between the ``quality-results`` markers) and a plot to
``docs/_static/quality_auc.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from soundanomaly.datasets.synthetic import (
    ANOMALY_TYPES,
    generate_clip,
    generate_multichannel_clip,
)
from soundanomaly.detectors.autoencoder import AutoencoderDetector
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.clipstats import ClipStatistics, ClipStatsDetector
from soundanomaly.detectors.ensemble import Ensemble
from soundanomaly.detectors.gaussian import GaussianDetector
from soundanomaly.detectors.machine_id import MachineIdDetector
from soundanomaly.detectors.pergroup import PerGroup
from soundanomaly.evaluation import partial_auc, roc_auc
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.features.multichannel import STRATEGIES, MultiChannel, apply_delays, estimate_delays

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "mimii-fan"
IDS = (0, 2, 4, 6)
SR = 16000


def _log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _features(extractor: Any, signals: list[np.ndarray], paths: list[str]) -> ClipFeatures:
    return ClipFeatures.from_arrays(
        [extractor.transform(s, SR) for s in signals], paths=paths, params=_params(extractor)
    )


def _params(extractor: Any) -> dict[str, Any]:
    params = dict(extractor.params())
    params.setdefault("name", type(extractor).__name__)
    return params


def _concat(parts: list[ClipFeatures]) -> ClipFeatures:
    arrays = [clip for part in parts for clip in part]
    paths = [p for part in parts for p in part.paths]
    return ClipFeatures.from_arrays(arrays, paths=paths, params=parts[0].params)


# name, grouping, extractor key ("a+b": one ClipFeatures per ensemble member, in order), factory
def detectors(quick: bool) -> list[tuple[str, str, str, Callable[[], BaseDetector]]]:
    epochs = 10 if quick else 30
    mlp_epochs = 10 if quick else 20
    return [
        ("Autoencoder (recipe)", "pooled", "logmel", lambda: AutoencoderDetector(epochs=epochs)),
        ("Gaussian", "pooled", "logmel", lambda: GaussianDetector()),
        ("Gaussian", "per-id", "logmel", lambda: PerGroup(GaussianDetector())),
        ("ClipStats k-NN", "pooled", "clipstats", lambda: ClipStatsDetector()),
        ("ClipStats k-NN", "per-id", "clipstats", lambda: PerGroup(ClipStatsDetector())),
        ("ClipStats Mahalanobis", "per-id", "clipstats", lambda: PerGroup(ClipStatsDetector(method="mahalanobis"))),
        ("Machine-id MLP", "all ids", "logmel", lambda: MachineIdDetector(epochs=mlp_epochs)),
        # the library's Ensemble: each member standardised by its own held-out normal scores (mean / std),
        # then averaged. AUC needs no threshold, so a fixed one: the ensemble then holds nothing out and its
        # members train on the same clips as their own rows above (the default, threshold=None, would keep
        # 20 % of them back to calibrate the ensemble's threshold)
        (
            "Ensemble: ClipStats k-NN + machine-id",
            "per-id + all ids",
            "clipstats+logmel",
            lambda: Ensemble([PerGroup(ClipStatsDetector()), MachineIdDetector(epochs=mlp_epochs)], threshold=1.0),
        ),
    ]


def _inputs(feats: dict[str, dict[str, ClipFeatures]], key: str, part: str) -> Any:
    """The features for a row: one ClipFeatures, or a list of them (one per ensemble member)."""
    keys = key.split("+")
    return feats[key][part] if len(keys) == 1 else [feats[k][part] for k in keys]


def synthetic_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    extractors = {"logmel": LogMelFrames(), "clipstats": ClipStatistics()}
    rows: list[dict[str, Any]] = []
    for snr in args.snrs:
        for seed in args.seeds:
            start = time.perf_counter()
            signals: dict[str, list[np.ndarray]] = {"train": [], "test": []}
            paths: dict[str, list[str]] = {"train": [], "test": []}
            meta: list[tuple[int, str | None, float]] = []  # per test clip: id, fault, severity
            for i in IDS:
                folder = f"{snr:g}_dB_fan/fan/id_{i:02d}"
                for k in range(args.n_train):
                    signals["train"].append(generate_clip(i, snr=snr, duration=args.duration, seed=seed, clip_index=k))
                    paths["train"].append(f"{folder}/normal/{k:08d}.wav")
                for k in range(args.n_test):
                    index = 100_000 + k
                    signals["test"].append(
                        generate_clip(i, snr=snr, duration=args.duration, seed=seed, clip_index=index)
                    )
                    paths["test"].append(f"{folder}/normal/{index:08d}.wav")
                    meta.append((i, None, 0.0))
                for severity in args.severities:
                    for fault in ANOMALY_TYPES:
                        for k in range(args.n_abnormal):
                            index = int(severity * 1000) * 100 + k
                            signals["test"].append(
                                generate_clip(
                                    i,
                                    anomaly=fault,
                                    severity=severity,
                                    snr=snr,
                                    duration=args.duration,
                                    seed=seed,
                                    clip_index=index,
                                )
                            )
                            paths["test"].append(f"{folder}/abnormal/{fault}_{index:08d}.wav")
                            meta.append((i, fault, severity))
            feats = {
                key: {part: _features(ext, signals[part], paths[part]) for part in ("train", "test")}
                for key, ext in extractors.items()
            }
            _log(
                f"snr {snr:g} seed {seed}: {len(signals['train']) + len(signals['test'])} clips "
                f"in {time.perf_counter() - start:.0f} s"
            )
            ids = np.array([m[0] for m in meta])
            faults = np.array([m[1] or "" for m in meta])
            severities = np.array([m[2] for m in meta])
            for name, grouping, key, factory in detectors(args.quick):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    detector = factory().fit(_inputs(feats, key, "train"))
                    t1 = time.perf_counter()
                    scores = detector.score(_inputs(feats, key, "test"))
                t2 = time.perf_counter()
                first = len(rows)
                for i in IDS:
                    normal = scores[(ids == i) & (faults == "")]
                    for severity in args.severities:
                        for fault in ANOMALY_TYPES:
                            abnormal = scores[(ids == i) & (faults == fault) & (severities == severity)]
                            y = np.r_[np.zeros(len(normal)), np.ones(len(abnormal))]
                            s = np.r_[normal, abnormal]
                            rows.append(
                                {
                                    "detector": name,
                                    "grouping": grouping,
                                    "snr": snr,
                                    "seed": seed,
                                    "id": i,
                                    "severity": severity,
                                    "fault": fault,
                                    "auc": roc_auc(y, s),
                                    "pauc": partial_auc(y, s, max_fpr=0.1),
                                }
                            )
                low = min(args.severities)
                mean_low = np.mean([r["auc"] for r in rows[first:] if r["severity"] == low])
                _log(
                    f"  {name:24s} {grouping:8s} fit {t1 - t0:5.1f} s, score {t2 - t1:5.2f} s, "
                    f"AUC@sev{low:g} {mean_low:.3f}"
                )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[tuple[str, str, float, float], list[tuple[float, float]]] = {}
    by_fault: dict[tuple[str, str, float, float, str], list[tuple[float, float]]] = {}
    for r in rows:
        key = (r["detector"], r["grouping"], r["snr"], r["severity"])
        table.setdefault(key, []).append((r["auc"], r["pauc"]))
        by_fault.setdefault((*key, r["fault"]), []).append((r["auc"], r["pauc"]))
    mean = {k: tuple(np.mean(v, axis=0)) for k, v in table.items()}
    fault_mean = {k: tuple(np.mean(v, axis=0)) for k, v in by_fault.items()}
    return {"mean": mean, "by_fault": fault_mean}


def multichannel(args: argparse.Namespace) -> dict[str, Any]:
    """Channel strategies on synthetic 8-microphone fans (severity 0.3), per-id ClipStats k-NN."""
    out: dict[str, Any] = {"snr_gain_db": {}, "auc": {}}
    n_mics, duration = 8, args.mc_duration
    for snr in args.mc_snrs:
        train: list[np.ndarray] = []
        test: list[np.ndarray] = []
        train_paths: list[str] = []
        test_paths: list[str] = []
        labels, gains_ds, gains_mean = [], [], []
        for i in IDS:
            folder = f"{snr:g}_dB_fan/fan/id_{i:02d}"
            for k in range(args.mc_train):
                train.append(generate_multichannel_clip(i, n_mics=n_mics, snr=snr, duration=duration, clip_index=k))
                train_paths.append(f"{folder}/normal/{k:08d}.wav")
            for k in range(args.mc_test):
                machine, noise = generate_multichannel_clip(
                    i, n_mics=n_mics, snr=snr, duration=duration, clip_index=100_000 + k, components=True
                )
                mix = machine + noise
                delays = estimate_delays(mix, SR)
                ds_m, ds_n = apply_delays(machine, delays).mean(0), apply_delays(noise, delays).mean(0)
                ref = 10 * np.log10(np.mean(machine[0] ** 2) / np.mean(noise[0] ** 2))
                gains_ds.append(10 * np.log10(np.mean(ds_m**2) / np.mean(ds_n**2)) - ref)
                gains_mean.append(10 * np.log10(np.mean(machine.mean(0) ** 2) / np.mean(noise.mean(0) ** 2)) - ref)
                test.append(mix)
                test_paths.append(f"{folder}/normal/{100_000 + k:08d}.wav")
                labels.append(0)
            for fault in ANOMALY_TYPES:
                for k in range(args.mc_abnormal):
                    test.append(
                        generate_multichannel_clip(
                            i, n_mics=n_mics, anomaly=fault, severity=0.3, snr=snr, duration=duration, clip_index=k
                        )
                    )
                    test_paths.append(f"{folder}/abnormal/{fault}_{k:08d}.wav")
                    labels.append(1)
        out["snr_gain_db"][snr] = {"delay_and_sum": float(np.mean(gains_ds)), "mean": float(np.mean(gains_mean))}
        y = np.array(labels)
        groups = np.array([p.split("/")[2] for p in test_paths])
        variants: list[tuple[str, Any, Callable[[np.ndarray], np.ndarray]]] = [
            ("channel 0", ClipStatistics(), lambda x: x[0]),
        ]
        variants += [(s, MultiChannel(ClipStatistics(), strategy=s), lambda x: x) for s in STRATEGIES]  # type: ignore[arg-type]
        for name, extractor, pick in variants:
            tr = ClipFeatures.from_arrays(
                [extractor.transform(pick(x), SR) for x in train], paths=train_paths, params=_params(extractor)
            )
            te = ClipFeatures.from_arrays(
                [extractor.transform(pick(x), SR) for x in test], paths=test_paths, params=_params(extractor)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = PerGroup(ClipStatsDetector(features=extractor)).fit(tr).score(te)
            aucs = [roc_auc(y[groups == g], scores[groups == g]) for g in sorted(set(groups))]
            out["auc"].setdefault(name, {})[snr] = float(np.mean(aucs))
            _log(f"  multichannel {snr:g} dB {name:14s} AUC {np.mean(aucs):.3f}")
    return out


def real_clips() -> dict[str, Any]:
    """The 14 real 8-channel MIMII fan clips: leave-one-out 1-NN on ClipStatistics, per channel strategy."""
    if not REAL.is_dir():
        return {"skipped": f"{REAL} not found"}
    from soundanomaly.audio import load

    files = sorted(REAL.rglob("*.wav"))
    labels = np.array([1 if "/abnormal/" in str(f) else 0 for f in files])
    signals = [load(f, channel=None)[0] for f in files]
    out: dict[str, Any] = {"n_normal": int((labels == 0).sum()), "n_abnormal": int(labels.sum())}
    variants: list[tuple[str, Any, Callable[[np.ndarray], np.ndarray]]] = [
        ("channel 0", ClipStatistics(), lambda x: x[0])
    ]
    variants += [(s, MultiChannel(ClipStatistics(), strategy=s), lambda x: x) for s in STRATEGIES]  # type: ignore[arg-type]
    for name, extractor, pick in variants:
        x = np.stack([extractor.transform(pick(s), SR).mean(axis=0) for s in signals]).astype(np.float64)
        normal = x[labels == 0]
        z_mean, z_std = normal.mean(0), normal.std(0) + 1e-6
        z = (x - z_mean) / z_std
        zn = z[labels == 0]
        scores = []
        for j in range(len(z)):
            d = np.linalg.norm(zn - z[j], axis=1)
            if labels[j] == 0:
                d = d[d > 0]  # leave itself out
            scores.append(d.min())
        out[name] = roc_auc(labels, np.array(scores))
        _log(f"  real clips {name:14s} LOO 1-NN AUC {out[name]:.3f}")
    return out


def timing(args: argparse.Namespace) -> dict[str, float]:
    """End-to-end scoring ms/clip from 10 s WAV files (features included), same run for every detector."""
    n = args.timing_clips
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(n):
            for i in (0, 2):
                path = Path(tmp) / f"0_dB_fan/fan/id_{i:02d}/normal/{k:08d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, generate_clip(i, snr=0, duration=10.0, clip_index=k), SR, subtype="PCM_16")
                paths.append(str(path))
        made = [
            ("Gaussian (pooled)", GaussianDetector()),
            ("ClipStats k-NN (per id)", PerGroup(ClipStatsDetector())),
            ("ClipStats Mahalanobis (per id)", PerGroup(ClipStatsDetector(method="mahalanobis"))),
            ("Autoencoder (recipe)", AutoencoderDetector(epochs=2)),
            ("Machine-id MLP", MachineIdDetector(epochs=2)),
            (
                "Ensemble: ClipStats k-NN + machine-id",
                Ensemble([PerGroup(ClipStatsDetector()), MachineIdDetector(epochs=2)]),
            ),
        ]
        for name, detector in made:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector.fit(paths)
                detector.score(paths[:4])  # warm caches
                best = np.inf
                for _ in range(3):
                    t = time.perf_counter()
                    detector.score(paths)
                    best = min(best, time.perf_counter() - t)
            out[name] = 1000 * best / len(paths)
            _log(f"  timing {name:32s} {out[name]:6.2f} ms/clip")
    return out


def render(summary: dict[str, Any], args: argparse.Namespace, extra: dict[str, Any]) -> str:
    mean = summary["mean"]
    names = list(dict.fromkeys((k[0], k[1]) for k in mean))
    lines = []
    for severity in args.severities:
        lines += [
            f".. list-table:: Severity {severity:g}: AUC / pAUC (FPR <= 0.1), mean over ids, faults and seeds",
            "   :header-rows: 1",
            "",
            "   * - detector",
            "     - models",
            *[f"     - {snr:g} dB" for snr in args.snrs],
        ]
        for name, grouping in names:
            lines.append(f"   * - {name}")
            lines.append(f"     - {grouping}")
            for snr in args.snrs:
                auc, pauc = mean[(name, grouping, snr, severity)]
                lines.append(f"     - {auc:.2f} / {pauc:.2f}")
        lines.append("")
    by_fault = summary["by_fault"]
    sev = min(args.severities)
    lines += [
        f".. list-table:: Severity {sev:g}, per fault type: AUC (mean over ids and seeds)",
        "   :header-rows: 1",
        "",
        "   * - detector",
        "     - models",
        "     - SNR",
        *[f"     - {fault}" for fault in ANOMALY_TYPES],
    ]
    for name, grouping in names:
        for snr in args.snrs:
            lines += [f"   * - {name}", f"     - {grouping}", f"     - {snr:g} dB"]
            lines += [f"     - {by_fault[(name, grouping, snr, sev, fault)][0]:.2f}" for fault in ANOMALY_TYPES]
    lines.append("")
    mc = extra.get("multichannel")
    if mc:
        snrs = list(mc["snr_gain_db"])
        lines += [
            ".. list-table:: Synthetic 8-microphone fans, severity 0.3: per-id ClipStats k-NN AUC by channel strategy",
            "   :header-rows: 1",
            "",
            "   * - strategy",
            *[f"     - {snr:g} dB" for snr in snrs],
        ]
        for name, per in mc["auc"].items():
            lines += [f"   * - {name}", *[f"     - {per[snr]:.2f}" for snr in snrs]]
        lines += [
            "   * - *SNR gain, delay-and-sum (dB)*",
            *[f"     - {mc['snr_gain_db'][snr]['delay_and_sum']:+.1f}" for snr in snrs],
        ]
        lines += [
            "   * - *SNR gain, plain mean (dB)*",
            *[f"     - {mc['snr_gain_db'][snr]['mean']:+.1f}" for snr in snrs],
        ]
        lines.append("")
    real = extra.get("real")
    if real and "skipped" not in real:
        lines += [
            f".. list-table:: The {real['n_normal'] + real['n_abnormal']} real MIMII fan clips "
            f"({real['n_normal']} normal, {real['n_abnormal']} abnormal, mixed ids and SNRs): "
            "leave-one-out 1-NN AUC on ClipStatistics",
            "   :header-rows: 1",
            "",
            "   * - strategy",
            "     - AUC",
        ]
        for name in ["channel 0", *STRATEGIES]:
            lines += [f"   * - {name}", f"     - {real[name]:.2f}"]
        lines.append("")
    timings = extra.get("timing")
    if timings:
        lines += [
            ".. list-table:: End-to-end scoring time from 10 s WAV files (features included), same run",
            "   :header-rows: 1",
            "",
            "   * - detector",
            "     - ms/clip",
        ]
        for name, ms in timings.items():
            lines += [f"   * - {name}", f"     - {ms:.1f}"]
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = summary["mean"]
    names = list(dict.fromkeys((k[0], k[1]) for k in mean))
    fig, axes = plt.subplots(1, len(args.severities), figsize=(4.2 * len(args.severities), 3.6), sharey=True)
    for ax, severity in zip(np.atleast_1d(axes), args.severities, strict=True):
        for name, grouping in names:
            ax.plot(
                args.snrs,
                [mean[(name, grouping, snr, severity)][0] for snr in args.snrs],
                marker="o",
                label=f"{name} ({grouping})",
            )
        ax.set_title(f"severity {severity:g}")
        ax.set_xlabel("SNR (dB)")
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.invert_xaxis()
    np.atleast_1d(axes)[0].set_ylabel("AUC (mean over ids, faults, seeds)")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid for a smoke run (minutes)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--snrs", type=float, nargs="+", default=[6.0, 0.0, -6.0])
    parser.add_argument("--severities", type=float, nargs="+", default=[0.3, 0.5, 0.8])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--n-train", type=int, default=40, help="normal training clips per id")
    parser.add_argument("--n-test", type=int, default=20, help="normal test clips per id")
    parser.add_argument("--n-abnormal", type=int, default=4, help="clips per id, fault and severity")
    parser.add_argument("--mc-snrs", type=float, nargs="+", default=[0.0, -6.0])
    parser.add_argument("--mc-duration", type=float, default=5.0)
    parser.add_argument("--mc-train", type=int, default=24)
    parser.add_argument("--mc-test", type=int, default=10)
    parser.add_argument("--mc-abnormal", type=int, default=3)
    parser.add_argument("--timing-clips", type=int, default=20, help="clips per id (2 ids) for the timing")
    parser.add_argument("--skip", nargs="*", default=[], choices=["grid", "multichannel", "real", "timing"])
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.json")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.duration, args.n_train, args.n_test, args.n_abnormal = [0], 5.0, 20, 10, 2
        args.mc_train, args.mc_test, args.mc_abnormal, args.timing_clips = 12, 6, 2, 6
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    rows = [] if "grid" in args.skip else synthetic_grid(args)
    if "multichannel" not in args.skip:
        extra["multichannel"] = multichannel(args)
    if "real" not in args.skip:
        extra["real"] = real_clips()
    if "timing" not in args.skip:
        extra["timing"] = timing(args)
    elapsed = time.perf_counter() - start
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"config": config, "elapsed_s": elapsed, "rows": rows, **extra}, indent=1, default=str)
    )
    if rows:
        summary = summarise(rows)
        text = render(summary, args, extra)
        print(text)
        if args.write_docs:
            note = (
                f"Measured {time.strftime('%Y-%m-%d')} in {elapsed / 60:.0f} min on a shared 2-core CPU: "
                f"seeds {args.seeds}, {args.duration:g} s clips, per id {args.n_train} training "
                f"(20 % held out for the threshold), {args.n_test} normal test and {args.n_abnormal} faulty "
                "clips per fault and severity.\n\n"
            )
            doc = ROOT / "docs" / "quality.rst"
            body = doc.read_text()
            body = re.sub(
                r"(\.\. quality-results-start\n).*?(\.\. quality-results-end)",
                lambda m: m.group(1) + "\n" + note + text + "\n" + m.group(2),
                body,
                flags=re.S,
            )
            doc.write_text(body)
            plot(summary, args, ROOT / "docs" / "_static" / "quality_auc.png")
    _log(f"done in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
