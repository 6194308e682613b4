"""The main job: data → split → autoencoder → honest threshold → evaluation → report.

Run it with ``soundanomaly demo`` (or :func:`run_demo`). Without ``data`` it
synthesises a fan data set (cached, so re-runs skip that step).
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soundanomaly import __version__
from soundanomaly._safeio import atomic_dir, safe_csv_cell
from soundanomaly.audio import load
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets import MIMII, ClipSet, autoencoder_split, synthetic
from soundanomaly.detectors import AutoencoderDetector, ClipStatsDetector, GaussianDetector, PerGroup
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.evaluation import EvaluationReport, Evaluator, Metrics
from soundanomaly.exceptions import ParameterError, SoundAnomalyError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.typing import PathLike

__all__ = ["EXTRA_DETECTORS", "DemoResult", "default_cache_dir", "run_demo", "synthetic_default"]

_log = logging.getLogger("soundanomaly.demo")

# ---------------------------------------------------------------------------------------------------------------
# EXTRA DETECTOR ROWS of the report. The autoencoder stays the reference row (its model is saved in model/);
# every entry here adds one row: (label, factory). Each factory gets the feature extractor and the seed and
# returns an unfitted detector that takes the demo's log-mel features; it is fitted on the training clips and its
# threshold calibrated on the same normal validation clips, with the same target false-alarm rate.
# Add the best detector from the quality work here.
# ---------------------------------------------------------------------------------------------------------------
EXTRA_DETECTORS: list[tuple[str, Callable[[LogMelFrames, int], BaseDetector]]] = [
    ("Gaussian/Mahalanobis baseline", lambda features, seed: GaussianDetector(features=features, holdout=0.0)),
    # the best detector of the quality benchmark (docs: quality): clip statistics, one model per machine id
    ("clip statistics k-NN, per machine id", lambda features, seed: PerGroup(ClipStatsDetector(random_state=seed))),
]

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

    Attributes
    ----------
    out : Path
        The report folder.
    report : EvaluationReport
        The reference row: the autoencoder at the threshold calibrated on
        normal validation clips (per machine id and SNR too).
    baseline : EvaluationReport
        The first of :data:`EXTRA_DETECTORS` (the Gaussian baseline by default).
    optimistic : EvaluationReport
        The autoencoder at the threshold tuned on the test set (an upper bound).
    seconds : dict
        Seconds per step (data, features, training, scoring).
    extra : dict
        One report per entry of :data:`EXTRA_DETECTORS`, by label.

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
    extra: dict[str, EvaluationReport] = field(default_factory=dict)


def _say(message: str, enabled: bool) -> None:
    if enabled:
        _log.info("%s", message)


class _StatusOnStderr:
    """While the demo runs with ``progress``, show its status lines on stderr if nobody configured logging."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and not _log.hasHandlers()
        self.logger = logging.getLogger("soundanomaly")

    def __enter__(self) -> None:
        if self.enabled:
            self.level = self.logger.level
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(self.handler)
            self.logger.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


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
    overwrite: bool = False,
) -> DemoResult:
    """Train and evaluate the autoencoder route end to end and write a report.

    Parameters
    ----------
    out : path, default "report"
        Report folder: ``index.html``, ``report.md``, ``metrics.json``,
        ``scores.csv``, PNG plots and ``model/``. It is written atomically and
        only replaces a folder that soundanomaly wrote (or an empty one).
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
    overwrite : bool, default False
        Replace ``out`` even if soundanomaly did not write it (``--force``).
        A folder that holds the data or the cache is refused even then.

    Raises
    ------
    OutputExistsError
        ``out`` holds files soundanomaly did not write (and ``overwrite`` is
        False), or it contains the data, the cache or the working directory.
        Checked before any work starts; nothing is changed.

    Examples
    --------
    >>> result = run_demo("report", epochs=30)  # about a minute on 2 cores  # doctest: +SKIP
    >>> sorted(p.name for p in result.out.iterdir())[:3]  # doctest: +SKIP
    ['confusion_matrix.png', 'errors_vs_threshold.png', 'index.html']

    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ParameterError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(target_fpr, bool) or not isinstance(target_fpr, (int, float)) or not 0.0 <= target_fpr < 1.0:
        raise ParameterError(f"target_fpr must be a number in [0, 1), got {target_fpr!r}")
    cache = Path(cache_dir or default_cache_dir())
    inputs: list[PathLike] = [cache] + ([data] if data is not None else [])
    out_path = Path(out)
    # entered first: a refused output folder costs nothing, and a failed run leaves the old report in place
    with _StatusOnStderr(progress):
        with atomic_dir(out_path, kind="report", overwrite=overwrite, inputs=inputs) as tmp:
            r = _run(
                data=data,
                epochs=epochs,
                target_fpr=target_fpr,
                seed=seed,
                cache=cache,
                progress=progress,
                synthetic_params=synthetic_params,
            )
            _write_report(tmp, r)
        _say(f"\n{r.report.to_markdown()}\n\nReport: {out_path / 'index.html'}", progress)
    return DemoResult(
        out_path, r.report, r.extra[0][1] if r.extra else r.report, r.optimistic, r.timings, dict(r.extra)
    )


@dataclass
class _ReportInputs:
    source: str
    split_sizes: dict[str, int]
    parameters: dict[str, Any]
    detector: AutoencoderDetector
    calibration: Calibration
    scores: np.ndarray[Any, Any]
    test: ClipSet
    report: EvaluationReport
    optimistic: EvaluationReport
    test_tuned: Calibration
    extra: list[tuple[str, EvaluationReport]]
    timings: dict[str, float]
    notes: list[str]


def _run(
    *,
    data: PathLike | None,
    epochs: int,
    target_fpr: float,
    seed: int,
    cache: Path,
    progress: bool,
    synthetic_params: dict[str, Any] | None,
) -> _ReportInputs:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if data is None:
        _say("Synthesising the default fan data set (cached after the first run)...", progress)
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
    _say(
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

    calibrator = ThresholdCalibrator("target_fpr", target_fpr=target_fpr)
    notes: list[str] = []
    _say(f"Training the autoencoder ({epochs} epochs, {len(train.windows)} windows)...", progress)
    start = time.perf_counter()
    # The demo holds its validation clips out itself (holdout=0) and calibrates on them below, visibly.
    detector = AutoencoderDetector(
        features=extractor,
        epochs=epochs,
        seed=seed,
        random_state=seed,
        verbose=2 if progress else 0,
        threshold=calibrator,
        holdout=0.0,
    )
    detector, calibration = _fit_and_calibrate(detector, train, validation, calibrator, notes)
    timings["training"] = time.perf_counter() - start

    start = time.perf_counter()
    scores = detector.score(test)
    timings["scoring"] = time.perf_counter() - start
    labels, groups = split.test.labels, split.test.eval_groups
    evaluator = Evaluator(normal_as_positive=True)
    report = evaluator.evaluate(labels, scores, threshold=detector.threshold_, groups=groups)
    # The reference recipe's threshold, tuned on the test set itself: an optimistic upper bound.
    test_tuned = ThresholdCalibrator("min_errors").fit(scores, labels)
    optimistic = evaluator.evaluate(labels, scores, threshold=test_tuned.threshold)

    extra: list[tuple[str, EvaluationReport]] = []
    for label, factory in EXTRA_DETECTORS:
        other = factory(extractor, seed)
        try:
            if other.features == extractor:  # shares the log-mel features computed above
                other, _ = _fit_and_calibrate(other, train, validation, calibrator, notes)
                other_scores = other.score(test)
            else:  # its own features (e.g. clip statistics): give it the clips themselves
                other, _ = _fit_and_calibrate(other, split.train, split.validation, calibrator, notes)
                other_scores = other.score(split.test)
        except SoundAnomalyError as exc:  # e.g. too few clips per machine id for a per-id model
            notes.append(f"{label}: not evaluated ({exc})")
            _log.warning("%s: not evaluated (%s)", label, exc)
            continue
        extra.append((label, evaluator.evaluate(labels, other_scores, threshold=other.threshold_)))

    parameters: dict[str, Any] = {
        "soundanomaly version": __version__,
        "data": source,
        **({"data folder": str(root)} if data is None else {}),
        "seed": seed,
        "epochs": epochs,
        "target false-alarm rate": target_fpr,
        "threshold": f"{detector.threshold_:.6g}",
        "threshold rule": (
            f"target_fpr={target_fpr} on {calibration.n_normal} normal validation clips (never seen in training)"
        ),
        **{f"features.{k}": v for k, v in extractor.params().items()},
        **{
            f"autoencoder.{k}": v
            for k, v in detector.get_params().items()
            if k not in ("features", "threshold", "verbose", "progress")
        },
    }
    return _ReportInputs(
        source=source,
        split_sizes={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        parameters=parameters,
        detector=detector,
        calibration=calibration,
        scores=scores,
        test=split.test,
        report=report,
        optimistic=optimistic,
        test_tuned=test_tuned,
        extra=extra,
        timings=timings,
        notes=notes,
    )


def _fit_and_calibrate(
    detector: Any,
    train: ClipFeatures | ClipSet,
    validation: ClipFeatures | ClipSet,
    calibrator: ThresholdCalibrator,
    notes: list[str],
) -> tuple[Any, Calibration]:
    """Fit on the training clips, calibrate on the validation clips; keep calibration warnings for the report."""
    detector.set_params(threshold=calibrator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector.fit(train, validation=validation)  # trains on every training clip, calibrates on the validation clips
    calibration = detector.calibration_
    for warning in caught:
        message = f"{type(detector).__name__}: {warning.message}"
        if message not in notes:
            notes.append(message)
            _log.warning("%s", message)
    return detector, calibration


_FIGURES: list[tuple[str, str]] = [
    ("score_histogram.png", "Anomaly scores of the test clips per class; the dashed line is the threshold."),
    ("roc.png", "ROC curve, anomaly as the positive class; the shaded band is the pAUC region (FPR ≤ 0.1)."),
    ("confusion_matrix.png", "Confusion matrix of the test clips at the calibrated threshold."),
    ("threshold_sweep.png", "Each test clip's score (x: clip index), coloured by its true class."),
    (
        "errors_vs_threshold.png",
        "False alarms and missed faults for every threshold on the test set (the reference's test-tuned sweep).",
    ),
    ("waveforms.png", "Waveform of one normal and one abnormal test clip, same amplitude scale."),
    ("stft_first_64ms.png", "Magnitude spectrum of the first 64 ms of the two clips."),
    ("spectrogram_normal.png", "Spectrogram (dB) of the normal clip."),
    ("spectrogram_abnormal.png", "Spectrogram (dB) of the abnormal clip."),
]


def _write_report(tmp: Path, r: _ReportInputs) -> None:
    from soundanomaly import plots

    labels = r.test.labels
    normal_clip = r.test.filter(label="normal")[0].path
    abnormal_clip = r.test.filter(label="abnormal")[0].path
    normal, sr = load(normal_clip)
    abnormal, _ = load(abnormal_clip)
    figures = {
        "waveforms.png": lambda: plots.plot_waveforms(normal, abnormal, sr),
        "stft_first_64ms.png": lambda: plots.plot_stft_window([normal, abnormal], sr),
        "spectrogram_normal.png": lambda: plots.plot_spectrogram(normal, sr, title=f"normal: {Path(normal_clip).name}"),
        "spectrogram_abnormal.png": lambda: plots.plot_spectrogram(
            abnormal, sr, title=f"abnormal: {Path(abnormal_clip).name}"
        ),
        "score_histogram.png": lambda: plots.plot_score_histogram(r.scores, labels, threshold=r.detector.threshold_),
        "threshold_sweep.png": lambda: plots.plot_threshold_sweep(r.scores, labels, threshold=r.detector.threshold_),
        "errors_vs_threshold.png": lambda: plots.plot_errors_vs_threshold(r.test_tuned),
        "confusion_matrix.png": lambda: plots.plot_confusion_matrix(r.report.overall),
        "roc.png": lambda: plots.plot_roc(labels, r.scores),
    }
    for name, _ in _FIGURES:
        plots.save(figures[name](), tmp / name)
    r.detector.save(tmp / "model")
    with (tmp / "scores.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group", "label", "score", "predicted"])
        for record, score in zip(r.test, r.scores, strict=True):
            writer.writerow(
                [
                    safe_csv_cell(record.path),
                    safe_csv_cell(record.group),
                    record.y,
                    f"{score:.6g}",
                    int(score > r.detector.threshold_),
                ]
            )
    metrics = {
        "library_version": __version__,
        "data": r.source,
        "split": r.split_sizes,
        "parameters": r.parameters,
        "threshold": {"value": r.detector.threshold_, "calibrated_with": r.parameters["threshold rule"]},
        "autoencoder": json.loads(r.report.to_json()),
        "test_tuned_threshold_optimistic": json.loads(r.optimistic.to_json()),
        **({"gaussian_baseline": json.loads(r.extra[0][1].to_json())} if r.extra else {}),
        "extra_detectors": {label: json.loads(rep.to_json()) for label, rep in r.extra},
        "notes": r.notes,
        "seconds": r.timings,
    }
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
    (tmp / "report.md").write_text(_markdown(r), encoding="utf-8")
    (tmp / "index.html").write_text(_html(r), encoding="utf-8")


def _summary_rows(r: _ReportInputs) -> list[tuple[str, str, EvaluationReport]]:
    rows = [
        ("autoencoder (reference)", "calibrated on normal validation clips (honest)", r.report),
        ("autoencoder (reference)", "tuned on the test set (reference recipe, optimistic)", r.optimistic),
    ]
    rows += [(label, "calibrated on normal validation clips", rep) for label, rep in r.extra]
    return [(name, f"{how}: {rep.threshold:.4g}", rep) for name, how, rep in rows]


def _markdown(r: _ReportInputs) -> str:
    lines = [
        "# soundanomaly demo report",
        "",
        f"Data: {r.source}. Split: "
        + ", ".join(f"{k} {v}" for k, v in r.split_sizes.items())
        + " clips. Anomaly is the positive class.",
        f"Threshold: {r.detector.threshold_:.6g} ({r.parameters['threshold rule']}).",
        "",
        "| detector | threshold | precision | recall | F1 | accuracy | AUC | pAUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, how, rep in _summary_rows(r):
        m = rep.overall
        lines.append(
            f"| {name} | {how} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.accuracy:.3f} "
            f"| {m.roc_auc:.3f} | {m.pauc:.3f} |"
        )
    lines += ["", "## Autoencoder per machine id and SNR", "", r.report.to_markdown(), ""]
    if r.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in r.notes], ""]
    lines.append("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items()))
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f23; line-height: 1.45;
       max-width: 1180px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.reference td { font-weight: 600; }
table.params td:first-child { font-family: ui-monospace, monospace; white-space: nowrap; }
.figures { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid #d0d7de; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9em; color: #57606a; margin-top: 6px; }
.notes li { color: #7d4e00; }
code { background: #f6f8fa; padding: 0 4px; }
"""


