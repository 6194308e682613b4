from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.audio import load
from soundanomaly.datasets import MIMII, synthetic
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.typing import FeatureExtractor


def reference_features(signal: np.ndarray, sr: int, n_mels: int = 64, frames: int = 5) -> np.ndarray:
    """The reference recipe, written the straightforward way with librosa."""
    import librosa

    mel = librosa.feature.melspectrogram(y=signal, sr=sr, n_fft=1024, hop_length=512, n_mels=n_mels)
    log_mel = librosa.power_to_db(mel, ref=np.max)
    n = log_mel.shape[1] - frames + 1
    out = np.zeros((n, n_mels * frames), np.float32)
    for t in range(frames):
        out[:, n_mels * t : n_mels * (t + 1)] = log_mel[:, t : t + n].T
    return out


# Our STFT runs in float32 while librosa's FFT runs in float64 before casting:
# on the real clips the largest difference is 2e-5 dB (values span 80 dB).
ATOL_DB = 1e-4


def test_parity_with_librosa_on_real_mimii(mimii_root: Path) -> None:
    import librosa

    extractor = LogMelFrames()
    paths = sorted(mimii_root.rglob("*.wav"))
    assert len(paths) == 14
    for path in paths:
        multi, sr = librosa.load(path, sr=None, mono=False)
        expected = reference_features(multi[0], sr)
        got = extractor.transform_file(path)
        assert got.shape == expected.shape == (309, 320)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=ATOL_DB, rtol=0, err_msg=str(path))


@pytest.mark.parametrize("anomaly", [None, "clogging"])
def test_parity_with_librosa_on_synthetic(anomaly: str | None) -> None:
    signal = synthetic.generate_clip(2, anomaly=anomaly, duration=3.0)
    np.testing.assert_allclose(
        LogMelFrames().transform(signal, 16000), reference_features(signal, 16000), atol=ATOL_DB, rtol=0
    )


def test_other_parameters_match_reference() -> None:
    signal = synthetic.generate_clip(0, duration=2.0)
    got = LogMelFrames(n_mels=32, frames=3).transform(signal, 16000)
    np.testing.assert_allclose(got, reference_features(signal, 16000, n_mels=32, frames=3), atol=ATOL_DB, rtol=0)


def test_is_a_feature_extractor() -> None:
    extractor = LogMelFrames()
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.params() == {
        "name": "LogMelFrames",
        "n_mels": 64,
        "frames": 5,
        "n_fft": 1024,
        "hop_length": 512,
        "sr": 16000,
    }
    assert extractor == LogMelFrames() and extractor != LogMelFrames(n_mels=32)
    assert repr(extractor) == "LogMelFrames(n_mels=64, frames=5, n_fft=1024, hop_length=512, sr=16000)"


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_parameters(bad: object) -> None:
    with pytest.raises(ParameterError, match="n_mels"):
        LogMelFrames(n_mels=bad)  # type: ignore[arg-type]


def test_batch_extract_stacks_clips(tiny: MIMII) -> None:
    features = LogMelFrames().extract(tiny.paths[:3], progress=False)
    assert len(features) == 3
    assert features.n_features == 320
    assert features.paths == tuple(tiny.paths[:3])
    for i, path in enumerate(tiny.paths[:3]):
        np.testing.assert_array_equal(features.clip(i), LogMelFrames().transform_file(path))
    assert features.windows.shape == (3 * 59, 320)  # 2 s: 1 + 32000 // 512 - 4 windows


def test_parallel_equals_serial(tiny: MIMII) -> None:
    serial = LogMelFrames().extract(tiny.paths, progress=False)
    parallel = LogMelFrames().extract(tiny.paths, n_jobs=2, progress=False)
    np.testing.assert_array_equal(serial.windows, parallel.windows)
    np.testing.assert_array_equal(serial.offsets, parallel.offsets)


class CountingLogMel(LogMelFrames):
    calls = 0

    def _transform_into(self, samples: np.ndarray, gain: float, sr: int, out: np.ndarray) -> None:
        type(self).calls += 1  # the path every file takes (transform() is the public one-signal entry)
        super()._transform_into(samples, gain, sr, out)


def test_cache_makes_reruns_skip_work(tiny: MIMII, tmp_path: Path) -> None:
    extractor = CountingLogMel()
    first = extractor.extract(tiny.paths[:4], cache_dir=tmp_path, progress=False)
    assert CountingLogMel.calls == 4
    assert len(list(tmp_path.rglob("*.npy"))) == 4
    second = extractor.extract(tiny.paths[:4], cache_dir=tmp_path, progress=False)
    assert CountingLogMel.calls == 4  # served from the cache
    np.testing.assert_array_equal(first.windows, second.windows)
    CountingLogMel(n_mels=32).extract(tiny.paths[:1], cache_dir=tmp_path, progress=False)
    assert CountingLogMel.calls == 5  # other parameters: other key


