"""One output rule for every command and every output option, found by walking the parser (issue #23).

The cases are not a list of known commands: :func:`_outputs` enumerates the
``soundanomaly`` sub-commands and their output options (every option added
with ``cli._common.add_output`` carries ``output_kind``), so a new command or
option inherits every check here. On c91f061, ``score M c.wav --csv
M/manifest.json``, ``evaluate M D --json M/manifest.json``, ``monitor ...
--jsonl M/manifest.json``, ``scan M r.wav --out userdir/`` over a user's
``scores.csv`` and ``explore D --out userdir/`` over ``waveforms.png`` all
exited 0 and destroyed data.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.cli import build_parser, main

_HINTS = ("write ", "append", "cache for", "report folder", "model folder to")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _outputs() -> list[tuple[str, str, str]]:
    """``(command, option, kind)`` of every tagged output option of every command."""
    found = []
    for name, sub in _commands().items():
        for action in sub._actions:
            kind = getattr(action, "output_kind", None)
            if kind is not None:
                found.append((name, action.option_strings[-1], kind))
    return found


OUTPUTS = _outputs()


def test_every_option_that_writes_is_an_output_option() -> None:
    """An option whose help says it writes must be added through add_output (so the rule and this suite see it)."""
    for name, sub in _commands().items():
        for action in sub._actions:
            text = (action.help or "").lower()
            if (
                action.option_strings
                and any(hint in text for hint in _HINTS)
                and "--force" not in action.option_strings
            ):
                assert getattr(action, "output_kind", None), f"{name} {action.option_strings}: use add_output"
    assert {(c, o) for c, o, _ in OUTPUTS} >= {("score", "--csv"), ("evaluate", "--json"), ("monitor", "--jsonl"),
                                              ("scan", "--out"), ("explore", "--out"), ("train", "--out")}  # fmt: skip


def test_every_command_with_an_output_takes_force() -> None:
    commands = _commands()
    for name, _, _ in OUTPUTS:
        assert any("--force" in a.option_strings for a in commands[name]._actions), name


# -- fixtures: one model, one data folder, one clip, one recording ---------------------------------------------------
@pytest.fixture(scope="module")
def world(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("world")
    model = base / "M"
    assert main(["train", str(tiny_root), "--out", str(model), "--detector", "gaussian", "--ids", "0", "-q"]) == 0
    clips = sorted((tiny_root / "6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))
    recording = base / "rec.wav"
    sf.write(recording, np.concatenate([sf.read(p)[0] for p in clips[:3]]), 16000)
    return {"model": model, "data": tiny_root, "clip": clips[0], "recording": recording, "base": base}


def _digest(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


_POSITIONALS = {"model": "model", "data": "data", "paths": "clip", "recording": "recording", "source": "recording"}
_EXTRA = {"export": ["--format", "onnx"], "scan": ["--window", "1"], "monitor": ["--window", "1"]}


def _argv(command: str, world: dict[str, Path], option: str, value: Path) -> list[str]:
    sub = _commands()[command]
    argv = [command]
    for action in sub._actions:
        if action.option_strings or action.dest in ("help",):
            continue
        if action.dest not in _POSITIONALS:
            pytest.fail(f"{command}: tell _POSITIONALS which input fills the positional {action.dest!r}")
        argv.append(str(world[_POSITIONALS[action.dest]]))
    return [*argv, *_EXTRA.get(command, []), option, str(value), "-q"]


def _inputs_of(command: str) -> set[str]:
    sub = _commands()[command]
    return {_POSITIONALS.get(a.dest, a.dest) for a in sub._actions if not a.option_strings}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


# -- never an input, never inside one -------------------------------------------------------------------------------
def _inside_cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for command, option, kind in OUTPUTS:
        inputs = _inputs_of(command)
        for where in ("model file", "model folder", "inside data", "the clip", "the recording"):
            needs = {"model file": "model", "model folder": "model", "inside data": "data", "the clip": "clip",
                     "the recording": "recording"}[where]  # fmt: skip
            if needs in inputs and not (where == "model folder" and kind not in ("folder", "files", "cache")):
                cases.append((command, option, kind, where))
    return cases


@pytest.mark.parametrize(("command", "option", "kind", "where"), _inside_cases())
def test_an_output_is_never_an_input_nor_inside_one(
    command: str, option: str, kind: str, where: str, world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    targets = {
        "model file": world["model"] / "manifest.json",
        "model folder": world["model"] / "sub",
        "inside data": world["data"] / "out.csv",
        "the clip": world["clip"],
        "the recording": world["recording"],
    }
    before = _digest(world["model"], world["data"], world["recording"])
    for force in ([], ["--force"]):  # --force never makes an input writable
        code, err = _run([*_argv(command, world, option, targets[where]), *force], capsys)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("soundanomaly: error:"), err
        assert _digest(world["model"], world["data"], world["recording"]) == before
    assert not (world["model"] / "sub").exists() and not (world["data"] / "out.csv").exists()


# -- never over a user's file ---------------------------------------------------------------------------------------
_RUNNABLE = {"score", "evaluate", "scan", "explore", "monitor", "train"}  # cheap enough to run for real here


def _file_cases() -> list[tuple[str, str, str]]:
    return [(c, o, k) for c, o, k in OUTPUTS if k in ("file", "append")]


@pytest.mark.parametrize(("command", "option", "kind"), _file_cases())
def test_an_output_file_never_replaces_a_users_file(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "users.txt"
    target.write_text("the user's own notes\n")
    code, err = _run(_argv(command, world, option, target), capsys)
    assert code == 2 and "not written by soundanomaly" in err, err
    assert target.read_text() == "the user's own notes\n"


@pytest.mark.parametrize(("command", "option", "kind"), [c for c in _file_cases() if c[0] in _RUNNABLE])
def test_an_output_file_the_library_wrote_may_be_replaced(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.txt"
    first, err = _run(_argv(command, world, option, target), capsys)
    assert first in (0, 1) and target.exists(), err
    again, err = _run(_argv(command, world, option, target), capsys)
    assert again in (0, 1), err
    target.write_text("edited by the user")  # now it is the user's
    code, err = _run(_argv(command, world, option, target), capsys)
    if kind == "append":  # a log the library started: appended to, nothing of it replaced
        assert code == 0 and target.read_text().startswith("edited by the user"), err
    else:
        assert code == 2 and target.read_text() == "edited by the user", err


@pytest.mark.parametrize(("command", "option", "kind"), [c for c in OUTPUTS if c[2] == "files" and c[0] in _RUNNABLE])
def test_a_folder_of_outputs_never_replaces_a_users_files(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `scan M r.wav --out userdir/` replaced the user's scores.csv, `explore D --out userdir/` waveforms.png."""
    out = tmp_path / "userdir"
    code, err = _run(_argv(command, world, option, out), capsys)
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert written
    assert _run(_argv(command, world, option, out), capsys)[0] == 0  # its own files: replaced
    for name in written:
        (out / name).write_bytes(b"the user's " + name.encode())
    code, err = _run(_argv(command, world, option, out), capsys)
    assert code == 2 and "not written by soundanomaly" in err, err
    assert all((out / name).read_bytes() == b"the user's " + name.encode() for name in written)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == written  # no partial new files
    code, err = _run([*_argv(command, world, option, out), "--force"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(("command", "option", "kind"), [c for c in OUTPUTS if c[2] == "folder"])
def test_an_output_folder_keeps_a_users_files(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "folder"
    out.mkdir()
    (out / "NOTES.md").write_text("mine")
    code, err = _run(_argv(command, world, option, out), capsys)
    assert code == 2, err
    assert (out / "NOTES.md").read_text() == "mine"


# -- monitor and scan options refused up front, in one line ---------------------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        ["--window", "1e9"],
        ["--window", "inf"],
        ["--hop", "nan"],
        ["--rate", "1000000000"],
        ["--rate", "999"],
        ["--channels", "100000"],
        ["--threshold", "-inf"],
        ["--threshold", "nan"],
    ],
    ids=lambda e: " ".join(e),
)
def test_monitor_options_are_refused_up_front(
    extra: list[str], world: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: --window inf raised OverflowError, --rate 1e9 / --channels 100000 exited 0, --threshold -inf was
    "expected one argument"."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * 64000)))
    code, err = _run(["monitor", str(world["model"]), "-", *extra], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and extra[0] in err, err


def test_a_negative_threshold_parses(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["scan", str(world["model"]), str(world["recording"]), "--window", "1", "--threshold", "-1e5"],
                     capsys)  # fmt: skip
    assert code == 0, err


def test_the_cli_bounds_equal_the_librarys() -> None:
    from soundanomaly.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
    from soundanomaly.cli import monitor as cli_monitor
    from soundanomaly.streaming.monitor import MAX_WINDOW_SECONDS
    from soundanomaly.streaming.sources import MAX_PCM_CHANNELS

    assert cli_monitor._seconds(str(MAX_WINDOW_SECONDS)) == MAX_WINDOW_SECONDS
    assert cli_monitor._channels(str(MAX_PCM_CHANNELS)) == MAX_PCM_CHANNELS
    assert cli_monitor._rate(str(MIN_SAMPLE_RATE)) == MIN_SAMPLE_RATE
    assert cli_monitor._rate(str(MAX_SAMPLE_RATE)) == MAX_SAMPLE_RATE
    for bad in (MAX_WINDOW_SECONDS * 1.01,):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_monitor._seconds(str(bad))
    with pytest.raises(argparse.ArgumentTypeError):
        cli_monitor._channels(str(MAX_PCM_CHANNELS + 1))


# -- what is printed -------------------------------------------------------------------------------------------------
def test_names_with_control_characters_are_printed_escaped(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a file name could clear the screen or forge a `soundanomaly: warning:` line."""
    evil = tmp_path / "a\x1b[2J\nsoundanomaly: warning: all clear|x.wav"
    evil.write_bytes(b"not audio")
    code, err = _run(["score", str(world["model"]), str(evil), "--skip-errors", "--csv", str(tmp_path / "s.csv")],
                     capsys)  # fmt: skip
    assert code in (1, 2)
    assert "\x1b" not in err
    assert not [line for line in err.splitlines() if line.startswith("soundanomaly: warning: all clear")]


def test_markdown_rows_escape_pipes() -> None:
    from soundanomaly.evaluation import Evaluator

    report = Evaluator().evaluate([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], threshold=0.5, groups=["a|b", "a|b", "c", "c"])
    rows = [line for line in report.to_markdown().splitlines() if line.startswith("| a")]
    assert rows and all(line.replace("\\|", "").count("|") == 14 for line in rows)


def test_a_stream_too_short_for_one_window_is_not_an_all_clear(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * 3200)))
    code, err = _run(["monitor", str(world["model"]), "-", "--window", "1"], capsys)
    assert code == 1 and "no window was scored" in err, err


@pytest.mark.parametrize(("command", "option", "kind"), _file_cases())
def test_an_output_fifo_without_a_reader_is_an_error_not_a_hang(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("blocked on a FIFO without a reader")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)
    try:
        code, err = _run(_argv(command, world, option, fifo), capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2 and "no reader" in err, err


# -- bad inputs: every command, every positional input, one line and exit 2 ---------------------------------------------
def _input_cases() -> list[tuple[str, str]]:
    cases = []
    for name, sub in _commands().items():
        for action in sub._actions:
            if not action.option_strings and action.dest in _POSITIONALS:
                cases.append((name, action.dest))
    return cases


@pytest.mark.parametrize("bad", ["missing", "fifo", "folder named like a clip"])
@pytest.mark.parametrize(("command", "dest"), _input_cases())
def test_a_bad_input_is_one_line_exit_2_and_never_hangs(
    command: str, dest: str, bad: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    if bad == "missing":
        value = tmp_path / "missing.wav"
    elif bad == "fifo":
        value = tmp_path / "pipe.wav"
        os.mkfifo(value)
    else:
        value = tmp_path / "x.wav"
        value.mkdir()
    sub = _commands()[command]
    argv = [command]
    for action in sub._actions:
        if not action.option_strings and action.dest != "help":
            argv.append(str(value) if action.dest == dest else str(world[_POSITIONALS[action.dest]]))
    extra = {"export": ["--format", "onnx", "--out", str(tmp_path / "m.onnx")], "scan": ["--window", "1"],
             "monitor": ["--window", "1", "--idle-timeout", "0.1", "--poll", "0.05"]}.get(command, [])  # fmt: skip

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError(f"{command} hung on {bad} {dest}")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)
    try:
        code, err = _run([*argv, *extra, "-q"], capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if bad == "folder named like a clip" and dest in ("data", "source"):
        return  # a folder is what these take: an empty one (monitor: watched, nothing came) is not an error here
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("soundanomaly: warning:")]
    assert len(lines) == 1 and lines[0].startswith("soundanomaly: error:"), err


@pytest.mark.parametrize(("command", "option", "kind"), _file_cases())
def test_an_output_may_not_take_the_librarys_record_names(
    command: str, option: str, kind: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from soundanomaly._safefiles import LEDGER

    code, err = _run(_argv(command, world, option, tmp_path / LEDGER), capsys)
    assert code == 2 and "records" in err, err
