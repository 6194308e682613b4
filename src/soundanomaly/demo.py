"""The main job: data → split → autoencoder → honest threshold → evaluation → report.

Run it with ``soundanomaly demo`` (or :func:`run_demo`). Without ``data`` it
synthesises a fan data set (cached, so re-runs skip that step).
"""

from __future__ import annotations

import csv
import html
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly import __version__
from soundanomaly.audio import load
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import MIMII, ClipSet, autoencoder_split, synthetic
from soundanomaly.detectors import AutoencoderDetector, GaussianDetector
from soundanomaly.detectors.base import _atomic_dir
from soundanomaly.evaluation import EvaluationReport, Evaluator
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import LogMelFrames
from soundanomaly.typing import PathLike

__all__ = ["DemoResult", "default_cache_dir", "run_demo", "synthetic_default"]

#: Size of the embedded default data set: 4 fan ids x (100 normal + 30 abnormal) clips of 10 s.
SYNTHETIC_DEFAULT: dict[str, Any] = {"ids": (0, 2, 4, 6), "n_normal": 100, "n_abnormal": 30, "snr": 6.0, "seed": 0}


def default_cache_dir() -> Path:
    """``$SOUNDANOMALY_CACHE``, else ``$XDG_CACHE_HOME/soundanomaly``, else ``~/.cache/soundanomaly``.

    Examples
    --------
    >>> import os
    >>> os.environ["SOUNDANOMALY_CACHE"] = "/tmp/sa-cache"
    >>> str(default_cache_dir())
    '/tmp/sa-cache'
    >>> del os.environ["SOUNDANOMALY_CACHE"]

    """
    if os.environ.get("SOUNDANOMALY_CACHE"):
        return Path(os.environ["SOUNDANOMALY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "soundanomaly"


def synthetic_default(cache_dir: PathLike | None = None, *, progress: bool = True, **overrides: Any) -> Path:
    """Write (once) and return the synthetic fan data set used by the demo.

    Examples
    --------
    >>> root = synthetic_default("cache", progress=False, ids=(0,), n_normal=2, n_abnormal=1, duration=0.5)
    >>> len(list(root.rglob("*.wav")))
    3

    """
    params = {**SYNTHETIC_DEFAULT, **overrides}
    key = "-".join(f"{k}{v}" for k, v in sorted(params.items())).replace(" ", "").replace(",", "_")
    root = Path(cache_dir or default_cache_dir()) / "synthetic" / f"v1-{key}"
    done = root / "complete.json"
    if not done.exists():
        synthetic.write_dataset(root, progress=progress, **params)
        done.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}))
    return root


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured and where it wrote the report.

    Examples
    --------
    >>> result = run_demo("report", progress=False)  # doctest: +SKIP
    >>> round(result.report.overall.roc_auc, 3)  # doctest: +SKIP
    0.986

    """

    out: Path
    report: EvaluationReport
    baseline: EvaluationReport
    optimistic: EvaluationReport
    seconds: dict[str, float]


def _log(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def run_demo(
    out: PathLike = "report",
    *,
    data: PathLike | None = None,
    epochs: int = 30,
    target_fpr: float = 0.01,
    seed: int = 0,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    synthetic_params: dict[str, Any] | None = None,
) -> DemoResult:
    """Train and evaluate the autoencoder route end to end and write a report.

    Parameters
    ----------
    out : path, default "report"
        Report folder (replaced atomically): ``index.html``, ``report.md``,
        ``metrics.json``, ``scores.csv``, PNG plots and ``model/``.
    data : path, optional
        A MIMII-layout folder. Default: the synthetic fan set.
    epochs : int, default 30
    target_fpr : float, default 0.01
        False-alarm rate allowed on the normal validation clips.
    seed : int, default 0
        Seed of the split and of training.
    cache_dir : path, optional
        Where the synthetic set and feature cache live (:func:`default_cache_dir`).
    progress : bool, default True
        Progress messages and bars on stderr.
    synthetic_params : dict, optional
        Overrides of :data:`SYNTHETIC_DEFAULT` (e.g. fewer clips).

    Examples
    --------
    >>> result = run_demo("report", epochs=30)  # about a minute on 2 cores  # doctest: +SKIP
    >>> sorted(p.name for p in result.out.iterdir())[:3]  # doctest: +SKIP
    ['confusion_matrix.png', 'errors_vs_threshold.png', 'index.html']

    """
    timings: dict[str, float] = {}
    cache = Path(cache_dir or default_cache_dir())
    start = time.perf_counter()
    if data is None:
        _log("Synthesising the default fan data set (cached after the first run)...", progress)
        root = synthetic_default(cache, progress=progress, **(synthetic_params or {}))
        source = "synthetic fans (soundanomaly.datasets.synthetic)"
    else:
        root = Path(data)
        source = str(root)
    clips = MIMII(root)
    timings["data"] = time.perf_counter() - start
    split = autoencoder_split(clips, validation_fraction=0.1, seed=seed)
    if len(split.test.filter(label="abnormal")) == 0:
        raise ParameterError(f"{root}: no abnormal clips, so nothing to evaluate against")
    _log(
        f"Data: {clips!r}; train {len(split.train)}, validation {len(split.validation)}, test {len(split.test)}",
        progress,
    )

    extractor = LogMelFrames()
    start = time.perf_counter()
    feature_cache = cache / "features"
    train, validation, test = (
        extractor.extract(part.paths, cache_dir=feature_cache, progress=progress)
        for part in (split.train, split.validation, split.test)
    )
    timings["features"] = time.perf_counter() - start

    _log(f"Training the autoencoder ({epochs} epochs, {len(train.windows)} windows)...", progress)
    start = time.perf_counter()
    detector = AutoencoderDetector(features=extractor, epochs=epochs, seed=seed, verbose=2 if progress else 0)
    detector.fit(train)
    timings["training"] = time.perf_counter() - start
    calibration = detector.calibrate(validation, calibrator=ThresholdCalibrator("target_fpr", target_fpr=target_fpr))

    start = time.perf_counter()
    scores = detector.score(test)
    timings["scoring"] = time.perf_counter() - start
    labels, groups = split.test.labels, split.test.groups
    evaluator = Evaluator(normal_as_positive=True)
    report = evaluator.evaluate(labels, scores, threshold=detector.threshold_, groups=groups)
    # The reference recipe's threshold, tuned on the test set itself: an optimistic upper bound.
    test_tuned = ThresholdCalibrator("min_errors").fit(scores, labels)
    optimistic = evaluator.evaluate(labels, scores, threshold=test_tuned.threshold)

    baseline_detector = GaussianDetector(features=extractor).fit(train)
    baseline_detector.calibrate(validation, calibrator=ThresholdCalibrator("target_fpr", target_fpr=target_fpr))
    baseline = evaluator.evaluate(labels, baseline_detector.score(test), threshold=baseline_detector.threshold_)

    result_files = _ReportInputs(
        source=source,
        split_sizes={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        detector=detector,
        calibration_strategy=f"target_fpr={target_fpr} on {len(split.validation)} normal validation clips",
        scores=scores,
        test=split.test,
        report=report,
        optimistic=optimistic,
        test_tuned=test_tuned,
        baseline=baseline,
        timings=timings,
        validation_calibration=calibration,
    )
    out_path = Path(out)
    _write_report(out_path, result_files)
    _log(f"\n{report.to_markdown()}\n\nReport: {out_path / 'index.html'}", progress)
    return DemoResult(out_path, report, baseline, optimistic, timings)


@dataclass
class _ReportInputs:
    source: str
    split_sizes: dict[str, int]
    detector: AutoencoderDetector
    calibration_strategy: str
    scores: np.ndarray[Any, Any]
    test: ClipSet
    report: EvaluationReport
    optimistic: EvaluationReport
    test_tuned: Any
    baseline: EvaluationReport
    timings: dict[str, float]
    validation_calibration: Any


def _write_report(out: Path, r: _ReportInputs) -> None:
    from soundanomaly import plots

    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_dir(out) as tmp:
        labels = r.test.labels
        normal_clip = r.test.filter(label="normal")[0].path
        abnormal_clip = r.test.filter(label="abnormal")[0].path
        normal, sr = load(normal_clip)
        abnormal, _ = load(abnormal_clip)
        figures = {
            "waveforms.png": plots.plot_waveforms(normal, abnormal, sr),
            "stft_first_64ms.png": plots.plot_stft_window([normal, abnormal], sr),
            "spectrogram_normal.png": plots.plot_spectrogram(normal, sr, title=f"normal: {Path(normal_clip).name}"),
            "spectrogram_abnormal.png": plots.plot_spectrogram(
                abnormal, sr, title=f"abnormal: {Path(abnormal_clip).name}"
            ),
            "score_histogram.png": plots.plot_score_histogram(r.scores, labels, threshold=r.detector.threshold_),
            "threshold_sweep.png": plots.plot_threshold_sweep(r.scores, labels, threshold=r.detector.threshold_),
            "errors_vs_threshold.png": plots.plot_errors_vs_threshold(r.test_tuned),
            "confusion_matrix.png": plots.plot_confusion_matrix(r.report.overall),
            "roc.png": plots.plot_roc(labels, r.scores),
        }
        for name, fig in figures.items():
            plots.save(fig, tmp / name)
        r.detector.save(tmp / "model")
        with (tmp / "scores.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "group", "label", "score", "predicted"])
            for record, score in zip(r.test, r.scores, strict=True):
                writer.writerow(
                    [record.path, record.group, record.y, f"{score:.6g}", int(score > r.detector.threshold_)]
                )
        metrics = {
            "library_version": __version__,
            "data": r.source,
            "split": r.split_sizes,
            "threshold": {"value": r.detector.threshold_, "calibrated_with": r.calibration_strategy},
            "autoencoder": json.loads(r.report.to_json()),
            "test_tuned_threshold_optimistic": json.loads(r.optimistic.to_json()),
            "gaussian_baseline": json.loads(r.baseline.to_json()),
            "seconds": r.timings,
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        markdown = _markdown(r)
        (tmp / "report.md").write_text(markdown)
        (tmp / "index.html").write_text(_html(r, list(figures)))


def _summary_rows(r: _ReportInputs) -> list[tuple[str, EvaluationReport]]:
    return [
        ("autoencoder, threshold from normal validation clips (honest)", r.report),
        ("autoencoder, threshold tuned on the test set (reference recipe, optimistic)", r.optimistic),
        ("Gaussian/Mahalanobis baseline, validation threshold", r.baseline),
    ]


def _markdown(r: _ReportInputs) -> str:
    lines = [
        "# soundanomaly demo report",
        "",
        f"Data: {r.source}. Split: {r.split_sizes}. Anomaly is the positive class.",
        f"Threshold: {r.detector.threshold_:.6g} ({r.calibration_strategy}).",
        "",
        "| detector / threshold | precision | recall | F1 | accuracy | AUC | pAUC |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rep in _summary_rows(r):
        m = rep.overall
        lines.append(
            f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.accuracy:.3f} | {m.roc_auc:.3f} "
            f"| {m.pauc:.3f} |"
        )
    lines += ["", "## Autoencoder per machine id and SNR", "", r.report.to_markdown(), ""]
    lines.append("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items()))
    return "\n".join(lines) + "\n"


def _html(r: _ReportInputs, figures: list[str]) -> str:
    md = html.escape(_markdown(r))
    images = "\n".join(
        f'<figure><img src="{name}" alt="{name}"><figcaption>{name}</figcaption></figure>' for name in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>soundanomaly demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
pre{{background:#f6f8fa;padding:1em;overflow-x:auto}} img{{max-width:100%}}
figure{{display:inline-block;margin:0.5em;max-width:48%;vertical-align:top}}</style></head>
<body><h1>soundanomaly demo report</h1>
<p>Files: <a href="metrics.json">metrics.json</a>, <a href="scores.csv">scores.csv</a>, <a href="report.md">report.md</a>,
model in <code>model/</code> (load with <code>soundanomaly.detectors.load("model")</code>).</p>
<pre>{md}</pre>
{images}
</body></html>
"""
