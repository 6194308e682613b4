"""Domain-shift benchmark (issue 22): which detector survives a new operating point, background, microphone or day.

Not part of the test suite. Run with ``nox -s shift`` (or ``python benchmarks/shift.py``).

Data: :mod:`soundanomaly.datasets.shift` at the frozen :data:`~soundanomaly.datasets.shift.EVALUATION_SEED`
(never tuned on), DCASE 2023 layout, 3 sections (operating-point, background and microphone shift),
``--size moderate``: 300 source + 10 target training clips per section, 30 test clips per section, domain and
label, 2 s at 16 kHz (``--size dcase``: 990 + 10, 50, 10 s); source SNR 0 dB and fault severity 0.3 by default
(``--snr 6 --severity 0.5`` is the easy setting), plus a **new-day** test session
(``day=2``: the same machines after a day of drift). One model per section, as DCASE scores.

Every detector of :mod:`soundanomaly.detectors` that learns from normal clips of one section (the reference
autoencoder included) in three settings:

* ``source``: trained on the source clips only;
* ``source+target``: trained on source and the 10 target clips, each clip's domain known (its session);
* ``source+adapt``: trained on source, then ``adapt`` on the 10 target clips (detectors that can adapt).

Columns: DCASE 2023 AUC source / target (that domain's normals against all the section's anomalies),
pAUC (p = 0.1, McClish, per section), official harmonic mean (:func:`soundanomaly.dcase_score.dcase_score`),
and the false-alarm rate of the default threshold (``target_fpr=0.01``) on the unseen source and target test
normals: ``predict`` as a user calls it (clips judged by their domain's threshold, the domain is in the file
name) and with the one global ``threshold_`` (domain unknown at scoring time). New-day rows: the
``source+target`` model on the day-2 test session, before and after ``adapt`` on 10 day-2 normal clips per
section and domain (held out of the day-2 evaluation clips).

Also the 14 real MIMII fan clips in ``../shared/data/mimii-fan`` (when present): session-aware thresholds
across their file-index runs.

Writes ``benchmarks/results/shift.json`` and, with ``--write-docs``, the table into ``docs/quality.rst``
(between the ``shift-results`` markers).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly import registry
from soundanomaly.datasets import DCASE, ClipSet
from soundanomaly.datasets.shift import EVALUATION_SEED, write_shift_dataset
from soundanomaly.dcase_score import dcase_score
from soundanomaly.detectors import BaseDetector
from soundanomaly.detectors.autoencoder import AutoencoderDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import ClipFeatures

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "mimii-fan"
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"n_source": 60, "n_target": 10, "n_test": 12, "duration": 1.0},
    "moderate": {"n_source": 300, "n_target": 10, "n_test": 30, "duration": 2.0},
    "dcase": {"n_source": 990, "n_target": 10, "n_test": 50, "duration": 10.0},
}
#: Detectors that do not fit this benchmark: a cloud service, a supervised image CNN, one needing several ids.
SKIP = {"RekognitionDetector", "SpectrogramCNNDetector", "MachineIdDetector", "PerGroup", "Ensemble"}
DAY2_ADAPT = 10
AE_EPOCHS = 15


def _log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def detector_factories() -> dict[str, Callable[[], BaseDetector]]:
    """Every single-model detector of the registry (:mod:`soundanomaly.registry`): new ones are picked up."""
    out: dict[str, Callable[[], BaseDetector]] = {}
    for name in registry.names("detector"):
        if name in SKIP:
            continue
        cls = registry.get("detector", name)
        if cls.supervised or "detector" in inspect.signature(cls).parameters:  # meta-detectors wrap another
            continue
        if cls is AutoencoderDetector:
            out[name] = lambda: AutoencoderDetector(epochs=AE_EPOCHS)
        else:
            out[name] = cls
    return out


class FeatureCache:
    """Features of every clip, extracted once per extractor (keyed by its parameters)."""

    def __init__(self) -> None:
        self._store: dict[str, dict[str, np.ndarray]] = {}

    def get(self, detector: BaseDetector, clips: ClipSet) -> ClipFeatures:
        extractor = detector.features
        key = json.dumps({"cls": type(extractor).__name__, **extractor.params()}, sort_keys=True, default=str)
        store = self._store.setdefault(key, {})
        missing = [p for p in clips.paths if p not in store]
        if missing:
            extracted = extractor.extract(missing, channel=detector.channel)
            for path, matrix in zip(missing, extracted, strict=True):
                store[path] = matrix
        return ClipFeatures.from_arrays([store[p] for p in clips.paths], paths=clips.paths)


def _sessions(clips: ClipSet) -> list[str]:
    return [f"{r.machine}/section_{r.section:02d}/{r.domain}" for r in clips]


def _subset(clips: ClipSet, **where: Any) -> ClipSet:
    return ClipSet(r for r in clips if all(getattr(r, k) == v for k, v in where.items()))


def _rates(detector: BaseDetector, features: ClipFeatures, clips: ClipSet, sessions: list[str]) -> dict[str, float]:
    """False-alarm rates on the normal clips: by each clip's session threshold and by the global one."""
    scores = detector.score(features)
    labels = detector.predict(features, sessions=sessions)
    normal = clips.labels == 0
    out = {}
    for domain in ("source", "target"):
        mask = normal & np.array([r.domain == domain for r in clips])
        out[f"fa_{domain}"] = float(labels[mask].mean())
        out[f"fa_{domain}_global"] = float((scores[mask] > detector.threshold_).mean())
    out["recall"] = float(labels[~normal].mean())
    out["recall_global"] = float((scores[~normal] > detector.threshold_).mean())
    return out