def _num(value: float | int) -> str:
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{int(value)}</td>'
    return f'<td class="num">{"n/a" if np.isnan(value) else f"{value:.3f}"}</td>'


def _metric_cells(m: Metrics) -> str:
    return "".join(
        _num(v) for v in (m.n_clips, m.n_anomalies, m.tp, m.fp, m.tn, m.fn, m.precision, m.recall, m.f1, m.accuracy)
    ) + "".join(_num(v) for v in (m.roc_auc, m.pauc))


_METRIC_HEAD = (
    "<th>clips</th><th>anomalies</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th><th>precision</th>"
    "<th>recall</th><th>F1</th><th>accuracy</th><th>AUC</th><th>pAUC</th>"
)


def _html(r: _ReportInputs) -> str:
    e = html.escape
    reference = ' class="reference"'
    summary = "\n".join(
        f"<tr{reference if i == 0 else ''}><td>{e(name)}</td><td>{e(how)}</td>{_metric_cells(rep.overall)}</tr>"
        for i, (name, how, rep) in enumerate(_summary_rows(r))
    )
    group_rows = [("all test clips", r.report.overall), *sorted(r.report.groups.items())]
    groups = "\n".join(f"<tr><td>{e(name)}</td>{_metric_cells(m)}</tr>" for name, m in group_rows)
    params = "\n".join(f"<tr><td>{e(str(k))}</td><td>{e(_plain(v))}</td></tr>" for k, v in r.parameters.items())
    split = "".join(f"<tr><td>{e(k)}</td>{_num(v)}</tr>" for k, v in r.split_sizes.items())
    timings = "".join(f"<tr><td>{e(k)}</td>{_num(round(v, 1))}</tr>" for k, v in r.timings.items())
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(caption)}" loading="lazy"><figcaption>{e(caption)}</figcaption></figure>'
        for name, caption in _FIGURES
    )
    notes = ""
    if r.notes:
        items = "".join(f"<li>{e(note)}</li>" for note in r.notes)
        notes = f'<h2 id="notes">Notes</h2>\n<ul class="notes">{items}</ul>'
    normal_positive = ""
    if r.report.normal_positive:
        np_ = r.report.normal_positive
        normal_positive = (
            f"<p>With normal as the positive class (as the reference blog reported): precision "
            f"{np_['precision']:.3f}, recall {np_['recall']:.3f}, F1 {np_['f1']:.3f}.</p>"
        )
    threshold = r.detector.threshold_
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soundanomaly demo report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>soundanomaly demo report</h1>
<p>Data: {e(r.source)}. <strong>Anomaly is the positive class</strong> in every metric and plot. The autoencoder's
threshold is <strong>{threshold:.6g}</strong>: {e(r.parameters["threshold rule"])}.</p>

