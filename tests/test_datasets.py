from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets import MIMII, ClipRecord, ClipSet, autoencoder_split, classifier_split, parse_path, synthetic
from soundanomaly.exceptions import ParameterError


def test_indexes_real_mimii(mimii_root: Path) -> None:
    clips = MIMII(mimii_root)
    assert len(clips) == 14
    assert int(clips.labels.sum()) == 8
    assert {r.machine for r in clips} == {"fan"}
    assert {r.machine_id for r in clips} == {0, 2, 4, 6}
    assert {r.snr for r in clips} == {0.0, 6.0, None}
    assert len(clips.filter(snr=0)) == 8
    assert len(clips.filter(ids=[4], label="normal")) == 2
    assert len(clips.filter(ids=4, snr=[0, 6])) == 4


def test_parse_path_layout() -> None:
    record = parse_path("/data/-6_dB_pump/pump/id_02/abnormal/00000012.wav")
    assert record == ClipRecord("/data/-6_dB_pump/pump/id_02/abnormal/00000012.wav", "pump", 2, -6.0, "abnormal")
    assert record.y == 1 and record.group == "pump id_02 -6dB"
    assert parse_path("/data/unknown_snr_fan/fan/id_06/normal/x.wav").snr is None  # type: ignore[union-attr]
    assert parse_path("/data/fan/id_06/broken/x.wav") is None
    assert parse_path("/data/fan/six/normal/x.wav") is None


def test_mimii_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="is not a folder"):
        MIMII(tmp_path / "missing")
    with pytest.raises(ParameterError, match="no clips found"):
        MIMII(tmp_path)
    with pytest.raises(ParameterError, match="label"):
        ClipSet([]).filter(label="broken")  # type: ignore[arg-type]


def test_write_dataset_layout(tiny_root: Path) -> None:
    clips = MIMII(tiny_root)
    assert len(clips) == 24
    assert (tiny_root / "6_dB_fan" / "fan" / "id_02" / "abnormal" / "00000003.wav").is_file()
    assert clips.filter(ids=0, label="normal").labels.tolist() == [0] * 8


def test_synthetic_is_deterministic() -> None:
    a = synthetic.generate_clip(0, anomaly="imbalance", duration=1.0, seed=3, clip_index=5)
    b = synthetic.generate_clip(0, anomaly="imbalance", duration=1.0, seed=3, clip_index=5)
    np.testing.assert_array_equal(a, b)
    c = synthetic.generate_clip(0, anomaly="imbalance", duration=1.0, seed=4, clip_index=5)
    assert not np.array_equal(a, c)
    d = synthetic.generate_clip(0, anomaly="imbalance", duration=1.0, seed=3, clip_index=6)
    assert not np.array_equal(a, d)


