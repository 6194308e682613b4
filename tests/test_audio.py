from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.audio import decode, load
from soundanomaly.exceptions import AudioError, ParameterError, SoundAnomalyError
from soundanomaly.features import LogMelFrames


def _wav(path: Path, data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, sr, subtype=subtype)
    return path


def test_real_mimii_clip_has_8_channels(mimii_root: Path) -> None:
    path = next(mimii_root.rglob("*.wav"))
    all_channels, sr = load(path, channel=None)
    assert sr == 16000
    assert all_channels.shape == (8, 160000)
    mic0, _ = load(path)
    np.testing.assert_array_equal(mic0, all_channels[0])
    mixed, _ = load(path, channel="mean")
    np.testing.assert_allclose(mixed, all_channels.mean(axis=0), atol=1e-6)
    last, _ = load(path, channel=-1)
    np.testing.assert_array_equal(last, all_channels[7])


def test_float32_in_unit_range(tmp_path: Path) -> None:
    data = np.stack([np.linspace(-1, 1, 4000), np.zeros(4000)], axis=1)
    signal, sr = load(_wav(tmp_path / "a.wav", data))
    assert signal.dtype == np.float32
    assert sr == 16000
    assert signal.min() >= -1.0 and signal.max() <= 1.0


def test_resample_only_when_asked(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav", np.sin(np.arange(16000) / 10.0))
    same, sr = load(path)
    assert (len(same), sr) == (16000, 16000)
    down, sr = load(path, sr=8000)
    assert (len(down), sr) == (8000, 8000)
    assert down.dtype == np.float32


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load(tmp_path / "nope.wav")


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        load(path)


def test_truncated_wav(tmp_path: Path) -> None:
    path = _wav(tmp_path / "cut.wav", np.zeros(16000))
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated WAV file"):
        load(path)


def test_zero_length_audio(tmp_path: Path) -> None:
    path = _wav(tmp_path / "zero.wav", np.zeros((0, 1)))
    with pytest.raises(AudioError, match=r"zero\.wav: audio has zero length"):
        load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path: Path, bad: float) -> None:
    data = np.zeros(4000, dtype=np.float32)
    data[100] = bad
    path = _wav(tmp_path / "nan.wav", data, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains NaN or infinite"):
        load(path)


def test_channel_out_of_range(tmp_path: Path) -> None:
    path = _wav(tmp_path / "stereo.wav", np.zeros((4000, 2)))
    with pytest.raises(AudioError, match=r"stereo\.wav: channel 2 out of range: the file has 2 channel"):
        load(path, channel=2)


@pytest.mark.parametrize(("kwargs", "name"), [({"channel": "left"}, "channel"), ({"sr": 0}, "sr")])
def test_bad_parameters(tmp_path: Path, kwargs: dict[str, object], name: str) -> None:
    path = _wav(tmp_path / "a.wav", np.zeros(4000))
    with pytest.raises(ParameterError, match=name):
        load(path, **kwargs)  # type: ignore[arg-type]


def test_clip_shorter_than_one_window_names_file(tmp_path: Path) -> None:
    path = _wav(tmp_path / "short.wav", np.zeros(1000))
    with pytest.raises(AudioError, match=r"short\.wav: clip too short: 1000 samples.*2048"):
        LogMelFrames().transform_file(path)


def test_silent_clip_loads_and_gives_finite_features(tmp_path: Path) -> None:
    path = _wav(tmp_path / "silent.wav", np.zeros(16000))
    signal, _ = load(path)
    assert not signal.any()
    features = LogMelFrames().transform_file(path)
    assert np.isfinite(features).all()


def test_errors_share_one_root() -> None:
    with pytest.raises(SoundAnomalyError):
        decode(b"garbage", name="mem")
