"""One rule for every path that reads audio (issue #23): clips, features, monitor, scan and raw PCM.

Each test names the path it closes; every one of them failed on c91f061:
a folder named ``x.wav`` leaked a descriptor and gave a raw IsADirectoryError,
``monitor``/``scan`` upsampled what ``score`` refuses, scored truncated WAVs,
hung on FIFOs and reported "no events" for samples that make NaN windows, a
NaN window counted as normal, and a GSM 6.10 WAV could not be decoded.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.audio import check_rate, check_samples, load, read_bytes
from soundanomaly.exceptions import AudioError, ParameterError, SoundAnomalyError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.monitor import Monitor, PcmSource, WavFileSource, WindowScore, scan


@pytest.fixture(scope="module")
def detector() -> object:
    from soundanomaly.detectors import GaussianDetector

    rng = np.random.default_rng(0)
    train = ClipFeatures.from_arrays([rng.normal(size=(30, 320)).astype("float32")] * 3)
    return GaussianDetector(threshold=2.0).fit(train)


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail (instead of hanging the suite) when a call blocks for more than 10 s."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tone(path: Path, sr: int = 16000, seconds: float = 3.0, subtype: str = "PCM_16", peak: float = 0.1) -> Path:
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (peak * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype=subtype)
    return path


# -- sample rates: what score refuses, every path refuses ----------------------------------------------------------
def test_rate_rule_is_one_function() -> None:
    assert check_rate("a.wav", 44100, target_sr=16000) == 16000
    assert check_rate("a.wav", 16000, target_sr=16000) == 16000
    assert check_rate("a.wav", 8000) == 8000
    for rate in (8000, 999, 1, 0, 10**9):
        with pytest.raises(AudioError, match=r"a.wav"):
            check_rate("a.wav", rate, target_sr=16000)


def test_monitor_refuses_a_rate_below_the_model(detector: object) -> None:
    """Before: Monitor upsampled 8 kHz (and 999 Hz, 1 Hz) audio that score refuses."""
    for rate in (8000, 999, 1):
        with pytest.raises(AudioError, match=f"{rate} Hz"):
            Monitor(detector, window_seconds=1.0).push(np.zeros(4000, np.float32), rate)


def test_scan_refuses_a_file_below_the_model_rate(detector: object, tmp_path: Path) -> None:
    path = _tone(tmp_path / "slow.wav", sr=8000)
    with pytest.raises(AudioError, match=r"slow.wav.*8000 Hz, below the 16000 Hz"):
        scan(detector, path, window_seconds=1.0)


def test_scan_resamples_a_file_above_the_model_rate(detector: object, tmp_path: Path) -> None:
    result = scan(detector, _tone(tmp_path / "fast.wav", sr=44100), window_seconds=1.0)
    assert result.sr == 16000 and len(result.scores) >= 2


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sr": 999}, "implausible sample rate"),
        ({"sr": 1_000_000_000}, "implausible sample rate"),
        ({"channels": 100_000}, "channels must be"),
        ({"block_seconds": float("inf")}, "block_seconds"),
    ],
)
def test_pcm_source_bounds_its_parameters(kwargs: dict[str, float], needle: str) -> None:
    """Before: --rate 1000000000 / --channels 100000 read stdin and exited 0 after "0.0 s of audio"."""
    with pytest.raises(ParameterError, match=needle):
        PcmSource(io.BytesIO(b""), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [1e9, float("inf"), float("nan"), 0.0, -1.0])
def test_monitor_window_is_bounded(detector: object, window: float) -> None:
    """Before: --window 1e9 ran out of memory later, --window inf raised OverflowError."""
    with pytest.raises(ParameterError, match="window_seconds"):
        Monitor(detector, window_seconds=window)


# -- non-finite audio: NaN never means normal ----------------------------------------------------------------------
def test_samples_rule_refuses_values_that_make_nan_windows() -> None:
    check_samples("a.wav", np.array([0.5, -65536.0], np.float32))
    for bad in (np.nan, np.inf, -np.inf, 1e19, -1e19, 7e4):
        with pytest.raises(AudioError, match=r"a.wav"):
            check_samples("a.wav", np.array([0.0, bad], np.float32))


@pytest.mark.parametrize("value", [1e19, -1e19, np.nan, np.inf])
def test_monitor_refuses_non_finite_or_huge_blocks(detector: object, value: float) -> None:
    """Before: finite samples of 1e19 made NaN windows, which counted as normal."""
    block = np.full(20000, 0.01, np.float32)
    block[1000] = value
    with pytest.raises(AudioError):
        Monitor(detector, window_seconds=1.0).push(block, 16000)


def test_pcm_f32_stream_with_huge_samples_is_refused(detector: object) -> None:
    """Before: `monitor - --format f32le` reported no events and exited 0."""
    data = np.full(40000, 0.01, "<f4")
    data[30000] = 1e19
    source = PcmSource(io.BytesIO(data.tobytes()), sr=16000, format="f32le")
    with pytest.raises(AudioError, match="absurd magnitude"):
        list(Monitor(detector, window_seconds=1.0).run(source))


def test_scan_refuses_a_file_with_huge_samples(detector: object, tmp_path: Path) -> None:
    """Before: scan reported "no events" for a float WAV with 1e19 samples; score refuses it."""
    path = tmp_path / "loud.wav"
    signal_ = np.full(48000, 0.01, np.float32)
    signal_[40000] = 1e19
    sf.write(path, signal_, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"loud.wav.*absurd magnitude"):
        scan(detector, path, window_seconds=1.0)
    with pytest.raises(AudioError, match="absurd magnitude"):
        load(path)


def test_a_nan_window_is_above_the_threshold() -> None:
    assert WindowScore(0, 0.0, 1.0, float("nan"), 1.0, 0.0).above
    assert not WindowScore(0, 0.0, 1.0, 0.5, 1.0, 0.0).above


# -- files: truncated, FIFOs, folders named like clips --------------------------------------------------------------
def test_truncated_wav_is_refused_by_every_reader(detector: object, tmp_path: Path) -> None:
    """Before: monitor and scan scored the present part of a truncated WAV without a word."""
    full = _tone(tmp_path / "full.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load(cut)
    with pytest.raises(AudioError, match=r"cut.wav.*truncated"):
        list(WavFileSource(cut))
    with pytest.raises(AudioError, match="truncated"):
        scan(detector, cut, window_seconds=1.0)


def test_fifo_is_refused_without_hanging(detector: object, tmp_path: Path, alarm: None) -> None:
    """Before: scan/monitor on a FIFO with no writer blocked forever (score refuses FIFOs)."""
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="FIFO"):
        list(WavFileSource(fifo))
    with pytest.raises(AudioError, match="FIFO"):
        scan(detector, fifo, window_seconds=1.0)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_folder_named_like_a_clip_is_an_audio_error_without_leaks(tmp_path: Path) -> None:
    """Before: a raw IsADirectoryError, and one leaked descriptor per call ("Too many open files" after ~1000)."""
    folder = tmp_path / "x.wav"
    folder.mkdir()
    before = _open_fds()
    for _ in range(300):
        with pytest.raises(AudioError, match=r"x.wav: is a directory"):
            read_bytes(folder)
    assert _open_fds() <= before + 2


def test_folder_named_like_a_clip_is_skipped_on_request(tmp_path: Path) -> None:
    folder = tmp_path / "x.wav"
    folder.mkdir()
    good = _tone(tmp_path / "good.wav", seconds=1.0)
    features = LogMelFrames().extract([folder, good], on_error="skip")
    assert features.paths == (str(good),)
    assert features.skipped[0][0] == str(folder) and "directory" in features.skipped[0][1]
    with pytest.raises(AudioError, match=r"x.wav"):
        LogMelFrames().extract([folder, good])
    with pytest.raises(AudioError, match="is a directory"):
        list(WavFileSource(folder))


# -- formats soundfile reads ----------------------------------------------------------------------------------------
def test_gsm610_wav_is_read(tmp_path: Path) -> None:
    """Before: "frames must be specified for non-seekable files"."""
    path = tmp_path / "gsm.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 16000), 8000, format="WAV", subtype="GSM610")
    samples, rate = load(path)
    assert rate == 8000 and len(samples) == 16000 and np.isfinite(samples).all()
    blocks = list(WavFileSource(path, block_seconds=0.5))
    assert sum(len(block) for block, _ in blocks) == 16000


def test_no_path_lets_a_library_error_escape_as_something_else(detector: object, tmp_path: Path) -> None:
    folder = tmp_path / "d.wav"
    folder.mkdir()
    for call in (lambda: load(folder), lambda: scan(detector, folder, window_seconds=1.0)):
        with pytest.raises(SoundAnomalyError):
            call()


def test_threads_reading_one_folder_clip_do_not_leak(tmp_path: Path) -> None:
    folder = tmp_path / "y.wav"
    folder.mkdir()
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(50):
            try:
                read_bytes(folder)
            except AudioError:
                pass
            except BaseException as exc:  # pragma: no cover - the defect
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- which entries of a folder are clips: one rule --------------------------------------------------------------------
def test_score_dir_mimii_and_dcase_list_the_same_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `score DIR` dropped a folder named x.wav while MIMII() and train listed it (and train then aborted)."""
    from soundanomaly.audio import find_clips
    from soundanomaly.cli._common import wav_paths
    from soundanomaly.datasets import MIMII

    normal = tmp_path / "6_dB_fan" / "fan" / "id_00" / "normal"
    normal.mkdir(parents=True)
    good = _tone(normal / "00000000.wav", seconds=1.0)
    (normal / "00000001.WAV").mkdir()  # a folder named like a clip, any case
    listed = [str(p) for p in find_clips(tmp_path)]
    assert wav_paths([str(tmp_path)]) == listed
    assert [r.path for r in MIMII(tmp_path)] == listed
    assert str(good) in listed and str(normal / "00000001.WAV") in listed
    features = LogMelFrames().extract(listed, on_error="skip")  # reported, skipped, never a traceback
    assert features.paths == (str(good),) and "directory" in features.skipped[0][1]


# -- memory: a clip too long to score in memory is refused from its header ---------------------------------------
def test_a_clip_too_long_to_score_in_memory_points_to_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: score read a 2-hour WAV whole (13-15x the file size in memory); the bound is now stated and enforced."""
    monkeypatch.setattr("soundanomaly.audio.MAX_CLIP_SAMPLES", 8000)
    for subtype, name in (("PCM_16", "long.wav"), ("FLOAT", "long_float.wav")):
        path = _tone(tmp_path / name, seconds=1.0, subtype=subtype)
        with pytest.raises(AudioError, match=r"too long to score as one clip.*soundanomaly scan"):
            load(path)
    assert len(load(_tone(tmp_path / "short.wav", seconds=0.4))[0]) == 6400