def run_setting(
    make: Callable[[], BaseDetector],
    setting: str,
    train: ClipSet,
    test: ClipSet,
    day2: ClipSet | None,
    cache: FeatureCache,
) -> dict[str, Any] | None:
    """One detector, one setting, every section: scores, DCASE metrics, false alarms; None if it cannot adapt."""
    all_scores = np.zeros(len(test))
    rates: list[dict[str, float]] = []
    day_rows: dict[str, list[Any]] = {"before": [], "after": []}
    day_scores = {"before": np.zeros(0), "after": np.zeros(0)}
    day_eval: ClipSet | None = None
    fit_s = score_s = 0.0
    sections = sorted({r.section for r in train})
    for section in sections:
        detector = make()
        source = _subset(train, section=section, domain="source")
        target = _subset(train, section=section, domain="target")
        fitting = source if setting == "source" or setting == "source+adapt" else source + target
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector.fit(cache.get(detector, fitting), sessions=_sessions(fitting))
            if setting == "source+adapt":
                try:
                    detector.adapt(cache.get(detector, target), sessions=_sessions(target))
                except ParameterError:
                    return None
        fit_s += time.perf_counter() - start
        mask = np.array([r.section == section for r in test])
        part = ClipSet(r for r in test if r.section == section)
        start = time.perf_counter()
        features = cache.get(detector, part)
        all_scores[mask] = detector.score(features)
        score_s += (time.perf_counter() - start) / len(part)
        rates.append(_rates(detector, features, part, _sessions(part)))
        if day2 is not None and setting == "source+target":
            day_part = ClipSet(r for r in day2 if r.section == section)
            adapt_idx = _day2_adapt_indices(day_part)
            evaluate = ClipSet(r for i, r in enumerate(day_part) if i not in adapt_idx)
            adapting = day_part.take(sorted(adapt_idx))
            day_features = cache.get(detector, evaluate)
            day_rows["before"].append(_rates(detector, day_features, evaluate, _sessions(evaluate)))
            day_scores["before"] = np.concatenate([day_scores["before"], detector.score(day_features)])
            keys = ["day2/" + s for s in _sessions(adapting)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    detector.adapt(cache.get(detector, adapting), sessions=keys)
                    adapted = True
                except ParameterError:
                    adapted = False
            if adapted:
                eval_keys = ["day2/" + s for s in _sessions(evaluate)]
                day_rows["after"].append(_rates(detector, day_features, evaluate, eval_keys))
                day_scores["after"] = np.concatenate([day_scores["after"], detector.score(day_features)])
            day_eval = evaluate if day_eval is None else day_eval + evaluate
    score = dcase_score(test, all_scores)
    row: dict[str, Any] = {
        **_dcase_columns(score),
        **{k: float(np.mean([r[k] for r in rates])) for k in rates[0]},
        "fit_s": round(fit_s, 2),
        "score_ms_per_clip": round(1000 * score_s / len(sections), 3),
    }
    if day_eval is not None:
        for when in ("before", "after"):
            if day_rows[when]:
                day = dcase_score(day_eval, day_scores[when])
                row[f"day2_{when}"] = {
                    **_dcase_columns(day),
                    **{k: float(np.mean([r[k] for r in day_rows[when]])) for k in day_rows[when][0]},
                }
    return row


def _day2_adapt_indices(clips: ClipSet) -> set[int]:
    """The first ``DAY2_ADAPT`` normal clips of each domain of a day-2 section (they adapt; the rest evaluate)."""
    chosen: set[int] = set()
    for domain in ("source", "target"):
        normal = [i for i, r in enumerate(clips) if r.domain == domain and r.label == "normal"]
        chosen.update(normal[:DAY2_ADAPT])
    return chosen


def _dcase_columns(score: Any) -> dict[str, float]:
    sections = score.sections
    return {
        "auc_source": float(np.mean([s.auc["source"] for s in sections])),
        "auc_target": float(np.mean([s.auc["target"] for s in sections])),
        "pauc": float(np.mean([s.pauc["all"] for s in sections])),
        "official": float(score.official),
    }


def session_holdout_comparison(seed: int, *, n_per_day: int = 60, duration: float = 1.0) -> dict[str, Any]:
    """Whole-session against random-clip hold-out: false alarms on a day the model never heard.

    Five recording days of section 0's fan drift slowly (speed +1 %, SNR -0.5 dB and microphone gain -0.5 dB
    a day). A ``ClipStatsDetector`` trains on days 0-3 with the default threshold (``target_fpr=0.01``),
    calibrated either on random held-out clips (no sessions: the old rule) or on whole held-out days
    (``sessions=`` the day); its false alarms are counted on day 4's normal clips.
    """
    from dataclasses import replace

    from soundanomaly.datasets.shift import Condition, generate_shift_clip
    from soundanomaly.detectors import ClipStatsDetector

    extractor = ClipStatsDetector().features
    days = []
    for day in range(5):
        condition = replace(Condition(), speed=1.0 + 0.01 * day, snr=6.0 - 0.5 * day, gain_db=-0.5 * day)
        clips = [
            generate_shift_clip(0, condition, duration=duration, seed=seed, stream=300 + day, clip_index=i)
            for i in range(n_per_day)
        ]
        days.append(ClipFeatures.from_arrays([extractor.transform(c, 16000) for c in clips]))
    train = ClipFeatures.from_arrays([m for d in days[:4] for m in d])
    sessions = [f"day{d}" for d in range(4) for _ in range(n_per_day)]
    out: dict[str, Any] = {"n_per_day": n_per_day, "duration_s": duration, "seed": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, given in (("random clips", None), ("whole sessions", sessions)):
            detector = ClipStatsDetector().fit(train, sessions=given)
            out[name] = {
                "threshold": float(detector.threshold_),
                "n_calibration_clips": len(detector.holdout_scores_),
                "new_day_false_alarms": float(detector.predict(days[4]).mean()),
            }
    return out


def real_mimii(tmp: Path) -> dict[str, Any] | None:
    """Cross-session false alarms on the real MIMII fan clips.

    The 14 clips hold no file-index runs (every file is ``00000000.wav``), but ids 04 and 06 each have two
    normal recordings made in different sessions (0 dB and 6 dB / unknown SNR: another background level).
    Each 10 s recording is cut into ten 1 s clips; a detector trained on one recording's clips is judged on
    the other recording's normal clips (a new session) before and after ``adapt`` on 5 of them, and on the
    same id's abnormal recordings (cut the same way), so that adapting is seen not to blind it.
    """
    import soundfile as sf

    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import ClipStatistics, ClipStatsDetector
    from soundanomaly.features.multichannel import MultiChannel

    if not REAL.is_dir():
        return None
    clips = open_dataset(REAL)

    def cut(record: Any, name: str) -> list[str]:
        signal, sr = sf.read(record.path, always_2d=True)
        paths = []
        for k in range(10):
            path = tmp / f"{name}_{k}.wav"
            sf.write(path, signal[k * sr : (k + 1) * sr], sr, subtype="PCM_16")
            paths.append(str(path))
        return paths

    makes: dict[str, Callable[[], BaseDetector]] = {
        "ClipStatsDetector (mic 0)": lambda: ClipStatsDetector(),
        "ClipStatsDetector (8 mics, delay_and_sum)": lambda: ClipStatsDetector(
            features=MultiChannel(ClipStatistics(), strategy="delay_and_sum"), channel=None
        ),
    }
    out: dict[str, Any] = {"pairs": []}
    for machine_id in sorted({r.machine_id for r in clips}):
        normal = [r for r in clips if r.machine_id == machine_id and r.label == "normal"]
        abnormal = [r for r in clips if r.machine_id == machine_id and r.label == "abnormal"]
        if len(normal) < 2:
            continue
        cuts = [cut(r, f"id{machine_id}_n{i}") for i, r in enumerate(normal)]
        faults = [p for i, r in enumerate(abnormal) for p in cut(r, f"id{machine_id}_a{i}")]
        for a, b in ((0, 1), (1, 0)):
            pair: dict[str, Any] = {
                "id": machine_id,
                "train": normal[a].path.split("mimii-fan/")[-1],
                "new_session": normal[b].path.split("mimii-fan/")[-1],
            }
            for name, make in makes.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    detector = make().fit(cuts[a], sessions=["train"] * 10)
                    before = float(detector.predict(cuts[b][5:]).mean())
                    detection_before = float(detector.predict(faults).mean())
                    detector.adapt(cuts[b][:5], sessions=["new"] * 5)
                    after = float(detector.predict(cuts[b][5:], sessions=["new"] * 5).mean())
                    detection_after = float(detector.predict(faults, sessions=["new"] * len(faults)).mean())
                pair[name] = {
                    "new_session_false_alarms": before,
                    "new_session_false_alarms_after_adapt": after,
                    "abnormal_detected": detection_before,
                    "abnormal_detected_after_adapt": detection_after,
                }
            out["pairs"].append(pair)
    return out


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| detector | training | AUC source | AUC target | pAUC | official (hmean) | FA source | FA target |"
        " recall | FA source (global) | FA target (global) | recall (global) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, settings in results["detectors"].items():
        for setting, row in settings.items():
            if row is None:
                lines.append(f"| {name} | {setting} | cannot adapt | | | | | | | | | |")
                continue
            lines.append(
                f"| {name} | {setting} | {row['auc_source']:.3f} | {row['auc_target']:.3f} | {row['pauc']:.3f} | "
                f"{row['official']:.3f} | {row['fa_source']:.1%} | {row['fa_target']:.1%} | {row['recall']:.1%} | "
                f"{row['fa_source_global']:.1%} | {row['fa_target_global']:.1%} | {row['recall_global']:.1%} |"
            )
            for when in ("before", "after"):
                day = row.get(f"day2_{when}")
                if day:
                    label = "new day" if when == "before" else "new day + adapt (10 clips)"
                    lines.append(
                        f"| {name} | {label} | {day['auc_source']:.3f} | {day['auc_target']:.3f} | {day['pauc']:.3f} "
                        f"| {day['official']:.3f} | {day['fa_source']:.1%} | {day['fa_target']:.1%} | "
                        f"{day['recall']:.1%} | {day['fa_source_global']:.1%} | {day['fa_target_global']:.1%} | "
                        f"{day['recall_global']:.1%} |"
                    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="moderate")
    parser.add_argument("--seed", type=int, default=EVALUATION_SEED, help="data seed (default: the frozen one)")
    parser.add_argument("--only", nargs="*", help="detector class names to run (default: all)")
    parser.add_argument("--snr", type=float, default=0.0, help="source-domain SNR in dB (default 0)")
    parser.add_argument("--severity", type=float, default=0.3, help="fault severity (default 0.3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shift.json")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        hardness = {"snr": args.snr, "severity": args.severity}
        _log(f"writing the shift set ({args.size}: {size}, {hardness}, seed {args.seed}) ...")
        dev = DCASE(write_shift_dataset(Path(tmp) / "dev", seed=args.seed, **size, **hardness))
        day2 = DCASE(
            write_shift_dataset(
                Path(tmp) / "day2",
                seed=args.seed,
                day=2,
                **{**size, "n_test": size["n_test"] + DAY2_ADAPT},
                **hardness,
            )
        )
        train, test = _subset(dev, split="train"), _subset(dev, split="test")
        cache = FeatureCache()
        results: dict[str, Any] = {
            "size": args.size,
            "sizes": size,
            "snr_db": args.snr,
            "severity": args.severity,
            "seed": args.seed,
            "frozen_evaluation_seed": args.seed == EVALUATION_SEED,
            "target_fpr": 0.01,
            "detectors": {},
        }
        for name, make in detector_factories().items():
            if args.only and name not in args.only:
                continue
            results["detectors"][name] = {}
            for setting in ("source", "source+target", "source+adapt"):
                start = time.perf_counter()
                row = run_setting(make, setting, train, test, day2 if setting == "source+target" else None, cache)
                results["detectors"][name][setting] = row
                summary = "cannot adapt" if row is None else f"hmean {row['official']:.3f}"
                _log(f"{name:32s} {setting:14s} {summary}  ({time.perf_counter() - start:.0f} s)")
    results["session_holdout"] = [session_holdout_comparison(args.seed + k) for k in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        results["real_mimii"] = real_mimii(Path(tmp))
    results["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    print(table)
    if args.write_docs:
        docs = ROOT / "docs" / "quality.rst"
        text = docs.read_text()
        block = ".. shift-results-start\n\n" + _rst(results) + "\n\n.. shift-results-end"
        text = re.sub(r"\.\. shift-results-start.*?\.\. shift-results-end", lambda _: block, text, flags=re.S)
        docs.write_text(text)
    _log(f"done in {results['wall_s']:.0f} s")
    return 0


def _rst(results: dict[str, Any]) -> str:
    header = [
        "detector",
        "training",
        "AUC src",
        "AUC tgt",
        "pAUC",
        "hmean",
        "FA src",
        "FA tgt",
        "recall",
        "FA src (global)",
        "FA tgt (global)",
        "recall (global)",
    ]
    rows = []
    for line in markdown_table(results).splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(cells + [""] * (len(header) - len(cells)))
    out = [".. list-table::", "   :header-rows: 1", ""]
    for cells in [header, *rows]:
        out.append("   * - " + cells[0])
        out.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
