"""Synthetic microphone arrays and the channel strategies that use them (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.audio import load
from soundanomaly.datasets import synthetic
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import LogMelFrames
from soundanomaly.features.multichannel import MultiChannel, apply_delays, delay_and_sum, estimate_delays


def _snr_db(machine: np.ndarray, noise: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(machine**2) / np.mean(noise**2)))


def test_mono_dataset_is_unchanged_by_the_multichannel_option() -> None:
    """n_mics=1 (the default) still yields generate_clip's signal, bit for bit."""
    for record, signal in synthetic.iter_clips(ids=[2], n_normal=1, n_abnormal=1, duration=0.5, snr=0, n_mics=1):
        anomaly = None if record.label == "normal" else "imbalance"
        expected = synthetic.generate_clip(2, anomaly=anomaly, duration=0.5, snr=0, clip_index=0)
        assert signal.ndim == 1
        np.testing.assert_array_equal(signal, expected)


def test_multichannel_clip_shape_determinism_and_per_mic_differences() -> None:
    clip = synthetic.generate_multichannel_clip(1, n_mics=4, duration=0.5, seed=3, clip_index=2)
    again = synthetic.generate_multichannel_clip(1, n_mics=4, duration=0.5, seed=3, clip_index=2)
    assert clip.shape == (4, 8000) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip, again)
    assert float(np.abs(clip).max()) == pytest.approx(0.5, abs=1e-6)
    assert not np.allclose(clip[0], clip[1])  # own delay and own noise per microphone


def test_components_add_up_to_the_clip_and_have_the_asked_snr() -> None:
    machine, noise = synthetic.generate_multichannel_clip(0, n_mics=4, snr=0.0, duration=1.0, components=True)
    clip = synthetic.generate_multichannel_clip(0, n_mics=4, snr=0.0, duration=1.0)
    np.testing.assert_allclose(machine + noise, clip, atol=1e-6)
    assert _snr_db(machine, noise) == pytest.approx(0.0, abs=0.1)  # averaged over the microphones


def test_estimated_delays_match_the_array_geometry() -> None:
    machine, _ = synthetic.generate_multichannel_clip(0, n_mics=4, radius=0.1, duration=1.0, components=True)
    delays = estimate_delays(machine, 16000)
    # The true delays relative to mic 0: from the source position the generator uses.
    place = np.random.default_rng([0, 0, 6151])
    angle, distance = place.uniform(0, 2 * np.pi), place.uniform(0.3, 0.6)
    source = distance * np.array([np.cos(angle), np.sin(angle)])
    paths = np.linalg.norm(synthetic.mic_positions(4, radius=0.1) - source, axis=1)
    expected = (paths - paths[0]) / synthetic.SPEED_OF_SOUND * 16000
    np.testing.assert_allclose(delays, expected, atol=0.35)


def test_delay_and_sum_raises_the_snr_of_a_four_mic_clip() -> None:
    machine, noise = synthetic.generate_multichannel_clip(
        2, n_mics=4, snr=-6.0, duration=2.0, uncorrelated=0.9, components=True, radius=0.1
    )
    delays = estimate_delays(machine + noise, 16000)  # estimated on the noisy mixture, as in use
    before = np.mean([_snr_db(machine[m], noise[m]) for m in range(4)])
    after = _snr_db(apply_delays(machine, delays).mean(axis=0), apply_delays(noise, delays).mean(axis=0))
    # Ideal gain for independent noise on 4 mics: 6 dB; 90 % of the noise is independent here.
    assert after - before >= 3.0
    out = delay_and_sum(machine + noise, 16000)
    assert out.shape == (32000,) and out.dtype == np.float32


def test_write_dataset_with_several_mics_gives_multichannel_files(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "fans", ids=[0], n_normal=1, n_abnormal=1, duration=0.5, n_mics=3)
    files = sorted(root.rglob("*.wav"))
    assert len(files) == 2
    signal, rate = load(files[0], channel=None)
    assert signal.shape == (3, 8000) and rate == 16000


@pytest.mark.parametrize(
    "kwargs",
    [{"n_mics": 0}, {"uncorrelated": 1.5}, {"radius": -1.0}, {"anomaly": "melting"}, {"severity": 0.0}],
)
def test_bad_multichannel_parameters_raise_parameter_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        synthetic.generate_multichannel_clip(0, duration=0.1, **kwargs)  # type: ignore[call-overload]


def test_multichannel_strategies_shapes() -> None:
    rng = np.random.default_rng(0)
    clip = rng.normal(size=(3, 16000)).astype(np.float32)
    base = LogMelFrames()
    single = base.transform(clip[0], 16000).shape
    assert MultiChannel(base, strategy="per_channel").transform(clip, 16000).shape == (3 * single[0], single[1])
    for strategy in ("delay_and_sum", "mean", "feature_mean"):
        assert MultiChannel(base, strategy=strategy).transform(clip, 16000).shape == single
    np.testing.assert_array_equal(MultiChannel(base).transform(clip[0], 16000), base.transform(clip[0], 16000))
    with pytest.raises(ParameterError, match="strategy"):
        MultiChannel(base, strategy="loudest")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="base"):
        MultiChannel(MultiChannel(base))
