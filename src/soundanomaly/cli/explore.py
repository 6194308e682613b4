"""``soundanomaly explore``: summarise a MIMII-layout folder and plot a normal and an abnormal clip."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from soundanomaly.cli._common import add_output, chatter, check_out_files, safe_text

__all__ = ["add_parser", "run"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``explore`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    explore = subparsers.add_parser(
        "explore", parents=[chatter()], help="summarise a MIMII-layout folder and plot a normal and an abnormal clip"
    )
    explore.add_argument("data", help="MIMII-layout folder")
    add_output(explore, "--out", kind="files", help="write waveform/spectrum/spectrogram PNGs into this folder")
    explore.add_argument("--channel", type=int, default=0, help="microphone (default: 0; -1 = the last)")
    explore.set_defaults(func=run)


_OUTPUTS = ("waveforms.png", "stft_first_64ms.png", "spectrogram_normal.png", "spectrogram_abnormal.png")


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly explore``; returns the exit status."""
    import io

    import soundfile as sf

    from soundanomaly.audio import read_bytes
    from soundanomaly.datasets import open_dataset
    from soundanomaly.exceptions import AudioError

    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_files(out, _OUTPUTS, [args.data], force=args.force)
    clips = open_dataset(args.data)
    print(f"{safe_text(args.data)}: {safe_text(repr(clips))}")
    counts = Counter((r.machine, r.machine_id, r.snr, r.label) for r in clips)
    print(f"{'machine':<10}{'id':>4}{'SNR dB':>10}{'normal':>9}{'abnormal':>10}")
    for machine, machine_id, snr in sorted(
        {k[:3] for k in counts}, key=lambda k: (k[0], k[1], k[2] is None, k[2] or 0)
    ):
        snr_text = "unknown" if snr is None else f"{snr:g}"
        print(
            f"{safe_text(machine):<10}{machine_id:>4}{snr_text:>10}{counts[(machine, machine_id, snr, 'normal')]:>9}"
            f"{counts[(machine, machine_id, snr, 'abnormal')]:>10}"
        )
    for record in clips:  # the first clip that can be read (a corrupt one is reported, not fatal)
        try:
            info = sf.info(io.BytesIO(read_bytes(record.path)))
        except (AudioError, sf.LibsndfileError, RuntimeError, TypeError) as exc:
            _log.warning("%s: not a readable audio file (%s)", record.path, getattr(exc, "problem", exc))
            continue
        print(f"first clip: {info.samplerate} Hz, {info.channels} channel(s), {info.duration:.2f} s, {info.subtype}")
        break
    if out is not None:
        from soundanomaly import plots
        from soundanomaly._safefiles import atomic_outputs
        from soundanomaly.audio import load

        normal, abnormal = clips.filter(label="normal"), clips.filter(label="abnormal")
        if normal and abnormal:
            a, sr = load(normal[0].path, channel=args.channel)
            b, _ = load(abnormal[0].path, channel=args.channel)
            with atomic_outputs(out, _OUTPUTS, inputs=[args.data], overwrite=args.force) as paths:
                plots.save(plots.plot_waveforms(a, b, sr), paths["waveforms.png"])
                plots.save(plots.plot_stft_window([a, b], sr), paths["stft_first_64ms.png"])
                plots.save(plots.plot_spectrogram(a, sr, title="normal"), paths["spectrogram_normal.png"])
                plots.save(plots.plot_spectrogram(b, sr, title="abnormal"), paths["spectrogram_abnormal.png"])
            _log.info("plots written to %s", out)
        else:
            _log.warning("no plots: %s needs both a normal and an abnormal clip", args.data)
    return 0
