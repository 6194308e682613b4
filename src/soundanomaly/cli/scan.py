"""``soundanomaly scan``: score a long recording in flat memory; an events table, CSVs and a plot.

``scan MODEL long.wav`` prints an events table; ``--out DIR`` also writes
``events.csv``, ``scores.csv`` (through the same safe CSV writer as
``score``: atomic, never over an input) and ``scan.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from soundanomaly.cli._common import add_output, chatter, check_out_files, fill_csv, local, safe_text
from soundanomaly.cli.monitor import add_window_options, monitor_kwargs
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["add_parser", "run"]

_OUTPUTS = ("events.csv", "scores.csv", "scan.png")


def add_parser(subparsers: Any) -> None:
    """Add ``scan`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    scan = subparsers.add_parser(
        "scan", parents=[chatter()], help="score a long recording in flat memory: events table, CSVs and a plot"
    )
    add_window_options(scan)
    scan.add_argument("recording", help="audio file (any length)")
    add_output(scan, "--out", kind="files", help="write events.csv, scores.csv and scan.png here")
    scan.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly scan``; returns the exit status."""
    from soundanomaly.streaming import scan
    from soundanomaly.streaming.monitor import group_detector, load_model

    inputs = [args.recording, args.model]
    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_files(out, _OUTPUTS, inputs, force=args.force)
    model = load_model(args.model)  # once: the scan and the explanations
    result = scan(model, args.recording, **monitor_kwargs(args))
    bands = _event_bands(result, args, group_detector(model, args.group)[0])
    print(
        f"{safe_text(result.recording)}: {result.duration:.1f} s, {len(result.scores)} windows, threshold {result.threshold:.4g}"
    )
    print(f"{'start [s]':>10} {'end [s]':>10} {'peak':>10} {'at [s]':>10}  top bands")
    for event, top in zip(result.events, bands, strict=True):
        end = "ongoing" if event.end is None else f"{event.end:.2f}"
        print(f"{event.start:10.2f} {end:>10} {event.peak_score:10.4g} {event.peak_time:10.2f}  {top}")
    if not result.events:
        print("no events")
    if out is not None:
        from soundanomaly import plots
        from soundanomaly._safefiles import atomic_outputs

        with atomic_outputs(out, _OUTPUTS, inputs=local(inputs), overwrite=args.force) as paths:  # all or nothing
            fill_csv(
                paths["events.csv"],
                ["start", "end", "detected_at", "peak_score", "peak_time", "threshold", "top_bands"],
                [
                    [
                        f"{event.start:.3f}",
                        "" if event.end is None else f"{event.end:.3f}",
                        f"{event.detected_at:.3f}",
                        f"{event.peak_score:.6g}",
                        f"{event.peak_time:.3f}",
                        f"{event.threshold:.6g}",
                        top,
                    ]
                    for event, top in zip(result.events, bands, strict=True)
                ],
                text_columns=("top_bands",),
            )
            fill_csv(
                paths["scores.csv"],
                ["start", "end", "score", "above"],
                [
                    [f"{row['start']:.3f}", f"{row['end']:.3f}", f"{row['score']:.6g}", int(row["above"])]
                    for row in result.to_rows()
                ],
            )
            plots.save(result.plot(), paths["scan.png"])
        print(f"events.csv, scores.csv and scan.png written to {safe_text(out)}")
    return 0


def _event_bands(result: Any, args: argparse.Namespace, detector: Any) -> list[str]:
    """Top deviating bands of each event's peak window ("" where the detector cannot explain)."""
    import soundfile as sf

    from soundanomaly.explain import explain

    if not result.events:
        return []
    texts = []
    for event in result.events:
        stop = round(event.peak_time * result.sr)
        start = max(0, stop - round(args.window * result.sr))
        try:
            segment, sr = sf.read(result.recording, start=start, stop=stop, dtype="float32", always_2d=True)
            top = explain(detector, segment[:, args.channel], sr).top_bands(3)
            texts.append("; ".join(f"{b.low_hz:.0f}-{b.high_hz:.0f} Hz" for b in top))
        except SoundAnomalyError:
            texts.append("")
    return texts
