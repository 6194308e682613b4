"""The ``soundanomaly`` command line: demo, explore, train, score, evaluate.

Errors print one line (``soundanomaly: error: ...``) on stderr and exit with
status 2; arguments are checked before any work. A run that finished but left
clips out (``--skip-errors``) or got an invalid (NaN/inf) score exits with 1.
Status and warnings go to stderr through the ``soundanomaly`` logger
(``--quiet``: warnings only; ``-v``: debug); results go to stdout or files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import math
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from soundanomaly import __version__, _cli_download, _cli_monitor
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["main"]

_log = logging.getLogger("soundanomaly.cli")

#: Exit status of a run that finished but left clips out or got invalid scores.
EXIT_PARTIAL = 1
#: Exit status of an error (nothing, or nothing complete, was written).
EXIT_ERROR = 2
#: Clips scored per ``detector.score`` call (the unit of progress and of error isolation).
SCORE_CHUNK = 32


# -- argument types: every value is checked when the command line is parsed --------------------------
def _int_type(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _float_type(low: float, high: float, *, low_open: bool = True, high_open: bool = True) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    return parse


def _snr_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (dB), got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (dB), got {text}")
    return value


_positive = _int_type(1)
_non_negative = _int_type(0)
_fpr = _float_type(0.0, 1.0)
_fraction = _float_type(0.0, 1.0, low_open=False)
_max_fpr = _float_type(0.0, 1.0, high_open=False)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``soundanomaly: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"soundanomaly: error: {message} (see '{self.prog} --help')\n")


# -- logging and warnings ------------------------------------------------------------------------------
class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"soundanomaly: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"soundanomaly: warning: {message}"
        return message


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool, verbose: int) -> Iterator[None]:
    """For one command: the ``soundanomaly`` logger prints to stderr; its previous state is restored after."""
    logger = logging.getLogger("soundanomaly")
    saved = logger.level, logger.propagate
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    logging.getLogger("soundanomaly").warning("%s", message)


def _silence_tensorflow() -> None:
    """TensorFlow's start-up banners (CUDA, oneDNN, absl) are noise on a command line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _require_tensorflow(purpose: str) -> None:
    """Fail before any work (feature extraction) when the ``tf`` extra is missing; then import it quietly."""
    import importlib.util

    from soundanomaly.exceptions import MissingDependencyError

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError("tensorflow", "tf", purpose)
    _import_tensorflow_quietly()


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr (fd 2) muted.

    Recent TensorFlow logs from C++ (absl) before ``TF_CPP_MIN_LOG_LEVEL`` is
    honoured ("oneDNN custom operations are on", CUDA probes). Import errors
    are not hidden: the import is simply retried, with stderr, where it is used.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreter): just import normally later
        return
    try:
        os.dup2(devnull, 2)
        with contextlib.suppress(Exception):  # a failing import is reported again, with stderr, where it is used
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# -- inputs and outputs --------------------------------------------------------------------------------
def _wav_paths(items: Sequence[str]) -> list[str]:
    """Clips named on the command line: files as given, folders searched for ``*.wav`` (any case, as ``MIMII``)."""
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if "://" not in item and path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                raise SoundAnomalyError(f"{item}: folder holds no .wav files")
            paths += found
        else:
            paths.append(item)
    return paths


def _local(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if "://" not in p]


def _check_out_folder(out: str, *, force: bool, inputs: Sequence[str]) -> None:
    """Refuse, before any work, an output folder that ``save`` would refuse after it (see ``_safeio``)."""
    from soundanomaly._safeio import OutputExistsError, _check_inputs, _contains, _resolved, folder_kind

    folder = _resolved(out)
    _check_inputs(folder, _local(inputs))
    ancestor = folder
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if ancestor != folder and not ancestor.is_dir():
        raise OutputExistsError(f"{out}: cannot create the folder: {ancestor} is a file, not a folder")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another output path")
    kind = folder_kind(folder)
    if _contains(folder, _resolved(os.getcwd())) and kind != "empty":
        raise OutputExistsError(f"{out}: refusing to replace the current working directory (or a folder holding it)")
    if kind is None and not force:
        raise OutputExistsError(
            f"{out}: exists and was not written by soundanomaly; choose another folder, or pass --force to replace it"
        )