def test_fsspec_url(tiny: MIMII) -> None:
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://clips/a.wav", "wb") as handle:
        handle.write(Path(tiny.paths[0]).read_bytes())
    from_url = LogMelFrames().extract(["memory://clips/a.wav"], progress=False)
    np.testing.assert_array_equal(from_url.windows, LogMelFrames().transform_file(tiny.paths[0]))
    signal, sr = load("memory://clips/a.wav")
    assert sr == 16000 and signal.shape == (32000,)


def test_clip_features_validation() -> None:
    with pytest.raises(ParameterError, match="empty"):
        ClipFeatures.from_arrays([])
    with pytest.raises(ParameterError, match="same width"):
        ClipFeatures.from_arrays([np.zeros((3, 4)), np.zeros((3, 5))])
    features = ClipFeatures.from_arrays([np.zeros((2, 4)), np.ones((3, 4))])
    np.testing.assert_allclose(features.mean_per_clip(np.arange(5.0)), [0.5, 3.0])


def test_extract_rejects_bad_jobs(tiny: MIMII) -> None:
    with pytest.raises(ParameterError, match="n_jobs"):
        LogMelFrames().extract(tiny.paths, n_jobs=0)
    with pytest.raises(ParameterError, match="paths is empty"):
        LogMelFrames().extract([])


def test_serial_extraction_with_mixed_lengths_equals_per_clip(tmp_path: Path) -> None:
    import soundfile as sf

    paths = []
    for i, seconds in enumerate([2.0, 3.5, 1.0, 3.0]):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, synthetic.generate_clip(i, duration=seconds), 16000, subtype="PCM_16")
        paths.append(str(path))
    features = LogMelFrames().extract(paths, progress=False)
    assert np.diff(features.offsets).tolist() == [59, 106, 28, 90]
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(features.clip(i), LogMelFrames().transform_file(path))


@pytest.mark.parametrize(
    ("n_samples", "n_fft", "hop_length", "n_mels"),
    [
        (16000, 1024, 512, 64),  # the recipe; one padded frame at each end
        (16001, 1024, 512, 64),  # length not a multiple of the hop
        (8000, 1024, 256, 40),  # several padded frames at each end
        (9000, 1000, 300, 32),  # hop does not divide n_fft, odd bin count
        (700, 1024, 512, 16),  # shorter than one FFT: every frame is padded
    ],
)
def test_log_mel_matches_librosa_for_any_framing(n_samples: int, n_fft: int, hop_length: int, n_mels: int) -> None:
    import warnings

    import librosa

    from soundanomaly.features.logmel import log_mel_spectrogram

    signal = synthetic.generate_clip(1, duration=n_samples / 16000)[:n_samples]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa warns when n_fft exceeds the clip
        mel = librosa.feature.melspectrogram(y=signal, sr=16000, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    expected = librosa.power_to_db(mel, ref=np.max)
    got = log_mel_spectrogram(signal, 16000, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=ATOL_DB, rtol=0)


def test_pcm16_files_take_the_int16_path_with_identical_results(tmp_path: Path) -> None:
    """Extraction windows PCM-16 samples straight from the file's bytes; the result equals the float path's."""
    import soundfile as sf

    from soundanomaly.audio import _decode_samples

    rng = np.random.default_rng(3)
    path = tmp_path / "eight.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, size=(24000, 8)), 16000, subtype="PCM_16")
    samples, gain, sr = _decode_samples(path.read_bytes(), channel=5)
    assert samples.dtype == np.int16 and gain == 2.0**-15 and sr == 16000
    assert _decode_samples(path.read_bytes(), channel="mean")[0].dtype == np.float32
    extractor = LogMelFrames()
    for channel in (0, 5, -1, "mean"):
        expected = extractor.transform(load(path, channel=channel)[0], 16000)
        np.testing.assert_array_equal(extractor.extract([path], channel=channel, progress=False).windows, expected)
        np.testing.assert_array_equal(extractor.transform_file(path, channel=channel), expected)


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(16000, 1024, 64), (22050, 2048, 128), (16000, 256, 128)])
def test_mel_blocks_equal_the_dense_product(sr: int, n_fft: int, n_mels: int) -> None:
    """The block-diagonal mel product covers every non-zero weight, also with empty filters (last case)."""
    import warnings

    from soundanomaly.features.logmel import _mel_blocks, mel_basis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa: "Empty filters detected"
        basis = mel_basis(sr, n_fft, n_mels)
        blocks = _mel_blocks(sr, n_fft, n_mels)
    power = np.random.default_rng(0).random((7, 1 + n_fft // 2), dtype=np.float32)
    got = np.full((7, n_mels), np.nan, dtype=np.float32)
    for bands, bins, block in blocks:
        np.matmul(power[:, bins], block, out=got[:, bands])
    np.testing.assert_allclose(got, power @ basis.T, rtol=1e-5, atol=1e-7)
    assert sum(block.size for *_, block in blocks) < basis.size / 2  # the point: far less arithmetic
