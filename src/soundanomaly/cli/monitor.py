"""``soundanomaly monitor``: score live audio (a WAV file, a watched folder or raw PCM on stdin) and print alerts.

``monitor MODEL SOURCE`` scores a WAV file (``--realtime`` paces it), a
watched folder receiving clips, or raw PCM on stdin (``-``), printing one line
per alert raised or cleared on stdout and a live status line on stderr (when
it is a terminal and ``-q`` is not given). ``--jsonl`` appends every alert as a
JSON line, flushed at once. Ctrl-C stops it cleanly: the JSONL file is
complete, the summary printed, exit status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from soundanomaly._safefiles import open_append
from soundanomaly.cli._common import EXIT_PARTIAL, add_output, chatter, check_out_file, float_type, int_type, local
from soundanomaly.exceptions import ParameterError

__all__ = ["add_parser", "add_window_options", "monitor_kwargs", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``monitor`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``).

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="soundanomaly")
    >>> add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["monitor", "model", "-", "--rate", "16000", "--raise", "2", "4"])
    >>> args.source, args.rate, args.raise_kn, args.window
    ('-', 16000, [2, 4], 10.0)
    """
    monitor = subparsers.add_parser(
        "monitor",
        parents=[chatter()],
        help="score live audio (WAV file, watched folder or raw PCM on stdin) and print alerts",
    )
    add_window_options(monitor)
    monitor.add_argument("source", help="a WAV file, a folder receiving clips, or '-' for raw PCM on stdin")
    add_output(monitor, "--jsonl", kind="append", help="append alerts here as JSON lines (flushed at once)")
    monitor.add_argument("--realtime", action="store_true", help="pace a WAV file as if it were being recorded")
    monitor.add_argument("--rate", type=_rate, default=16000, help="stdin: sample rate in Hz (default: 16000)")
    monitor.add_argument("--format", choices=["s16le", "f32le"], default="s16le", help="stdin: sample format")
    monitor.add_argument("--channels", type=_channels, default=1, help="stdin: interleaved channels (default: 1)")
    monitor.add_argument("--poll", type=_seconds, default=1.0, help="folder: seconds between looks (default: 1)")
    monitor.add_argument("--idle-timeout", type=_seconds, help="folder: stop after this many seconds without a clip")
    monitor.add_argument("--no-existing", action="store_true", help="folder: skip the clips already there")
    monitor.set_defaults(func=run)


def add_window_options(p: argparse.ArgumentParser) -> None:
    """The model and window/alert options that ``monitor`` and ``scan`` share."""
    p.add_argument("model", help="model folder written by 'train' or 'demo'")
    p.add_argument("--window", type=_seconds, default=10.0, help="seconds of audio per score (default: 10)")
    p.add_argument("--hop", type=_seconds, default=1.0, help="seconds between scores (default: 1)")
    p.add_argument("--threshold", type=_finite, help="alert threshold (default: the model's)")
    p.add_argument("--raise", dest="raise_kn", type=int, nargs=2, default=[2, 3], metavar=("K", "N"),
                   help="raise an alert when K of the last N windows are above the threshold (default: 2 3)")  # fmt: skip
    p.add_argument("--clear", type=int, default=3, metavar="M", help="clear after M windows below (default: 3)")
    p.add_argument("--channel", type=int, default=0, help="channel of multi-channel audio (default: 0)")
    p.add_argument("--group", help="per-id models (train --per-id): the group to monitor, e.g. fan/id_00")