def _check_out_file(target: str | None, inputs: Sequence[str]) -> None:
    if target:
        from soundanomaly._safeio import check_output_file

        check_output_file(target, inputs=_local(inputs))
        parent = Path(os.path.abspath(target)).parent
        if not parent.is_dir():
            raise SoundAnomalyError(f"{target}: cannot write: {parent} is not an existing folder")


def _cmd_demo(args: argparse.Namespace) -> int:
    import inspect

    inputs = [args.data] if args.data else []
    if args.cache_dir:
        inputs.append(args.cache_dir)
    _check_out_folder(args.out, force=args.force, inputs=inputs)
    _require_tensorflow("the demo (it trains the autoencoder)")
    from soundanomaly.demo import run_demo

    synthetic = {"n_normal": args.normal_per_id, "n_abnormal": args.abnormal_per_id} if args.data is None else None
    options: dict[str, Any] = {}
    if "overwrite" in inspect.signature(run_demo).parameters:
        options["overwrite"] = args.force
    run_demo(
        args.out,
        data=args.data,
        epochs=args.epochs,
        target_fpr=args.target_fpr,
        seed=args.seed,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
        synthetic_params=synthetic,
        **options,
    )
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    import soundfile as sf

    from soundanomaly.audio import read_bytes
    from soundanomaly.datasets import open_dataset
    from soundanomaly.exceptions import AudioError

    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out_folder_for_plots(out)
    clips = open_dataset(args.data)
    print(f"{args.data}: {clips!r}")
    counts = Counter((r.machine, r.machine_id, r.snr, r.label) for r in clips)
    print(f"{'machine':<10}{'id':>4}{'SNR dB':>10}{'normal':>9}{'abnormal':>10}")
    for machine, machine_id, snr in sorted(
        {k[:3] for k in counts}, key=lambda k: (k[0], k[1], k[2] is None, k[2] or 0)
    ):
        snr_text = "unknown" if snr is None else f"{snr:g}"
        print(
            f"{machine:<10}{machine_id:>4}{snr_text:>10}{counts[(machine, machine_id, snr, 'normal')]:>9}"
            f"{counts[(machine, machine_id, snr, 'abnormal')]:>10}"
        )
    for record in clips:  # the first clip that can be read (a corrupt one is reported, not fatal)
        try:
            import io

            info = sf.info(io.BytesIO(read_bytes(record.path)))
        except (AudioError, sf.LibsndfileError, RuntimeError, TypeError) as exc:
            _log.warning("%s: not a readable audio file (%s)", record.path, getattr(exc, "problem", exc))
            continue
        print(f"first clip: {info.samplerate} Hz, {info.channels} channel(s), {info.duration:.2f} s, {info.subtype}")
        break
    if out is not None:
        from soundanomaly import plots
        from soundanomaly.audio import load

        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SoundAnomalyError(f"{out}: cannot create the folder ({exc.strerror or exc})") from exc
        normal, abnormal = clips.filter(label="normal"), clips.filter(label="abnormal")
        if normal and abnormal:
            a, sr = load(normal[0].path, channel=args.channel)
            b, _ = load(abnormal[0].path, channel=args.channel)
            plots.save(plots.plot_waveforms(a, b, sr), out / "waveforms.png")
            plots.save(plots.plot_stft_window([a, b], sr), out / "stft_first_64ms.png")
            plots.save(plots.plot_spectrogram(a, sr, title="normal"), out / "spectrogram_normal.png")
            plots.save(plots.plot_spectrogram(b, sr, title="abnormal"), out / "spectrogram_abnormal.png")
            _log.info("plots written to %s", out)
        else:
            _log.warning("no plots: %s needs both a normal and an abnormal clip", args.data)
    return 0


def _check_out_folder_for_plots(out: Path) -> None:
    """``explore --out``: a folder (new or existing) for a few PNGs; a file there is an error."""
    ancestor = out.absolute()
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SoundAnomalyError(f"{out}: cannot write plots there: {ancestor} is a file, not a folder")