def test_write_dataset_is_deterministic(tmp_path: Path) -> None:
    kwargs = {"ids": [0], "n_normal": 1, "n_abnormal": 1, "duration": 0.5}
    first = synthetic.write_dataset(tmp_path / "a", **kwargs)  # type: ignore[arg-type]
    second = synthetic.write_dataset(tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    for path in sorted(first.rglob("*.wav")):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()


def _band_energy(signal: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum())


def test_blade_pass_tone_is_where_physics_puts_it() -> None:
    model = synthetic.fan_model(0)
    clip = synthetic.generate_clip(0, duration=4.0, snr=20.0)
    spectrum = np.abs(np.fft.rfft(clip))
    freqs = np.fft.rfftfreq(len(clip), 1 / 16000)
    peak = freqs[np.argmax(spectrum * (freqs > 30))]
    assert peak == pytest.approx(model.blade_pass_hz, rel=0.02)


def test_imbalance_raises_shaft_tone_with_severity() -> None:
    shaft = synthetic.fan_model(2).shaft_hz
    clips = [synthetic.generate_clip(2, anomaly="imbalance", severity=s, duration=4.0) for s in (0.1, 0.5, 1.0)]
    energies = [_band_energy(clip, 16000, shaft * 0.9, shaft * 1.1) for clip in clips]
    normal = _band_energy(synthetic.generate_clip(2, duration=4.0), 16000, shaft * 0.9, shaft * 1.1)
    assert normal < energies[0] < energies[1] < energies[2]


def test_ids_differ() -> None:
    assert synthetic.fan_model(0) != synthetic.fan_model(2)


def test_snr_changes_background_share() -> None:
    quiet = synthetic.generate_clip(0, snr=20.0, duration=2.0)
    noisy = synthetic.generate_clip(0, snr=-6.0, duration=2.0)
    bpf = synthetic.fan_model(0).blade_pass_hz
    assert _band_energy(quiet, 16000, bpf - 3, bpf + 3) > 2 * _band_energy(noisy, 16000, bpf - 3, bpf + 3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"severity": 0.0}, "severity"), ({"anomaly": "fire"}, "anomaly"), ({"duration": -1.0}, "duration")],
)
def test_generator_bad_parameters(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        synthetic.generate_clip(0, **kwargs)  # type: ignore[arg-type]


def _records(n_normal: int, n_abnormal: int) -> ClipSet:
    recs = [ClipRecord(f"n{i:05d}.wav", "fan", i % 4 * 2, 6.0, "normal") for i in range(n_normal)]
    recs += [ClipRecord(f"a{i:05d}.wav", "fan", i % 4 * 2, 6.0, "abnormal") for i in range(n_abnormal)]
    return ClipSet(recs)


def test_classifier_split_reproduces_reference_sizes() -> None:
    # All four MIMII fan ids at 6 dB: 4,075 normal and 1,475 abnormal clips.
    clips = _records(4075, 1475)
    split = classifier_split(clips)
    assert (len(split.train), len(split.test)) == (4440, 1110)
    assert int(split.test.labels.sum()) == 295  # 1475 * 0.2: stratified
    assert set(split.train.paths).isdisjoint(split.test.paths)
    from sklearn.model_selection import train_test_split

    _, expected_test = train_test_split(clips.paths, train_size=0.8, stratify=clips.labels, random_state=42)
    assert split.test.paths == expected_test


def test_autoencoder_split() -> None:
    split = autoencoder_split(_records(100, 30), validation_fraction=0.1, seed=0)
    assert split.train.labels.sum() == 0 and split.validation.labels.sum() == 0
    assert len(split.test) == 60 and int(split.test.labels.sum()) == 30
    assert (len(split.train), len(split.validation)) == (63, 7)
    everything = split.train.paths + split.validation.paths + split.test.paths
    assert len(set(everything)) == 130
    assert autoencoder_split(_records(100, 30), seed=0) == split
    assert autoencoder_split(_records(100, 30), seed=1).train != split.train


def test_autoencoder_split_keeps_half_normals_for_training() -> None:
    split = autoencoder_split(_records(6, 8), validation_fraction=0.2)
    assert (len(split.train), len(split.validation), len(split.test)) == (2, 1, 11)


def test_split_errors() -> None:
    with pytest.raises(ParameterError, match="validation_fraction"):
        autoencoder_split(_records(10, 2), validation_fraction=1.0)
    with pytest.raises(ParameterError, match="at least 2 normal"):
        autoencoder_split(_records(1, 2))
    with pytest.raises(ParameterError, match="train_size"):
        classifier_split(_records(10, 10), train_size=1.5)


@pytest.mark.parametrize("anomaly", [None, *synthetic.ANOMALY_TYPES])
def test_short_synthetic_clips_of_every_fault(anomaly: str | None) -> None:
    """Clips shorter than the clogging gate's smoothing kernel (a third of a second) used to crash."""
    for duration in (0.05, 0.25, 1.0):
        clip = synthetic.generate_clip(0, anomaly=anomaly, duration=duration)
        assert clip.shape == (int(duration * 16000),) and np.isfinite(clip).all()
