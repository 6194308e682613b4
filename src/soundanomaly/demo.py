"""The main job: data → split → autoencoder → honest threshold → evaluation → report.

Run it with ``soundanomaly demo`` (or :func:`run_demo`). Without ``data`` it
synthesises a fan data set (cached, so re-runs skip that step).
"""

from __future__ import annotations

import csv
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

from soundanomaly import __version__, registry
from soundanomaly._safefiles import safe_csv_cell
from soundanomaly._safeio import atomic_dir
from soundanomaly.audio import load
from soundanomaly.calibration import Calibration, ThresholdCalibrator
from soundanomaly.datasets import MIMII, ClipSet, autoencoder_split, synthetic
from soundanomaly.demo_report import FIGURES, ReportInputs, html_page, markdown
from soundanomaly.detectors import AutoencoderDetector, PerGroup
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.evaluation import EvaluationReport, Evaluator
from soundanomaly.exceptions import ParameterError, SoundAnomalyError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.results import label_scores
from soundanomaly.typing import PathLike

__all__ = ["EXTRA_DETECTORS", "DemoResult", "default_cache_dir", "run_demo", "synthetic_default"]

_log = logging.getLogger("soundanomaly.demo")


def _demo_factory(name: str, per_group: bool) -> Callable[[LogMelFrames, int], BaseDetector]:
    """An unfitted registered detector: seeded; on the demo's log-mel features where it takes that kind."""

    def factory(features: LogMelFrames, seed: int) -> BaseDetector:
        cls = registry.get("detector", name)
        shares = isinstance(cls().features, type(features))  # then it reuses the log-mel features computed once
        detector: BaseDetector = cls(random_state=seed, **({"features": features} if shares else {}))
        return PerGroup(detector) if per_group else detector

    return factory


#: The report's extra rows, ``(label, factory)``, from the registry (``demo=`` on a line of
#: :data:`soundanomaly.registry.DETECTORS`); the first is the baseline. The autoencoder stays the reference
#: row (its model is saved in model/); each extra detector is fitted on the training clips and its threshold
#: calibrated on the same normal validation clips, with the same target false-alarm rate.
EXTRA_DETECTORS: list[tuple[str, Callable[[LogMelFrames, int], BaseDetector]]] = [
    (label, _demo_factory(name, per_group)) for label, name, per_group in registry.demo_detectors()
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


def _run(
    *,
    data: PathLike | None,
    epochs: int,
    target_fpr: float,
    seed: int,
    cache: Path,
    progress: bool,
    synthetic_params: dict[str, Any] | None,
) -> ReportInputs:
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
    return ReportInputs(
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


def _write_report(tmp: Path, r: ReportInputs) -> None:
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
    for name, _ in FIGURES:
        plots.save(figures[name](), tmp / name)
    r.detector.save(tmp / "model")
    predicted = label_scores(r.scores, r.detector.threshold_)  # the one predict rule: a NaN score is an anomaly
    with (tmp / "scores.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group", "label", "score", "predicted"])
        for record, score, label in zip(r.test, r.scores, predicted, strict=True):
            writer.writerow(
                [safe_csv_cell(record.path), safe_csv_cell(record.group), record.y, f"{score:.6g}", int(label)]
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
    (tmp / "report.md").write_text(markdown(r), encoding="utf-8")
    (tmp / "index.html").write_text(html_page(r), encoding="utf-8")