<h2 id="results">Results on the test clips</h2>
<table class="results">
<caption>One row per detector and threshold. The test-tuned row has seen the test labels: an upper bound.</caption>
<thead><tr><th>detector</th><th>threshold</th>{_METRIC_HEAD}</tr></thead>
<tbody>
{summary}
</tbody>
</table>
{normal_positive}

<h2 id="groups">Autoencoder per machine id and SNR</h2>
<table class="groups">
<caption>Calibrated threshold {threshold:.6g}; pAUC over false-positive rate ≤ {r.report.max_fpr:g}.</caption>
<thead><tr><th>group</th>{_METRIC_HEAD}</tr></thead>
<tbody>
{groups}
</tbody>
</table>

<h2 id="figures">Figures</h2>
<div class="figures">
{figures}
</div>
{notes}
<h2 id="parameters">Run parameters</h2>
<table class="params">
<caption>What this report was made with.</caption>
<thead><tr><th>parameter</th><th>value</th></tr></thead>
<tbody>
{params}
</tbody>
</table>
<table class="split">
<caption>Clips per part of the split</caption>
<thead><tr><th>part</th><th>clips</th></tr></thead>
<tbody>{split}</tbody>
</table>
<table class="timings">
<caption>Seconds per step</caption>
<thead><tr><th>step</th><th>seconds</th></tr></thead>
<tbody>{timings}</tbody>
</table>

<h2 id="files">Files</h2>
<ul>
<li><a href="metrics.json">metrics.json</a>: every number above, machine-readable.</li>
<li><a href="scores.csv">scores.csv</a>: one row per test clip (path, group, label, score, predicted).</li>
<li><a href="report.md">report.md</a>: this summary as Markdown.</li>
<li><code>model/</code>: the trained autoencoder; load it with <code>soundanomaly.load_model("model")</code>
or score new clips with <code>soundanomaly score model CLIPS...</code>.</li>
</ul>
</body>
</html>
"""


def _plain(value: Any) -> str:
    """A parameter value as text a person reads (no Python reprs of containers)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "(none)"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
