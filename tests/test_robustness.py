"""Crafted inputs, mistaken command lines, hostile outputs: a library error (CLI: one line, exit 2), never a traceback.

Issue #11's crash list for audio, features, evaluation, manifests and the CLI,
plus the batch behaviour (``--skip-errors``, status column, exit codes) and
the sample-rate rule.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.audio import MAX_SAMPLE_RATE, decode, load, read_bytes
from soundanomaly.cli import build_parser, main
from soundanomaly.datasets import synthetic
from soundanomaly.exceptions import AudioError, ParameterError, SoundAnomalyError
from soundanomaly.features import ClipFeatures, LogMelFrames, SpectrogramImages
from soundanomaly.manifest import read_manifest


# -- helpers ----------------------------------------------------------------------------------------------------
def _pcm16_bytes(n: int = 8000, channels: int = 2, sr: int = 16000) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    sf.write(buffer, rng.normal(0, 0.1, (n, channels)), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _with_rate(data: bytes, rate: int) -> bytes:
    out = bytearray(data)
    at = out.index(b"fmt ")
    out[at + 12 : at + 16] = struct.pack("<I", rate)
    return bytes(out)


def _float_wav(path: Path, value: float) -> Path:
    signal = np.full(16000, 0.1, np.float32)
    signal[100:200] = value
    sf.write(path, signal, 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fan id, 8 normal + 2 abnormal 1 s clips (a copy the tests may damage)."""
    root = tmp_path_factory.mktemp("small")
    return synthetic.write_dataset(root, ids=[0], n_normal=8, n_abnormal=2, duration=1.0, seed=3)