def _cmd_train(args: argparse.Namespace) -> int:
    from soundanomaly.calibration import ThresholdCalibrator
    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import (
        AutoencoderDetector,
        BaseDetector,
        ClipStatsDetector,
        GaussianDetector,
        MachineIdDetector,
        PerGroup,
    )

    _check_out_folder(args.out, force=args.force, inputs=[args.data])
    if args.detector in ("autoencoder", "machine-id"):
        _require_tensorflow(f"training the {args.detector} detector")
    normal = open_dataset(args.data, split="train").filter(ids=args.ids, snr=args.snr, label="normal")
    if len(normal) < 2:
        raise SoundAnomalyError(f"{args.data}: fewer than 2 normal clips to train on (after --ids/--snr filters)")
    common: dict[str, Any] = {
        "channel": args.channel,
        "threshold": ThresholdCalibrator("target_fpr", target_fpr=args.target_fpr),
        "holdout": args.validation_fraction,
        "progress": not args.quiet,
        "on_error": "skip" if args.skip_errors else "raise",
        "random_state": args.seed,
    }
    detector: BaseDetector
    verbose = 2 if args.verbose else 0  # Keras' per-epoch lines only with -v
    if args.detector == "autoencoder":
        detector = AutoencoderDetector(epochs=args.epochs, seed=args.seed, verbose=verbose, **common)
    elif args.detector == "clipstats":
        detector = ClipStatsDetector(**common)
    elif args.detector == "machine-id":
        detector = MachineIdDetector(epochs=args.epochs, seed=args.seed, verbose=verbose, **common)
    else:
        detector = GaussianDetector(**common)
    if args.per_id:  # one model (and one calibrated threshold) per machine id / DCASE section
        detector = PerGroup(detector, progress=common["progress"], on_error=common["on_error"], random_state=args.seed)
    _log.info(
        "training %s on %d normal clips (%g held out to calibrate)",
        args.detector,
        len(normal),
        args.validation_fraction,
    )
    detector.fit(normal)
    skipped = list(getattr(detector, "fit_skipped_", ()))  # each one was logged when it was skipped
    calibration = getattr(detector, "calibration_", None)
    held_out = len(getattr(detector, "holdout_scores_", ()))
    where = f"{held_out} held-out normal clips" if held_out else "the training clips (nothing held out)"
    if calibration is not None:
        _log.info("threshold %.6g (target_fpr=%g on %s)", detector.threshold_, args.target_fpr, where)
    detector.progress = False  # a saved model is quiet when loaded; the CLI draws its own bars
    detector.on_error = "raise"  # --skip-errors is this run's choice, not the model's default
    saved = detector.save(args.out, overwrite=args.force, inputs=[args.data])
    _log.info("model saved to %s", saved)
    if skipped:
        _log.warning("%d of %d clip(s) could not be read and were left out", len(skipped), len(normal))
        return EXIT_PARTIAL
    return 0


def _model_rate(detector: Any) -> int | None:
    rate = getattr(getattr(detector, "features", None), "sr", None)
    return int(rate) if isinstance(rate, int) else None


def _file_rate(path: str) -> int | None:
    if "://" in path:
        return None
    import soundfile as sf

    try:
        return int(sf.info(path).samplerate)
    except Exception:  # only informative: the scoring itself reports unreadable clips
        return None


