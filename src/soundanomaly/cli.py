"""The ``soundanomaly`` command line: demo, explore, train, score, evaluate.

Errors print one line (``soundanomaly: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from soundanomaly import __version__
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["main"]


def _wav_paths(items: Sequence[str]) -> list[str]:
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*.wav"))
            if not found:
                raise SoundAnomalyError(f"{item}: folder holds no .wav files")
            paths += found
        else:
            paths.append(item)
    return paths


def _cmd_demo(args: argparse.Namespace) -> int:
    from soundanomaly.demo import run_demo

    synthetic = {"n_normal": args.normal_per_id, "n_abnormal": args.abnormal_per_id} if args.data is None else None
    run_demo(
        args.out,
        data=args.data,
        epochs=args.epochs,
        target_fpr=args.target_fpr,
        seed=args.seed,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
        synthetic_params=synthetic,
    )
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    import soundfile as sf

    from soundanomaly.datasets import MIMII

    clips = MIMII(args.data)
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
    info = sf.info(clips[0].path)
    print(f"first clip: {info.samplerate} Hz, {info.channels} channel(s), {info.duration:.2f} s, {info.subtype}")
    if args.out:
        from soundanomaly import plots
        from soundanomaly.audio import load

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        normal, abnormal = clips.filter(label="normal"), clips.filter(label="abnormal")
        if normal and abnormal:
            a, sr = load(normal[0].path, channel=args.channel)
            b, _ = load(abnormal[0].path, channel=args.channel)
            plots.save(plots.plot_waveforms(a, b, sr), out / "waveforms.png")
            plots.save(plots.plot_stft_window([a, b], sr), out / "stft_first_64ms.png")
            plots.save(plots.plot_spectrogram(a, sr, title="normal"), out / "spectrogram_normal.png")
            plots.save(plots.plot_spectrogram(b, sr, title="abnormal"), out / "spectrogram_abnormal.png")
            print(f"plots written to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from soundanomaly.calibration import ThresholdCalibrator
    from soundanomaly.datasets import MIMII, autoencoder_split
    from soundanomaly.detectors import AutoencoderDetector, BaseDetector, GaussianDetector

    normal = MIMII(args.data).filter(ids=args.ids, snr=args.snr, label="normal")
    if len(normal) < 2:
        raise SoundAnomalyError(f"{args.data}: fewer than 2 normal clips to train on (after --ids/--snr filters)")
    # every normal clip trains, but for the held-out share that calibrates the threshold
    split = autoencoder_split(normal, validation_fraction=args.validation_fraction, seed=args.seed)
    detector: BaseDetector
    if args.detector == "autoencoder":
        detector = AutoencoderDetector(
            epochs=args.epochs, seed=args.seed, channel=args.channel, verbose=2, progress=True
        )
    else:
        detector = GaussianDetector(channel=args.channel, progress=True)
    print(f"training {args.detector} on {len(split.train)} normal clips", file=sys.stderr)
    detector.fit(split.train)
    if len(split.validation):
        cal = detector.calibrate(
            split.validation, calibrator=ThresholdCalibrator("target_fpr", target_fpr=args.target_fpr)
        )
        print(
            f"threshold {cal.threshold:.6g} (target_fpr={args.target_fpr} on {len(split.validation)} held-out normal clips)"
        )
    detector.save(args.out)
    print(f"model saved to {args.out}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from soundanomaly.detectors import load

    detector = load(args.model)
    paths = _wav_paths(args.paths)
    scores = detector.score(paths)
    handle = open(args.csv, "w", newline="") if args.csv else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["path", "score", "label"])
        for path, score in zip(paths, scores, strict=True):
            writer.writerow([path, f"{score:.6g}", "anomaly" if score > detector.threshold_ else "normal"])
    finally:
        if handle is not sys.stdout:
            handle.close()
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from soundanomaly.datasets import MIMII
    from soundanomaly.detectors import load
    from soundanomaly.evaluation import Evaluator

    detector = load(args.model)
    clips = MIMII(args.data).filter(ids=args.ids, snr=args.snr)
    report = Evaluator(max_fpr=args.max_fpr).evaluate(
        clips.labels, detector.score(clips), threshold=detector.threshold_, groups=clips.groups
    )
    print(report.to_markdown())
    if args.json:
        Path(args.json).write_text(report.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs)."""
    parser = argparse.ArgumentParser(
        prog="soundanomaly",
        description="Detect malfunctioning machines by their sound (MIMII-style recordings).",
        epilog="Start with 'soundanomaly demo': it needs no download.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="train and evaluate on synthetic fans (or --data) and write a report")
    demo.add_argument("--data", help="MIMII-layout folder (default: synthetic fans, generated and cached)")
    demo.add_argument("--out", default="report", help="report folder (default: report)")
    demo.add_argument("--epochs", type=int, default=30, help="autoencoder epochs (default: 30)")
    demo.add_argument("--target-fpr", type=float, default=0.01, help="false-alarm rate on validation clips (0.01)")
    demo.add_argument("--normal-per-id", type=int, default=100, help="synthetic normal clips per fan id (100)")
    demo.add_argument("--abnormal-per-id", type=int, default=30, help="synthetic abnormal clips per fan id (30)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--cache-dir", help="cache for the synthetic set and features (default: ~/.cache/soundanomaly)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(func=_cmd_demo)

    explore = sub.add_parser("explore", help="summarise a MIMII-layout folder and plot a normal and an abnormal clip")
    explore.add_argument("data", help="MIMII-layout folder")
    explore.add_argument("--out", help="write waveform/spectrum/spectrogram PNGs here")
    explore.add_argument("--channel", type=int, default=0, help="microphone (default: 0)")
    explore.set_defaults(func=_cmd_explore)

    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ids", type=int, nargs="+", help="machine ids to use (default: all)")
        p.add_argument("--snr", type=float, nargs="+", help="SNRs in dB to use (default: all)")

    train = sub.add_parser("train", help="train on the normal clips of a MIMII-layout folder and save the model")
    train.add_argument("data", help="MIMII-layout folder")
    train.add_argument("--out", required=True, help="model folder to write")
    train.add_argument("--detector", choices=["autoencoder", "gaussian"], default="autoencoder")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--validation-fraction", type=float, default=0.1, help="normal clips held out to calibrate")
    train.add_argument("--target-fpr", type=float, default=0.01)
    train.add_argument("--channel", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    selection(train)
    train.set_defaults(func=_cmd_train)

    score = sub.add_parser("score", help="score clips with a saved model: CSV of path, score, label")
    score.add_argument("model", help="model folder written by 'train' or 'demo'")
    score.add_argument("paths", nargs="+", help=".wav files or folders (searched recursively)")
    score.add_argument("--csv", help="write the CSV here instead of stdout")
    score.set_defaults(func=_cmd_score)

    evaluate = sub.add_parser("evaluate", help="metrics of a saved model on a labelled MIMII-layout folder")
    evaluate.add_argument("model")
    evaluate.add_argument("data")
    evaluate.add_argument("--json", help="also write the metrics as JSON here")
    evaluate.add_argument("--max-fpr", type=float, default=0.1, help="pAUC range (default: 0.1)")
    selection(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soundanomaly`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SoundAnomalyError as exc:
        print(f"soundanomaly: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"soundanomaly: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soundanomaly: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
