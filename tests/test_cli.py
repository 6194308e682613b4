"""The command line and the demo, end to end on tiny data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from soundanomaly.cli import main


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "explore", "train", "score", "evaluate"):
        assert command in out


def test_explore(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(tiny_root), "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "24 clips: 16 normal, 8 abnormal" in out
    assert (tmp_path / "plots" / "spectrogram_abnormal.png").stat().st_size > 1000


@pytest.mark.tf
def test_train_score_evaluate(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    assert main(["train", str(tiny_root), "--out", str(model), "--epochs", "2"]) == 0
    assert (model / "manifest.json").is_file()
    out = capsys.readouterr()
    assert "training autoencoder on 16 normal clips" in out.err
    assert "on 3 held-out normal clips" in out.err  # 20 % of 16, whole clips
    out_csv = tmp_path / "scores.csv"
    abnormal_dir = tiny_root / "6_dB_fan" / "fan" / "id_00" / "abnormal"
    assert main(["score", str(model), str(abnormal_dir), "--csv", str(out_csv)]) == 0
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert {r["label"] for r in rows} <= {"normal", "anomaly"}
    assert all(float(r["score"]) > 0 for r in rows)
    assert main(["evaluate", str(model), str(tiny_root), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "| all | 24 | 8 |" in out
    assert json.loads((tmp_path / "m.json").read_text())["overall"]["n_clips"] == 24


def test_gaussian_train_and_score_stdout(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "g"
    assert main(["train", str(tiny_root), "--out", str(model), "--detector", "gaussian", "--ids", "0"]) == 0
    capsys.readouterr()
    clip = next(tiny_root.rglob("*.wav"))
    assert main(["score", str(model), str(clip)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,score,label,status,reason,resampled_from_hz"
    assert lines[1].startswith(str(clip))


def test_train_per_id_clipstats_saves_one_model(tiny_root: Path, tmp_path: Path) -> None:
    model, metrics = tmp_path / "per-id", tmp_path / "m.json"
    argv = ["train", str(tiny_root), "--out", str(model), "--detector", "clipstats", "--per-id", "-q"]
    assert main(argv) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["detector"] == "PerGroup"
    assert main(["evaluate", str(model), str(tiny_root), "--json", str(metrics), "-q"]) == 0
    report = json.loads(metrics.read_text())
    assert report["overall"]["roc_auc"] >= 0.8  # the tiny set's faults are easy at 6 dB; random is 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "{tmp}/none", "x.wav"], "not a saved model"),
        (["explore", "{tmp}/none"], "is not a folder"),
        (["train", "{tmp}", "--out", "{tmp}-model"], "no clips found"),
        (["train", "{tmp}", "--out", "{tmp}/m"], "lies inside the input"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("soundanomaly: error:")
    assert message in err
    assert len(err.splitlines()) == 1


def test_bad_audio_file_is_one_line(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["train", str(tiny_root), "--out", str(tmp_path / "g"), "--detector", "gaussian"])
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    capsys.readouterr()
    assert main(["score", str(tmp_path / "g"), str(bad)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"soundanomaly: error: {bad}: not a readable audio file (Format not recognised.)"
    )


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "soundanomaly", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("soundanomaly ")


def _check_report(out: Path) -> dict[str, object]:
    for name in ("index.html", "report.md", "metrics.json", "scores.csv", "roc.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    assert (out / "model" / "manifest.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["autoencoder"]["positive_class"] == "anomaly"
    return metrics


@pytest.mark.tf
def test_demo_on_synthetic(tmp_path: Path) -> None:
    from soundanomaly.demo import run_demo

    result = run_demo(
        tmp_path / "report",
        epochs=3,
        cache_dir=tmp_path / "cache",
        progress=False,
        synthetic_params={"ids": (0, 2), "n_normal": 12, "n_abnormal": 4},
    )
    metrics = _check_report(result.out)
    assert metrics["split"] == {"train": 14, "validation": 2, "test": 16}
    assert 0.0 <= result.report.overall.roc_auc <= 1.0
    # second run reuses the cached data set
    assert (tmp_path / "cache" / "synthetic").is_dir()


@pytest.mark.tf
def test_demo_cli_on_real_mimii(mimii_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main(["demo", "--data", str(mimii_root), "--out", str(out), "--epochs", "2", "--quiet"])
    assert code == 0
    metrics = _check_report(out)
    assert metrics["split"] == {"train": 2, "validation": 1, "test": 11}


class _ProtocolOnly:
    """A detector written only to the protocol: score (higher = more anomalous) and threshold_."""

    threshold_ = 0.0

    def score(self, data: list[str]) -> list[float]:
        return [1.0 if "abnormal" in str(path) else -1.5 for path in data]


def test_score_and_evaluate_use_only_the_protocol(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import soundanomaly.detectors

    monkeypatch.setattr(soundanomaly.detectors, "load_model", lambda path: _ProtocolOnly())
    out = tmp_path / "s.csv"
    assert main(["score", "any-model", str(tiny_root), "--csv", str(out), "-q"]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24
    assert all((r["label"] == "anomaly") == ("abnormal" in r["path"]) for r in rows)
    assert {r["resampled_from_hz"] for r in rows} == {""}  # the detector states no rate
    assert {r["score"] for r in rows} == {"1", "-1.5"}  # numbers are not escaped as formulas
    capsys.readouterr()
    assert main(["evaluate", "any-model", str(tiny_root), "-q"]) == 0
    assert "| all | 24 | 8 | 8 | 0 | 16 | 0 |" in capsys.readouterr().out


def test_every_command_takes_quiet_and_verbose() -> None:
    import argparse

    from soundanomaly.cli import COMMANDS, build_parser

    def leaves(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    found += leaves(sub, f"{name} {sub_name}")
        return found or [(name, parser)]

    commands = leaves(build_parser(), "soundanomaly")
    assert {name.split()[1] for name, _ in commands} == set(COMMANDS)
    for name, parser in commands:
        options = {option for action in parser._actions for option in action.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= options, name


def test_scan_writes_through_the_safe_csv_writer(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import soundfile as sf

    model = tmp_path / "g"
    assert main(["train", str(tiny_root), "--out", str(model), "--detector", "gaussian", "--ids", "0", "-q"]) == 0
    recording = tmp_path / "rec.wav"
    clips = [sf.read(p)[0] for p in sorted((tiny_root / "6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))[:3]]
    sf.write(recording, np.concatenate(clips), 16000)
    assert main(["scan", str(model), str(recording), "--window", "1", "--out", str(model / "scan")]) == 2
    assert "model folder" in capsys.readouterr().err and not (model / "scan").exists()
    assert main(["scan", str(model), str(recording), "--window", "1", "--out", str(tmp_path), "-q"]) == 0
    scores = (tmp_path / "scores.csv").read_text().splitlines()
    assert scores[0] == "start,end,score,above" and len(scores) == 7  # 6 s, 1 s windows, 1 s hop
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left