class _Scored:
    """Per-clip outcome of a scoring run: ``score`` (NaN unless ok), ``status`` (ok/invalid/error), ``reason``."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.scores = np.full(n, np.nan)
        self.status = ["ok"] * n
        self.reason = [""] * n

    def fail(self, index: int, status: str, reason: str) -> None:
        self.status[index] = status
        self.reason[index] = reason

    @property
    def ok(self) -> list[int]:
        return [i for i, s in enumerate(self.status) if s == "ok"]


def _score_paths(detector: Any, paths: Sequence[str], *, skip_errors: bool, quiet: bool, desc: str) -> _Scored:
    """Score clips through the detector's public ``score`` only (any detector works), with one progress bar.

    Clips are scored in chunks of :data:`SCORE_CHUNK`. A chunk that fails with
    an unreadable clip (``--skip-errors``) or a non-finite score is re-scored
    clip by clip to find the culprits. A NaN/inf score is status ``invalid``,
    never a normal; an unreadable clip is ``error`` (without ``--skip-errors``
    it stops the run).
    """
    import numpy as np

    from soundanomaly._progress import ProgressBar
    from soundanomaly.exceptions import AudioError, InvalidScoreError, InvalidScoreWarning

    result = _Scored(len(paths))

    def run(chunk: Sequence[str]) -> Any:
        with warnings.catch_warnings():  # each clip without a valid score is reported below, once
            warnings.simplefilter("ignore", InvalidScoreWarning)
            scores = np.asarray(detector.score(list(chunk)), dtype=np.float64)
        if scores.shape != (len(chunk),):
            raise SoundAnomalyError(f"the detector returned {scores.shape} scores for {len(chunk)} clips")
        return scores

    if getattr(detector, "progress", False) is True:
        detector.progress = False  # this function draws the one bar of the run
    bar = ProgressBar(total=len(paths), desc=desc, enabled=not quiet)  # closed on success only: no bar after an error
    for start in range(0, len(paths), SCORE_CHUNK):
        chunk = paths[start : start + SCORE_CHUNK]
        try:
            result.scores[start : start + len(chunk)] = run(chunk)
            statuses = getattr(detector, "last_status_", None)
            if isinstance(statuses, tuple) and len(statuses) == len(chunk):
                for j, text in enumerate(statuses):
                    if isinstance(text, str) and text.startswith("skipped"):
                        result.fail(start + j, "error", text.partition(": ")[2] or text)
        except (AudioError, InvalidScoreError) as exc:
            if isinstance(exc, AudioError) and not skip_errors:
                raise
            for j, path in enumerate(chunk):
                try:
                    result.scores[start + j] = run([path])[0]
                except InvalidScoreError:
                    result.fail(start + j, "invalid", "NaN or infinite score")
                except AudioError as clip_error:
                    if not skip_errors:
                        raise
                    result.fail(start + j, "error", clip_error.problem)
        bar.update(len(chunk))
    bar.close()
    for i in map(int, np.flatnonzero(~np.isfinite(result.scores))):
        if result.status[i] == "ok":
            result.fail(i, "invalid", "NaN or infinite score")
    for i, status in enumerate(result.status):
        if status != "ok":
            _log.warning("%s: %s (%s)", paths[i], status, result.reason[i])
    return result


def _cmd_score(args: argparse.Namespace) -> int:
    from soundanomaly._safeio import atomic_file, safe_csv_cell
    from soundanomaly.audio import allow_http
    from soundanomaly.detectors import load_model

    paths = _wav_paths(args.paths)
    inputs = [*paths, args.model]
    _check_out_file(args.csv, inputs)
    detector = load_model(args.model)
    threshold = _threshold(detector)
    with allow_http(args.allow_http):
        scored = _score_paths(detector, paths, skip_errors=args.skip_errors, quiet=args.quiet, desc="scoring")
    model_rate = _model_rate(detector)
    header = ["path", "score", "label", "status", "reason", "resampled_from_hz"]
    rows = []
    for i, path in enumerate(paths):
        ok = scored.status[i] == "ok"
        rate = _file_rate(path) if model_rate is not None else None
        rows.append(
            [
                path,
                f"{scored.scores[i]:.6g}" if ok else "",
                ("anomaly" if scored.scores[i] > threshold else "normal") if ok else "anomaly",  # fail closed
                scored.status[i],
                scored.reason[i],
                str(rate) if rate is not None and rate != model_rate else "",
            ]
        )
    if args.csv:
        with atomic_file(args.csv, "w", newline="", inputs=_local(inputs)) as handle:
            _write_csv(handle, header, rows, safe_csv_cell)
        _log.info("scores of %d clip(s) written to %s", len(rows), args.csv)
    else:
        _write_csv(sys.stdout, header, rows, safe_csv_cell)
        sys.stdout.flush()
    return EXIT_PARTIAL if len(scored.ok) < len(paths) else 0


def _write_csv(handle: Any, header: list[str], rows: list[list[str]], cell: Callable[[object], object]) -> None:
    """Write rows; text columns (path, status, reason) go through ``cell`` (no spreadsheet formulas)."""
    text = [header.index(name) for name in ("path", "status", "reason") if name in header]
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows([[cell(v) if i in text else v for i, v in enumerate(row)] for row in rows])


def _threshold(detector: Any) -> float:
    """The loaded detector's ``threshold_`` (protocol attribute), as a finite float."""
    value = getattr(detector, "threshold_", None)
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise SoundAnomalyError(f"the model has no usable threshold_ (got {value!r})")
    return threshold


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from soundanomaly._safeio import atomic_file
    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import load_model
    from soundanomaly.evaluation import Evaluator

    inputs = [args.data, args.model]
    _check_out_file(args.json, inputs)
    detector = load_model(args.model)
    threshold = _threshold(detector)
    clips = open_dataset(args.data, split="test").filter(ids=args.ids, snr=args.snr)
    seen = _training_clips_in(detector, clips.paths)
    if seen:
        if args.exclude_training:
            keep = set(clips.paths) - set(seen)
            clips = clips.take([i for i, path in enumerate(clips.paths) if path in keep])
            _log.warning("left out %d clip(s) the model was trained or calibrated on", len(seen))
            if not len(clips):
                raise SoundAnomalyError(f"{args.data}: every selected clip was used to train the model")
        else:
            _log.warning(
                "%d of the %d clips (e.g. %s) were used to train or calibrate this model: the metrics are "
                "optimistic (--exclude-training leaves them out)",
                len(seen),
                len(clips),
                seen[0],
            )
    paths = clips.paths
    scored = _score_paths(detector, paths, skip_errors=args.skip_errors, quiet=args.quiet, desc="scoring")
    ok = scored.ok
    if not ok:
        raise SoundAnomalyError(f"{args.data}: no clip could be scored")
    groups = clips.groups
    report = Evaluator(max_fpr=args.max_fpr).evaluate(
        clips.labels[ok], scored.scores[ok], threshold=threshold, groups=[groups[i] for i in ok]
    )
    print(report.to_markdown())
    if all(record.layout.startswith("dcase") for record in clips):
        official = Evaluator(max_fpr=args.max_fpr).dcase_score(clips.take(ok), scored.scores[ok])
        print("\nDCASE Task 2 official score:\n\n" + official.to_markdown())
    left_out = len(paths) - len(ok)
    if left_out:
        counts = Counter(scored.status[i] for i in range(len(paths)) if scored.status[i] != "ok")
        print(f"\n{left_out} clip(s) left out of the metrics: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if args.json:
        with atomic_file(args.json, "w", inputs=_local(inputs)) as handle:
            handle.write(report.to_json())
        _log.info("metrics written to %s", args.json)
    return EXIT_PARTIAL if left_out else 0


def _training_clips_in(detector: Any, paths: Sequence[str]) -> list[str]:
    """Which ``paths`` the model records as its training clips (none when it records nothing)."""
    if not getattr(detector, "training_clips_", None):
        return []
    try:
        from soundanomaly.detectors import find_training_clips
    except ImportError:  # pragma: no cover - older library
        return []
    return list(find_training_clips(detector, list(paths)))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs).

    Examples
    --------
    >>> args = build_parser().parse_args(["score", "model", "clips/", "--skip-errors"])
    >>> args.paths, args.skip_errors, args.csv
    (['clips/'], True, None)
    """
    parser = _Parser(
        prog="soundanomaly",
        description="Detect malfunctioning machines by their sound (MIMII-style recordings).",
        epilog="Start with 'soundanomaly demo': it needs no download. Exit status: 0 done, 1 done but some clips "
        "were skipped or scored invalid, 2 error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chatter = _Parser(add_help=False)
    chatter.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines (warnings only)")
    chatter.add_argument("-v", "--verbose", action="count", default=0, help="debug output on stderr")

    def force(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument(
            "--force",
            action="store_true",
            help=f"replace an existing {what} folder not written by soundanomaly (never one holding the input data)",
        )

    def skip_errors(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--skip-errors",
            action="store_true",
            help="leave out clips that cannot be read, report them on stderr (and in the CSV), finish, exit 1",
        )

    demo = sub.add_parser(
        "demo", parents=[chatter], help="train and evaluate on synthetic fans (or --data) and write a report"
    )
    demo.add_argument("--data", help="MIMII-layout folder (default: synthetic fans, generated and cached)")
    demo.add_argument("--out", default="report", help="report folder (default: report)")
    force(demo, "report")
    demo.add_argument("--epochs", type=_positive, default=30, help="autoencoder epochs (default: 30)")
    demo.add_argument("--target-fpr", type=_fpr, default=0.01, help="false-alarm rate on validation clips (0.01)")
    demo.add_argument("--normal-per-id", type=_positive, default=100, help="synthetic normal clips per fan id (100)")
    demo.add_argument("--abnormal-per-id", type=_positive, default=30, help="synthetic abnormal clips per fan id (30)")
    demo.add_argument("--seed", type=_non_negative, default=0, help="random seed (default: 0)")
    demo.add_argument("--cache-dir", help="cache for the synthetic set and features (default: ~/.cache/soundanomaly)")
    demo.set_defaults(func=_cmd_demo)

    explore = sub.add_parser(
        "explore", parents=[chatter], help="summarise a MIMII-layout folder and plot a normal and an abnormal clip"
    )
    explore.add_argument("data", help="MIMII-layout folder")
    explore.add_argument("--out", help="write waveform/spectrum/spectrogram PNGs into this folder")
    explore.add_argument("--channel", type=int, default=0, help="microphone (default: 0; -1 = the last)")
    explore.set_defaults(func=_cmd_explore)

    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ids", type=_non_negative, nargs="+", help="machine ids to use (default: all)")
        p.add_argument("--snr", type=_snr_type, nargs="+", help="SNRs in dB to use (default: all)")

    train = sub.add_parser(
        "train", parents=[chatter], help="train on the normal clips of a MIMII-layout folder and save the model"
    )
    train.add_argument("data", help="MIMII-layout folder")
    train.add_argument("--out", required=True, help="model folder to write ('.' works in an empty folder)")
    force(train, "model")
    train.add_argument(
        "--detector",
        choices=["autoencoder", "gaussian", "clipstats", "machine-id"],
        default="autoencoder",
        help="model (default: autoencoder, the reference recipe; clipstats with --per-id holds up best in noise)",
    )
    train.add_argument(
        "--per-id",
        action="store_true",
        help="one model and one calibrated threshold per machine id (MIMII) or section (DCASE), saved as one model",
    )
    train.add_argument("--epochs", type=_positive, default=30, help="autoencoder/machine-id epochs (default: 30)")
    train.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.2,
        help="share of the normal clips held out to calibrate the threshold, in [0, 1) (default: 0.2)",
    )
    train.add_argument(
        "--target-fpr", type=_fpr, default=0.01, help="false-alarm rate on held-out normal clips, in (0, 1) (0.01)"
    )
    train.add_argument("--channel", type=int, default=0, help="microphone (default: 0; -1 = the last)")
    train.add_argument("--seed", type=_non_negative, default=0, help="random seed (default: 0)")
    skip_errors(train)
    selection(train)
    train.set_defaults(func=_cmd_train)

    score = sub.add_parser(
        "score", parents=[chatter], help="score clips with a saved model: CSV of path, score, label, status"
    )
    score.add_argument("model", help="model folder written by 'train' or 'demo'")
    score.add_argument(
        "paths", nargs="+", help=".wav files (or s3:// URLs) or folders (searched recursively for *.wav, any case)"
    )
    score.add_argument("--csv", help="write the CSV here instead of stdout (never over an input)")
    score.add_argument(
        "--allow-http", action="store_true", help="also fetch http(s):// URLs (off: only local files and s3://)"
    )
    skip_errors(score)
    score.set_defaults(func=_cmd_score)

    evaluate = sub.add_parser(
        "evaluate", parents=[chatter], help="metrics of a saved model on a labelled MIMII-layout folder"
    )
    evaluate.add_argument("model", help="model folder written by 'train' or 'demo'")
    evaluate.add_argument("data", help="labelled MIMII-layout (or DCASE) folder")
    evaluate.add_argument("--json", help="also write the metrics as JSON here")
    evaluate.add_argument("--max-fpr", type=_max_fpr, default=0.1, help="pAUC range, in (0, 1] (default: 0.1)")
    evaluate.add_argument(
        "--exclude-training",
        action="store_true",
        help="leave out the clips the model was trained or calibrated on (default: warn about them)",
    )
    skip_errors(evaluate)
    selection(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)
    _cli_download.add_commands(sub)
    _cli_monitor.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soundanomaly`` console script; returns the exit status (0, 1 or 2).

    0: done; 1: done, but some clips were skipped (``--skip-errors``) or got
    an invalid (NaN/inf) score; 2: error (one line on stderr).

    Examples
    --------
    >>> main(["score", "no-such-model", "clip.wav"])  # stderr: soundanomaly: error: ... not a saved model
    2
    """
    _silence_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet, verbose = bool(getattr(args, "quiet", False)), int(getattr(args, "verbose", 0) or 0)
    from soundanomaly.exceptions import SoundAnomalyWarning

    with _logging_to_stderr(quiet, verbose), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("default", SoundAnomalyWarning)
        warnings.filterwarnings("default", category=UserWarning, module="soundanomaly")
        try:
            return int(args.func(args))
        except SoundAnomalyError as exc:
            print(f"soundanomaly: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:  # disk full, permissions, a path that vanished: one line, never a traceback
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"soundanomaly: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("soundanomaly: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