@pytest.fixture(scope="module")
def model(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "g"
    assert main(["train", str(tiny_root), "--out", str(out), "--detector", "gaussian", "--quiet"]) == 0
    return out


def _one_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("soundanomaly: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


# -- the API: every crafted input gives a SoundAnomalyError naming the problem ---------------------------------
def _detector(**params: object) -> object:
    from soundanomaly.detectors import GaussianDetector

    return GaussianDetector(**params)  # type: ignore[arg-type]


def _fifo(tmp: Path) -> str:
    path = tmp / "pipe.wav"
    os.mkfifo(path)
    return str(path)


API_CASES: dict[str, tuple[Callable[[Path], object], type[SoundAnomalyError], str]] = {
    "sample rate 0": (lambda t: decode(_with_rate(_pcm16_bytes(), 0), name="r0.wav"), AudioError, "r0.wav"),
    "sample rate 1 Hz": (lambda t: decode(_with_rate(_pcm16_bytes(), 1), name="r1.wav"), AudioError, "sample rate 1"),
    "sample rate 2e9 Hz": (
        lambda t: decode(_with_rate(_pcm16_bytes(), 2_000_000_000), name="r.wav"),
        AudioError,
        "implausible sample rate",
    ),
    "fmt chunk cut short": (lambda t: decode(_pcm16_bytes()[:30], name="cut.wav"), AudioError, "cut.wav"),
    "float samples ~1e28": (lambda t: load(_float_wav(t / "huge.wav", 1e28)), AudioError, "absurd magnitude"),
    "FIFO as a clip": (lambda t: read_bytes(_fifo(t)), AudioError, "not a regular file (a FIFO)"),
    "/dev/zero as a clip": (lambda t: read_bytes("/dev/zero"), AudioError, "character device"),
    "clip over the size cap": (
        lambda t: read_bytes(_float_wav(t / "big.wav", 0.1), max_bytes=1000),
        AudioError,
        "file too large",
    ),
    "s3:// alone": (lambda t: read_bytes("s3://"), AudioError, "malformed S3 URL"),
    "s3://bucket without key": (lambda t: read_bytes("s3://bkt"), AudioError, "malformed S3 URL"),
    "unknown scheme": (lambda t: read_bytes("nosuch://x"), AudioError, "unsupported URL scheme"),
    "http refused by default": (lambda t: read_bytes("http://127.0.0.1:9/a.wav"), AudioError, "--allow-http"),
    "manifest line is a list": (lambda t: read_manifest("m", text="[1, 2]\n"), ParameterError, "line 1"),
    "manifest line is a string": (lambda t: read_manifest("m", text='{}\n"x"\n'), ParameterError, "line 1"),
    "manifest line is a number": (lambda t: read_manifest("m", text="42\n"), ParameterError, "not an object"),
    "manifest without class": (
        lambda t: read_manifest("m", text='{"source-ref": "s3://b/x.png", "a-metadata": {}}\n'),
        ParameterError,
        "class-name",
    ),
    "manifest file missing": (lambda t: read_manifest(t / "none.manifest"), SoundAnomalyError, "cannot read"),
    "detector chunk_size 2.5": (
        lambda t: _detector(chunk_size=2.5),
        ParameterError,
        "chunk_size must be a positive int",
    ),
    "detector threshold 'high'": (lambda t: _detector(threshold="high"), ParameterError, "threshold"),
    "extractor sr 0": (lambda t: LogMelFrames(sr=0), ParameterError, "sr must be"),
    "extractor sr 2.5": (lambda t: SpectrogramImages(sr=2.5), ParameterError, "sr must be"),  # type: ignore[arg-type]
    "transform at another rate": (
        lambda t: LogMelFrames().transform(np.zeros(16000, np.float32), 44100),
        ParameterError,
        "resample",
    ),
    "extract on_error typo": (
        lambda t: LogMelFrames().extract(["a.wav"], on_error="ignore"),
        ParameterError,
        "on_error",
    ),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_api_refuses_with_a_library_error(case: str, tmp_path: Path) -> None:
    call, error, needle = API_CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path)
    assert needle in str(info.value)


def test_permission_error_becomes_audio_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _float_wav(tmp_path / "locked.wav", 0.1)

    real_open = os.open

    def denied(name: str, *args: object, **kwargs: object) -> int:
        if os.fspath(name) == str(path):  # as for a file of another user (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied"):
        load(path)


def test_decoded_size_is_capped_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(48000, np.float32), 16000)  # compressed: a few bytes on disk
    monkeypatch.setattr("soundanomaly.audio.MAX_DECODED_BYTES", 100_000)
    with pytest.raises(AudioError, match="decoded audio would take 192000 bytes"):
        load(path)


def test_header_rates_in_range_are_accepted() -> None:
    for rate in (1000, 8000, 44100, MAX_SAMPLE_RATE):
        assert decode(_with_rate(_pcm16_bytes(), rate), name="ok.wav")[1] == rate


# -- the sample-rate rule ------------------------------------------------------------------------------------
def test_same_clip_at_other_rates_scores_consistently(small_root: Path, tmp_path: Path) -> None:
    """Before: 0.74 (normal) at 16 kHz, 24 at 44.1 kHz, 25 at 48 kHz. Now resampled to the model's 16 kHz."""
    import soxr

    from soundanomaly.datasets import MIMII
    from soundanomaly.detectors import GaussianDetector

    normal = MIMII(small_root).filter(label="normal")
    detector = GaussianDetector(threshold=1e9).fit(normal[:6])
    signal, rate = load(normal[6].path)
    paths = {}
    for target in (16000, 44100, 48000):
        paths[target] = tmp_path / f"clip_{target}.wav"
        sf.write(paths[target], soxr.resample(signal, rate, target) if target != rate else signal, target)
    scores = dict(zip(paths, detector.score([str(p) for p in paths.values()]), strict=True))
    for target in (44100, 48000):  # only the top mel band (near 8 kHz) loses energy to the anti-alias filter
        assert abs(scores[target] - scores[16000]) <= 0.4 * scores[16000], scores
    low = tmp_path / "clip_8000.wav"
    sf.write(low, soxr.resample(signal, rate, 8000), 8000)
    with pytest.raises(AudioError, match=r"clip_8000\.wav: recorded at 8000 Hz, below the 16000 Hz"):
        detector.score([str(low)])
    assert detector.features.params()["sr"] == 16000


def test_model_saved_without_sr_means_16000() -> None:
    from soundanomaly.detectors.base import features_from_params

    old = {"name": "LogMelFrames", "n_mels": 64, "frames": 5, "n_fft": 1024, "hop_length": 512}
    assert features_from_params(old).sr == 16000
    assert features_from_params({**old, "sr": 22050}).sr == 22050


# -- extract(on_error=...) and ClipFeatures.skipped ----------------------------------------------------------
def test_extract_skips_unreadable_clips(small_root: Path, tmp_path: Path) -> None:
    good = sorted(str(p) for p in small_root.rglob("*.wav"))[:3]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF junk")
    missing = str(tmp_path / "missing.wav")
    paths = [good[0], str(bad), good[1], missing, good[2]]
    with pytest.raises(AudioError, match=r"bad\.wav"):
        LogMelFrames().extract(paths, progress=False)
    features = LogMelFrames().extract(paths, progress=False, on_error="skip")
    assert features.paths == tuple(good)
    assert [p for p, _ in features.skipped] == [str(bad), missing]
    assert "file not found" in features.skipped[1][1]
    np.testing.assert_array_equal(features.windows, LogMelFrames().extract(good, progress=False).windows)
    cached = LogMelFrames().extract(paths, progress=False, on_error="skip", cache_dir=tmp_path / "cache")
    assert cached.paths == tuple(good) and len(cached.skipped) == 2
    with pytest.raises(AudioError, match="none of the 2 clip"):
        LogMelFrames().extract([str(bad), missing], progress=False, on_error="skip")


def test_extract_accepts_one_path(small_root: Path) -> None:
    """Before: LogMelFrames().extract("one.wav") iterated the characters ("f: file not found")."""
    path = next(small_root.rglob("*.wav"))
    one = LogMelFrames().extract(str(path), progress=False)
    assert one.paths == (str(path),) and len(one) == 1
    assert len(LogMelFrames().extract(path, progress=False)) == 1
    from soundanomaly.datasets import MIMII

    clips = MIMII(small_root)
    assert LogMelFrames().extract(clips).paths == tuple(clips.paths)


def test_clip_features_constructor_is_backwards_compatible() -> None:
    windows = np.zeros((3, 2), np.float32)
    features = ClipFeatures(windows, np.array([0, 1, 3]), ("a", "b"), {"name": "x"})
    assert features.skipped == ()
    assert ClipFeatures.from_arrays([windows], skipped=[("c.wav", "bad")]).skipped == (("c.wav", "bad"),)


# -- the CLI crash list: one line on stderr, exit 2 --------------------------------------------------------------
def test_score_refuses_to_write_over_its_input(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `score MODEL clip.wav --csv clip.wav` overwrote the recording."""
    clip = _float_wav(tmp_path / "clip.wav", 0.1)
    before = clip.read_bytes()
    assert main(["score", str(model), str(clip), "--csv", str(clip)]) == 2
    _one_line(capsys, "refusing to write there", "the output is the input")
    assert clip.read_bytes() == before


def _cli_cases(tmp: Path, model: Path, small_root: Path) -> dict[str, tuple[list[str], str]]:
    afile = tmp / "afile.txt"
    afile.write_text("mine")
    clip = next(small_root.rglob("*.wav"))
    fifo = _fifo(tmp)
    return {
        "csv on a full disk": (["score", str(model), str(clip), "--csv", "/dev/full", "-q"], "/dev/full"),
        "out under a file": (["train", str(small_root), "--out", f"{afile}/m", "--detector", "gaussian"], "is a file"),
        "explore out is a file": (["explore", str(small_root), "--out", str(afile)], "is a file"),
        "a FIFO as a clip": (["score", str(model), fifo], "not a regular file"),
        "/dev/zero as a clip": (["score", str(model), "/dev/zero"], "not a regular file"),
        "s3:// alone": (["score", str(model), "s3://"], "malformed S3 URL"),
        "s3://bkt": (["score", str(model), "s3://bkt"], "malformed S3 URL"),
        "nosuch://x": (["score", str(model), "nosuch://x"], "unsupported URL scheme"),
        "train --target-fpr 2": (["train", str(small_root), "--out", str(tmp / "m"), "--target-fpr", "2"], "(0, 1)"),
        "train --epochs 2.5": (["train", str(small_root), "--out", str(tmp / "m"), "--epochs", "2.5"], "integer"),
        "train --validation-fraction 1": (
            ["train", str(small_root), "--out", str(tmp / "m"), "--validation-fraction", "1"],
            "[0, 1)",
        ),
        "train --ids x": (["train", str(small_root), "--out", str(tmp / "m"), "--ids", "x"], "integer"),
        "evaluate --max-fpr 0": (["evaluate", str(model), str(small_root), "--max-fpr", "0"], "(0, 1]"),
        "evaluate --max-fpr nan": (["evaluate", str(model), str(small_root), "--max-fpr", "nan"], "(0, 1]"),
        "train --out DATA": (["train", str(small_root), "--out", str(small_root), "--detector", "gaussian"], "input"),
        "train --out a folder of notes": (
            ["train", str(small_root), "--out", str(tmp), "--detector", "gaussian"],
            "not written by soundanomaly",
        ),
        "demo --out a folder of notes": (["demo", "--out", str(tmp), "--epochs", "1"], "not written by soundanomaly"),
        "score a missing model": (["score", str(tmp / "none"), str(clip)], "not a saved model"),
        "evaluate --json over the data": (
            ["evaluate", str(model), str(small_root), "--json", str(clip)],
            "refusing to write there",
        ),
    }


CLI_CASE_NAMES = [
    "csv on a full disk",
    "out under a file",
    "explore out is a file",
    "a FIFO as a clip",
    "/dev/zero as a clip",
    "s3:// alone",
    "s3://bkt",
    "nosuch://x",
    "train --target-fpr 2",
    "train --epochs 2.5",
    "train --validation-fraction 1",
    "train --ids x",
    "evaluate --max-fpr 0",
    "evaluate --max-fpr nan",
    "train --out DATA",
    "train --out a folder of notes",
    "demo --out a folder of notes",
    "score a missing model",
    "evaluate --json over the data",
]


@pytest.mark.parametrize("case", CLI_CASE_NAMES)
def test_cli_errors_are_one_line_exit_2(
    case: str, model: Path, small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "csv on a full disk" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    argv, needle = _cli_cases(tmp_path, model, small_root)[case]
    before = sorted(p.name for p in small_root.rglob("*"))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: checked before any work
        code = int(exc.code or 0)
    assert code == 2
    _one_line(capsys, needle)
    assert sorted(p.name for p in small_root.rglob("*")) == before  # the data is untouched
    assert (tmp_path / "afile.txt").read_text() == "mine"
    assert not (tmp_path / "m").exists()


def test_http_clip_is_not_fetched(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `score M http://127.0.0.1/...` fetched it. The listener must receive nothing."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.3)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/clip.wav"
        assert main(["score", str(model), url]) == 2
        _one_line(capsys, "--allow-http")
        with pytest.raises(TimeoutError):
            server.accept()


def test_http_clip_is_fetched_on_request(model: Path, small_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import functools
    import http.server
    import threading

    pytest.importorskip("aiohttp")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(small_root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        clip = next(small_root.rglob("*.wav")).relative_to(small_root).as_posix()
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip}"
        assert main(["score", str(model), url, "--allow-http", "-q"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith(url) and ",ok," in row


def test_explore_with_a_corrupt_first_clip(
    small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a raw LibsndfileError traceback."""
    root = tmp_path / "data"
    shutil.copytree(small_root, root)
    first = sorted(root.rglob("*.wav"))[0]
    first.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert main(["explore", str(root)]) == 0
    captured = capsys.readouterr()
    assert "first clip: 16000 Hz" in captured.out
    assert f"{first}: not a readable audio file" in captured.err


# -- batch behaviour: --skip-errors, status column, exit codes ------------------------------------------------
def _rows(path: Path | str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_score_skip_errors_finishes_and_reports(
    model: Path, small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    good = sorted(small_root.rglob("*.wav"))[:3]
    for i, path in enumerate(good):
        shutil.copy(path, folder / f"{i}.wav")
    shutil.copy(good[0], folder / "UPPER.WAV")  # the same rule as MIMII(): any case
    (folder / "broken.wav").write_bytes(b"not audio at all")
    _float_wav(folder / "huge.wav", 1e28)
    assert main(["score", str(model), str(folder)]) == 2  # without --skip-errors the first bad clip stops the run
    capsys.readouterr()
    out = tmp_path / "scores.csv"
    assert main(["score", str(model), str(folder), "--skip-errors", "--csv", str(out), "--quiet"]) == 1
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert set(rows) == {"0.wav", "1.wav", "2.wav", "UPPER.WAV", "broken.wav", "huge.wav"}
    assert rows["broken.wav"]["status"] == "error" and rows["broken.wav"]["score"] == ""
    assert "absurd magnitude" in rows["huge.wav"]["reason"]
    assert rows["broken.wav"]["label"] == rows["huge.wav"]["label"] == "anomaly"  # never "normal"
    assert all(rows[n]["status"] == "ok" and float(rows[n]["score"]) > 0 for n in ("0.wav", "UPPER.WAV"))
    err = capsys.readouterr().err
    assert "broken.wav: error" in err and "huge.wav: error" in err
    assert "scoring [" not in err  # --quiet


def test_nan_scores_are_invalid_never_normal(
    model: Path, small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a clip whose score was NaN was labelled normal, exit 0."""
    from soundanomaly.detectors import GaussianDetector

    monkeypatch.setattr(GaussianDetector, "_score_windows", lambda self, windows: np.full(len(windows), np.nan))
    clip = next(small_root.rglob("*.wav"))
    out = tmp_path / "s.csv"
    assert main(["score", str(model), str(clip), "--csv", str(out)]) == 1
    (row,) = _rows(out)
    assert row["status"] == "invalid" and row["label"] == "anomaly" and row["score"] == ""
    assert "invalid" in capsys.readouterr().err


def test_resampled_files_are_marked_in_the_csv(model: Path, small_root: Path, tmp_path: Path) -> None:
    signal, _ = load(next(small_root.rglob("*.wav")))
    import soxr

    clip = tmp_path / "hi.wav"
    sf.write(clip, soxr.resample(signal, 16000, 48000), 48000)
    out = tmp_path / "s.csv"
    assert main(["score", str(model), str(clip), "--csv", str(out), "-q"]) == 0
    assert _rows(out)[0]["resampled_from_hz"] == "48000"


def test_csv_cells_cannot_be_formulas(
    model: Path, small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clip = next(small_root.rglob("*.wav"))
    for name in ("=HYPERLINK(1).wav", "+1.wav", "-2.wav", "@SUM.wav"):
        shutil.copy(clip, tmp_path / name)
    names = ["=HYPERLINK(1).wav", "+1.wav", "-2.wav", "@SUM.wav"]
    assert main(["score", str(model), "--csv", "s.csv", "-q", "--", *names]) == 0
    cells = [line.split(",")[0] for line in (tmp_path / "s.csv").read_text().splitlines()[1:]]
    assert all(cell.startswith("'") for cell in cells), cells
    assert {cell.strip('"') for cell in cells} == {"'=HYPERLINK(1).wav", "'+1.wav", "'-2.wav", "'@SUM.wav"}


def test_train_skip_errors(small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    shutil.copytree(small_root, root)
    broken = sorted(root.rglob("normal/*.wav"))[1]
    broken.write_bytes(b"RIFF")
    out = tmp_path / "model"
    assert main(["train", str(root), "--out", str(out), "--detector", "gaussian"]) == 2
    assert not out.exists()
    capsys.readouterr()
    assert main(["train", str(root), "--out", str(out), "--detector", "gaussian", "--skip-errors", "-q"]) == 1
    assert (out / "manifest.json").is_file()
    assert str(broken) in capsys.readouterr().err


def test_train_out_rules(small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out` replaces only library-written folders; `--force` for others; `--out .` works."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("mine")
    argv = ["train", str(small_root), "--detector", "gaussian", "-q", "--out"]
    assert main([*argv, str(notes)]) == 2
    assert (notes / "todo.md").read_text() == "mine"
    assert main([*argv, str(notes), "--force"]) == 0
    assert (notes / "manifest.json").is_file() and not (notes / "todo.md").exists()
    assert main([*argv, str(notes)]) == 0  # a model folder may be replaced
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main([*argv, "."]) == 0
    assert (here / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stray temporary folder


def test_train_autoencoder_without_tensorflow_fails_first(
    small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    assert main(["train", str(small_root), "--out", str(tmp_path / "m")]) == 2
    _one_line(capsys, "pip install 'soundanomaly[tf]'")


def test_evaluate_warns_about_training_clips(
    model: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.json"
    assert main(["evaluate", str(model), str(tiny_root), "--json", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert "were used to train or calibrate this model" in err
    assert json.loads(out.read_text())["overall"]["n_clips"] == 24
    assert main(["evaluate", str(model), str(tiny_root), "--exclude-training", "-q"]) == 0
    assert "| all | 8 | 8 |" in capsys.readouterr().out  # only the abnormal clips were never seen


def test_every_cli_option_has_help() -> None:
    import argparse

    def walk(parser: argparse.ArgumentParser, name: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    missing += walk(sub, f"{name} {sub_name}")
            elif not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "soundanomaly") == []