# bounds checked when the command line is parsed (the same as the library's: streaming.MAX_WINDOW_SECONDS,
# streaming.sources.MAX_PCM_CHANNELS, audio.MIN/MAX_SAMPLE_RATE; tests/test_output_rule.py compares them)
_seconds = float_type(0.0, 3600.0, high_open=False)
_rate = int_type(1_000, 768_000)
_channels = int_type(1, 1024)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def monitor_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Monitor``/``scan`` keywords of the shared window options."""
    k, n = args.raise_kn
    return {
        "window_seconds": args.window,
        "hop_seconds": args.hop,
        "threshold": args.threshold,
        "raise_k": k,
        "raise_n": n,
        "clear_m": args.clear,
        "channel": args.channel,
        "group": args.group,
    }


def _source(args: argparse.Namespace) -> Iterable[Any]:
    from soundanomaly.monitor import FolderSource, PcmSource, WavFileSource

    if args.source == "-":
        return PcmSource(sys.stdin.buffer, sr=args.rate, format=args.format, channels=args.channels,
                         channel=args.channel)  # fmt: skip
    path = Path(args.source)
    if path.is_dir():
        return FolderSource(path, poll_seconds=args.poll, idle_timeout=args.idle_timeout,
                            existing=not args.no_existing, channel=args.channel)  # fmt: skip
    if not path.exists():
        raise ParameterError(f"source {args.source!r}: no such file or folder (use '-' for stdin)")
    return WavFileSource(path, realtime=args.realtime, channel=args.channel)


def _event_line(kind: str, event: Any) -> str:
    if kind == "raised":
        return (
            f"ALERT    start {event.start:9.2f} s  detected {event.detected_at:9.2f} s  "
            f"score {event.peak_score:.4g} > threshold {event.threshold:.4g}"
        )
    if kind == "cleared":
        return (
            f"CLEARED  {event.start:9.2f} s - {event.end:9.2f} s  peak {event.peak_score:.4g} "
            f"at {event.peak_time:.2f} s  ({event.n_windows} windows above)"
        )
    return f"ONGOING  since {event.start:9.2f} s  peak {event.peak_score:.4g} at {event.peak_time:.2f} s"


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly monitor``; returns the exit status."""
    from soundanomaly.monitor import Monitor

    inputs = [args.model] + ([] if args.source == "-" else [args.source])
    check_out_file(args.jsonl, inputs, force=args.force, append=True)
    monitor = Monitor(args.model, **monitor_kwargs(args))
    source = _source(args)
    status = sys.stderr.isatty() and not args.quiet
    with contextlib.ExitStack() as stack:
        jsonl = (
            stack.enter_context(open_append(args.jsonl, inputs=local(inputs), overwrite=args.force))
            if args.jsonl
            else None
        )
        return _monitor(args, monitor, source, status, jsonl)


def _monitor(args: argparse.Namespace, monitor: Any, source: Iterable[Any], status: bool, jsonl: IO[str] | None) -> int:
    n_windows = 0

    def emit(kind: str, event: Any) -> None:
        if status:
            sys.stderr.write("\r\033[K")
        print(_event_line(kind, event), flush=True)
        if jsonl is not None:
            jsonl.write(json.dumps({"type": kind, **event.to_dict()}) + "\n")
            jsonl.flush()

    interrupted = False
    try:
        for window in monitor.run(source):
            n_windows += 1
            if window.raised is not None:
                emit("raised", window.raised)
            if window.cleared is not None:
                emit("cleared", window.cleared)
            if status:
                state = "ALERT" if monitor.alerter.active is not None else "ok"
                sys.stderr.write(
                    f"\r\033[K{window.end:10.2f} s  score {window.score:10.4g}  "
                    f"threshold {window.threshold:.4g}  {state}"
                )
                sys.stderr.flush()
    except KeyboardInterrupt:
        interrupted = True
    for event in monitor.events:
        if event.ongoing:
            emit("ongoing", event)
    if status:
        sys.stderr.write("\r\033[K")
    how = "stopped" if interrupted else "stream ended"
    print(
        f"{how} after {monitor.position:.1f} s of audio: {n_windows} windows, {len(monitor.events)} alert(s)",
        file=sys.stderr,
    )
    if n_windows == 0 and not interrupted:  # nothing was judged: never a silent "all clear"
        print(
            f"soundanomaly: warning: no window was scored: the stream held {monitor.position:.1f} s of audio, "
            f"less than one window ({args.window:g} s)",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return 0
