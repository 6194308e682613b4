"""Continuous monitoring: stream scores equal clip scores, alerting, sources, scan and the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.cli import main
from soundanomaly.datasets.synthetic import generate_clip
from soundanomaly.detectors import BaseDetector, GaussianDetector, PerGroup
from soundanomaly.exceptions import AudioError, ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.features.base import BaseFeatureExtractor
from soundanomaly.monitor import (
    Alerter,
    Event,
    FolderSource,
    Monitor,
    PcmSource,
    WavFileSource,
    WindowScore,
    count_events,
    fault_onset_stream,
    scan,
)
from soundanomaly.streaming import frontend as streaming_frontend
from soundanomaly.streaming import scorers as streaming_scorers

SR = 16000


def _fit_gaussian(machine_id: int = 0, n_clips: int = 12, **params: Any) -> GaussianDetector:
    features = LogMelFrames()
    clips = [generate_clip(machine_id, duration=2.0, clip_index=100 + i) for i in range(n_clips)]
    train = ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())
    return GaussianDetector(shrinkage=0.2, threshold=1.5, **params).fit(train)


@pytest.fixture(scope="module")
def gaussian() -> GaussianDetector:
    return _fit_gaussian()


@pytest.fixture(scope="module")
def stream() -> tuple[np.ndarray, float]:
    return fault_onset_stream(0, anomaly="imbalance", normal_seconds=6.0, fault_seconds=4.0, clip_index=7)


def _push_random_blocks(monitor: Monitor, signal: np.ndarray, seed: int, high: int = 20000) -> list[WindowScore]:
    rng = np.random.default_rng(seed)
    out, position = [], 0
    while position < len(signal):
        size = int(rng.integers(1, high))
        out += monitor.push(signal[position : position + size], SR)
        position += size
    return out


def _clip_scores(detector: BaseDetector, signal: np.ndarray, windows: list[WindowScore], n: int) -> np.ndarray:
    """What detector.score gives each window's audio cut out as a clip."""
    arrays = [detector.features.transform(signal[round(w.start * SR) : round(w.start * SR) + n], SR) for w in windows]
    return detector.score(ClipFeatures.from_arrays(arrays, params=detector.features.params()))


# -- stream == clip scoring ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("window", "hop", "seed"), [(2.0, 0.25, 0), (1.0, 1.0, 1), (1.3, 0.1, 2), (0.75, 0.5, 3)], ids=str
)
def test_stream_scores_equal_clip_scores(
    gaussian: GaussianDetector, stream: Any, window: float, hop: float, seed: int
) -> None:
    signal, _ = stream
    monitor = Monitor(gaussian, window_seconds=window, hop_seconds=hop)
    windows = _push_random_blocks(monitor, signal, seed)
    n, step = monitor.window_samples_, monitor.hop_samples_
    assert len(windows) == (len(signal) - n) // step + 1
    assert [w.index for w in windows] == list(range(len(windows)))
    assert windows[1].start == pytest.approx(step / SR)
    np.testing.assert_allclose([w.score for w in windows], _clip_scores(gaussian, signal, windows, n), rtol=1e-5)


@pytest.mark.parametrize("aggregate", ["max", "topk:5"])
def test_stream_uses_the_detectors_own_reduction(stream: Any, aggregate: str) -> None:
    signal, _ = stream
    detector = _fit_gaussian(n_clips=6, aggregate=aggregate)
    monitor = Monitor(detector, window_seconds=1.0, hop_seconds=0.5)
    windows = _push_random_blocks(monitor, signal, 8)
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(detector, signal, windows, monitor.window_samples_), rtol=1e-5
    )


def test_overlapping_frames_are_not_recomputed(
    gaussian: GaussianDetector, stream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    counts = {"frames": 0, "vectors": 0}
    log_mel, terms = streaming_frontend.FramePipeline._log_mel, streaming_scorers.GaussianStreamScorer.terms

    def counting_log_mel(self: Any, windowed: np.ndarray) -> np.ndarray:
        counts["frames"] += len(windowed)
        return log_mel(self, windowed)

    def counting_terms(self: Any, vectors: np.ndarray) -> list[np.ndarray]:
        counts["vectors"] += len(vectors)
        return terms(self, vectors)

    monkeypatch.setattr(streaming_frontend.FramePipeline, "_log_mel", counting_log_mel)
    monkeypatch.setattr(streaming_scorers.GaussianStreamScorer, "terms", counting_terms)
    signal, _ = stream
    monitor = Monitor(gaussian, window_seconds=2.0, hop_seconds=0.25)
    windows = _push_random_blocks(monitor, signal, 4)
    # each stream frame once, plus the few zero-padded edge frames of each window
    assert counts["frames"] <= len(signal) // 512 + 3 * len(windows)
    n_vectors = 1 + monitor.window_samples_ // 512 - 4
    assert counts["vectors"] < 0.25 * len(windows) * n_vectors  # far fewer than re-scoring every window


@pytest.mark.tf
def test_autoencoder_streams_like_clips(stream: Any) -> None:
    from soundanomaly.detectors import AutoencoderDetector

    signal, _ = stream
    features = LogMelFrames()
    train = [features.transform(generate_clip(0, duration=2.0, clip_index=i), SR) for i in range(3)]
    detector = AutoencoderDetector(epochs=1, batch_size=64, threshold=1.0).fit(ClipFeatures.from_arrays(train))
    monitor = Monitor(detector, window_seconds=2.0, hop_seconds=0.25)
    windows = _push_random_blocks(monitor, signal, 6)
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(detector, signal, windows, monitor.window_samples_), rtol=1e-5
    )


def _moving_reference_stream() -> np.ndarray:
    """Fan audio with a near-silent stretch (values hit the top_db floor) and a loud click (the reference jumps)."""
    signal = generate_clip(0, duration=6.0, clip_index=3)
    rng = np.random.default_rng(5)
    signal[16000:24000] = rng.normal(0, 1e-6, 8000).astype(np.float32)  # far below max - 80 dB
    signal[48000:48320] = 0.9 * np.sign(rng.normal(size=320)).astype(np.float32)  # the loudest bin while in view
    return signal


def _count_shifts(monkeypatch: pytest.MonkeyPatch, cls: type) -> dict[str, int]:
    counts = {"shifted": 0}
    shift = cls.shift  # type: ignore[attr-defined]

    def counting_shift(self: Any, terms: list[np.ndarray], delta: float) -> list[np.ndarray]:
        counts["shifted"] += len(terms[0])
        return shift(self, terms, delta)  # type: ignore[no-any-return]

    monkeypatch.setattr(cls, "shift", counting_shift)
    return counts


def _assert_shifts_keep_stream_equal_to_clips(
    detector: BaseDetector, monkeypatch: pytest.MonkeyPatch, shift_model: type, seed: int
) -> Monitor:
    """Stream the moving-reference signal: the closed form must run and the scores equal clip scoring."""
    counts = _count_shifts(monkeypatch, shift_model)
    signal = _moving_reference_stream()
    monitor = Monitor(detector, window_seconds=2.0, hop_seconds=0.25)
    windows = _push_random_blocks(monitor, signal, seed, high=3000)
    assert counts["shifted"] > 0  # the closed form ran
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(detector, signal, windows, monitor.window_samples_), rtol=1e-5
    )
    return monitor


@pytest.mark.parametrize("factor", [True, False], ids=["cholesky", "full-product"])
def test_reference_moves_and_floor_keep_stream_equal_to_clips(
    gaussian: GaussianDetector, monkeypatch: pytest.MonkeyPatch, factor: bool
) -> None:

    if not factor:  # a precision matrix without a Cholesky factor: the full product

        def no_cholesky(a: np.ndarray) -> np.ndarray:
            raise np.linalg.LinAlgError("not positive definite")

        monkeypatch.setattr(np.linalg, "cholesky", no_cholesky)
    assert isinstance(gaussian.stream_scorer(), streaming_scorers.GaussianStreamScorer)
    monitor = _assert_shifts_keep_stream_equal_to_clips(
        gaussian, monkeypatch, streaming_scorers.GaussianStreamScorer, 9
    )
    assert monitor._frames is not None and (monitor._frames.shift_model.factor is not None) == factor  # type: ignore[union-attr]


def _ill_conditioned(detector: GaussianDetector, condition: float) -> GaussianDetector:
    """The detector with its precision replaced by one of the given condition number (same eigenvectors)."""
    import copy

    values, vectors = np.linalg.eigh(detector.precision_)
    values = np.geomspace(1.0 / condition, 1.0, len(values)) * values.max()
    changed = copy.deepcopy(detector)
    changed.precision_ = (vectors * values) @ vectors.T
    return changed


@pytest.mark.parametrize("condition", [None, 1e12], ids=["fitted", "ill-conditioned"])
def test_float32_factor_only_where_it_keeps_float_tolerance(
    gaussian: GaussianDetector, monkeypatch: pytest.MonkeyPatch, condition: float | None
) -> None:
    """The triangular product runs in float32 for a fitted model, in float64 where float32 would lose digits."""

    detector = gaussian if condition is None else _ill_conditioned(gaussian, condition)
    model = detector.stream_scorer()
    assert isinstance(model, streaming_scorers.GaussianStreamScorer) and model.factor is not None
    assert model.factor.dtype == (np.float32 if condition is None else np.float64)
    _assert_shifts_keep_stream_equal_to_clips(detector, monkeypatch, streaming_scorers.GaussianStreamScorer, 11)


def _swelling_stream(seconds: float, db_per_second: float) -> np.ndarray:
    """Fan audio growing louder, then quieter: the window's loudest bin, the dB reference, moves at every hop."""
    signal = generate_clip(0, duration=seconds, clip_index=4)
    t = np.arange(len(signal)) / SR
    level = db_per_second * np.minimum(t, seconds - t)
    return (signal * 10.0 ** ((level - level.max()) / 20.0)).astype(np.float32)


@pytest.mark.tf
@pytest.mark.parametrize("hidden", [(64, 64, 8, 64, 64), (16,)], ids=["default", "one-hidden-layer"])
def test_autoencoder_moves_follow_the_reference_without_the_output_layer(
    monkeypatch: pytest.MonkeyPatch, hidden: tuple[int, ...]
) -> None:
    """Moved vectors update their residual in closed form; after many moves the stream still equals the clips."""
    from soundanomaly.detectors import AutoencoderDetector

    features = LogMelFrames()
    train = [features.transform(generate_clip(0, duration=2.0, clip_index=i), SR) for i in range(3)]
    detector = AutoencoderDetector(hidden=hidden, epochs=1, batch_size=64, threshold=1.0)
    detector.fit(ClipFeatures.from_arrays(train))
    _assert_shifts_keep_stream_equal_to_clips(detector, monkeypatch, streaming_scorers.AutoencoderStreamScorer, 10)
    # each vector stays in view for ~40 hops and moves at nearly every one: the updates must not drift
    counts = _count_shifts(monkeypatch, streaming_scorers.AutoencoderStreamScorer)
    signal = _swelling_stream(12.0, 10.0)
    monitor = Monitor(detector, window_seconds=4.0, hop_seconds=0.1)
    windows = _push_random_blocks(monitor, signal, 12, high=5000)
    moves_per_vector = counts["shifted"] / (len(signal) / features.hop_length)
    assert moves_per_vector > 10, moves_per_vector
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(detector, signal, windows, monitor.window_samples_), rtol=1e-5
    )


class _Peak(BaseDetector):
    """A non-linear, non-Gaussian detector: the largest deviation from the training mean."""

    def _fit(self, features: ClipFeatures, labels: Any = None) -> None:
        self.mean_ = features.windows.mean(axis=0)

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(np.abs(windows - self.mean_).max(axis=1), dtype=np.float64)


class _Energy(BaseFeatureExtractor):
    """A non-frame extractor: the monitor falls back to featurising each window."""

    def transform(self, signal: np.ndarray, sr: int) -> np.ndarray:
        frames = signal[: len(signal) // 400 * 400].reshape(-1, 400)
        energy: np.ndarray = np.log((frames**2).mean(axis=1, keepdims=True) + 1e-9).astype(np.float32)
        return energy

    def params(self) -> dict[str, Any]:
        return {"name": "Energy"}


@pytest.mark.parametrize("extractor", [LogMelFrames(n_mels=32, frames=3, n_fft=512, hop_length=256), _Energy()])
def test_any_detector_and_extractor_streams_like_clips(stream: Any, extractor: BaseFeatureExtractor) -> None:
    signal, _ = stream
    train = [extractor.transform(generate_clip(0, duration=1.0, clip_index=i), SR) for i in range(3)]
    detector = _Peak(features=extractor, threshold=1.0).fit(ClipFeatures.from_arrays(train))
    monitor = Monitor(detector, window_seconds=1.0, hop_seconds=0.3)
    windows = _push_random_blocks(monitor, signal[: 5 * SR], seed=5, high=3000)
    assert len(windows) > 5
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(detector, signal, windows, monitor.window_samples_), rtol=1e-5
    )


def test_block_size_does_not_matter(gaussian: GaussianDetector, stream: Any) -> None:
    signal, _ = stream
    whole = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.25).push(signal, SR)
    tiny_blocks = _push_random_blocks(Monitor(gaussian, window_seconds=1.0, hop_seconds=0.25), signal, 9, high=700)
    np.testing.assert_allclose([w.score for w in whole], [w.score for w in tiny_blocks], rtol=1e-6)
    int16 = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.25).push((signal * 32767).astype(np.int16), SR)
    np.testing.assert_allclose([w.score for w in whole], [w.score for w in int16], rtol=1e-2)


def test_memory_is_flat_in_stream_length(gaussian: GaussianDetector) -> None:
    rng = np.random.default_rng(0)
    monitor = Monitor(gaussian, window_seconds=2.0, hop_seconds=1.0)
    noise = rng.normal(0, 0.1, 5 * SR).astype(np.float32)
    sizes = []
    for _ in range(4):
        for _ in range(8):
            monitor.push(noise, SR)
        assert monitor._frames is not None
        sizes.append((monitor._buffer._data.size, monitor._frames.cache.shape))
    assert monitor.position == pytest.approx(160.0)
    assert sizes[1] == sizes[-1]  # nothing grows after the first 40 s
    assert monitor._buffer._data.size < 10 * monitor.window_samples_


# -- alerting --------------------------------------------------------------------------------------------------------
def _feed(alerter: Alerter, scores: list[float]) -> list[tuple[str, Event]]:
    changes = []
    for i, score in enumerate(scores):
        raised, cleared = alerter.update(WindowScore(i, float(i), i + 1.0, score, alerter.threshold, 0.0))
        changes += [("raised", raised)] if raised else []
        changes += [("cleared", cleared)] if cleared else []
    return changes


def test_alerter_hysteresis() -> None:
    # isolated spikes never raise with 2 of 3
    assert _feed(Alerter(1.0, raise_k=2, raise_n=3, clear_m=2), [0, 2, 0, 0, 2, 0, 0, 2, 0]) == []
    alerter = Alerter(1.0, raise_k=2, raise_n=3, clear_m=2)
    changes = _feed(alerter, [0, 2, 0, 3, 0.5, 5, 0, 0, 0, 0])
    assert [kind for kind, _ in changes] == ["raised", "cleared"]
    event = changes[0][1]
    # first window above in the raising run ends at 2 s; raised by the window ending at 4 s; one dip does not clear
    assert (event.start, event.detected_at, event.end) == (2.0, 4.0, 6.0)
    assert (event.peak_score, event.peak_time, event.n_windows, event.threshold) == (5, 6.0, 3, 1.0)
    assert event.duration == 4.0 and not event.ongoing and alerter.events == [event]
    assert count_events([0, 2, 0, 3, 0.5, 5, 0, 0, 0, 0], 1.0, raise_k=2, raise_n=3, clear_m=2) == 1
    # every window above: raised at once with k = n = 1, then stays raised
    assert [kind for kind, _ in _feed(Alerter(1.0, raise_k=1, raise_n=1), [2, 2, 2])] == ["raised"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"raise_k": 3, "raise_n": 2}, "raise_k"), ({"clear_m": 0}, "clear_m"), ({"raise_n": 1.5}, "raise_n")],
)
def test_alerter_rejects_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        Alerter(1.0, **kwargs)


@pytest.mark.parametrize("anomaly", ["imbalance", "bearing_wear"])
def test_fault_onset_found_within_two_hops_at_6db(gaussian: GaussianDetector, anomaly: str) -> None:
    monitor = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5)
    normal = [(generate_clip(0, duration=4.0, snr=6.0, clip_index=500 + i), SR) for i in range(12)]  # other clips
    calibration = monitor.calibrate(normal, target_false_alarms_per_hour=0.0)
    assert calibration.n_false_alarms == 0 and monitor.threshold == calibration.threshold
    signal, onset = fault_onset_stream(
        0, anomaly=anomaly, normal_seconds=8.0, fault_seconds=5.0, snr=6.0, severity=0.8, clip_index=3
    )
    for window in monitor.push(signal, SR):
        assert window.raised is None or window.end > onset  # no alert on the normal part
    assert len(monitor.events) == 1
    event = monitor.events[0]
    hop = monitor.hop_samples_ / SR
    assert onset <= event.start <= onset + 2 * hop
    assert event.ongoing and event.peak_score > monitor.threshold


def test_calibrate_reports_false_alarm_rate(gaussian: GaussianDetector) -> None:
    normal = generate_clip(0, duration=20.0, clip_index=501)
    monitor = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5, raise_k=1, raise_n=1, clear_m=1)
    low = float(np.quantile(monitor.calibrate(normal, SR).scores, 0.5))
    monitor.set_threshold(low)
    measured = monitor.calibrate([(normal[: 10 * SR], SR), (normal[10 * SR :], SR)])  # a source works too
    assert measured.threshold == low and monitor.threshold == low  # measuring does not change it
    assert measured.hours == pytest.approx(20 / 3600)
    assert measured.n_false_alarms >= 1
    assert measured.false_alarms_per_hour == pytest.approx(measured.n_false_alarms / measured.hours)
    assert measured.false_alarms_per_hour_upper95 > measured.false_alarms_per_hour
    assert 0.3 <= measured.window_fpr <= 0.7
    target = monitor.calibrate(normal, SR, target_false_alarms_per_hour=200.0)
    assert target.false_alarms_per_hour <= 200.0 and monitor.threshold == target.threshold > low
    assert count_events(target.scores, target.threshold, raise_k=1, raise_n=1, clear_m=1) == target.n_false_alarms
    with pytest.raises(ParameterError, match="sr is required"):
        monitor.calibrate(normal)
    with pytest.raises(ParameterError, match="shorter than one window"):
        monitor.calibrate(normal[:100], SR)


# -- errors --------------------------------------------------------------------------------------------------------
def test_monitor_errors(gaussian: GaussianDetector, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="hop_seconds"):
        Monitor(gaussian, window_seconds=1.0, hop_seconds=2.0)
    with pytest.raises(ParameterError, match="window_seconds"):
        Monitor(gaussian, window_seconds=-1)
    with pytest.raises(ParameterError, match="too short"):
        Monitor(gaussian, window_seconds=0.05, hop_seconds=0.01).push(np.zeros(100, np.float32), SR)
    with pytest.raises(ParameterError, match="no audio pushed"):
        Monitor(gaussian).hop_samples_  # noqa: B018
    monitor = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5)
    monitor.push(np.zeros(100, np.float32), SR)
    with pytest.raises(ParameterError, match="sr changed"):
        monitor.push(np.zeros(100, np.float32), 8000)
    with pytest.raises(AudioError, match="NaN"):
        monitor.push(np.array([np.nan], np.float32), SR)
    with pytest.raises(ParameterError, match="channel 3 out of range"):
        Monitor(gaussian, channel=3).push(np.zeros((10, 2), np.float32), SR)
    with pytest.raises(ParameterError, match="model must be"):
        Monitor(object())
    monitor.reset()
    assert monitor.position == 0.0 and monitor.events == []


def test_model_folder_and_multichannel_blocks(gaussian: GaussianDetector, stream: Any, tmp_path: Path) -> None:
    signal, _ = stream
    path = gaussian.save(tmp_path / "model")
    stereo = np.stack([np.zeros_like(signal), signal], axis=1)
    from_folder = Monitor(path, window_seconds=1.0, hop_seconds=0.5, channel=1).push(stereo, SR)
    direct = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5).push(signal, SR)
    np.testing.assert_allclose([w.score for w in from_folder], [w.score for w in direct], rtol=1e-6)


def test_stream_at_another_rate_is_resampled(gaussian: GaussianDetector, stream: Any) -> None:
    import soxr

    signal, _ = stream
    high = soxr.resample(signal[: 6 * SR], SR, 32000).astype(np.float32)
    monitor = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5)
    windows = _push_random_blocks_at(monitor, high, 32000)
    assert (monitor.sr_, monitor.input_sr_) == (SR, 32000)
    assert windows[1].end == pytest.approx(1.512)  # times in seconds, whatever the rate
    expected = Monitor(gaussian, window_seconds=1.0, hop_seconds=0.5).push(
        soxr.resample(high, 32000, SR).astype(np.float32), SR
    )
    assert len(windows) == len(expected) > 5
    np.testing.assert_allclose([w.score for w in windows], [w.score for w in expected], rtol=1e-3)


def _push_random_blocks_at(monitor: Monitor, signal: np.ndarray, sr: int) -> list[WindowScore]:
    rng = np.random.default_rng(11)
    out, position = [], 0
    while position < len(signal):
        size = int(rng.integers(1, 9000))
        out += monitor.push(signal[position : position + size], sr)
        position += size
    return out


# -- sources ---------------------------------------------------------------------------------------------------------
def test_wav_file_source(tmp_path: Path, stream: Any) -> None:
    signal, _ = stream
    sf.write(tmp_path / "s.wav", np.stack([signal, -signal], axis=1), SR, subtype="FLOAT")
    blocks = list(WavFileSource(tmp_path / "s.wav", block_seconds=0.5, channel=1))
    assert {sr for _, sr in blocks} == {SR} and len(blocks) == 20
    np.testing.assert_array_equal(np.concatenate([b for b, _ in blocks]), -signal)
    sf.write(tmp_path / "short.wav", signal[: SR // 2], SR)
    started = time.monotonic()
    assert sum(len(b) for b, _ in WavFileSource(tmp_path / "short.wav", block_seconds=0.1, realtime=True)) == SR // 2
    assert time.monotonic() - started >= 0.35  # paced: 0.5 s of audio cannot arrive in much less
    with pytest.raises(AudioError, match="file not found"):
        list(WavFileSource(tmp_path / "missing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match=r"bad\.wav"):
        list(WavFileSource(tmp_path / "bad.wav"))


def test_folder_source_idle_time_counts_from_the_end_of_a_clip(tmp_path: Path) -> None:
    # A slow consumer (a model scoring each block) spends longer on one clip than idle_timeout:
    # a clip that arrived meanwhile is still streamed; the watch only ends after idle_timeout of nothing new.
    sf.write(tmp_path / "a.wav", np.zeros(3 * SR, np.float32), SR)
    source = FolderSource(tmp_path, poll_seconds=0.02, idle_timeout=0.3, block_seconds=1.0)
    blocks = 0
    for _ in source:
        blocks += 1
        if blocks == 1:
            sf.write(tmp_path / "tmp.part", np.zeros(SR, np.float32), SR, format="WAV")
            (tmp_path / "tmp.part").replace(tmp_path / "b.wav")
        time.sleep(0.2)
    assert source.seen == ["a.wav", "b.wav"]
    assert blocks == 4


def test_folder_source_streams_new_clips(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    sf.write(incoming / "000.wav", np.full(1600, 0.1, np.float32), SR)

    def recorder() -> None:
        for i in (1, 2):
            time.sleep(0.15)
            sf.write(tmp_path / "tmp.wav", np.full(1600, 0.1 * (i + 1), np.float32), SR)
            (tmp_path / "tmp.wav").replace(incoming / f"{i:03d}.wav")  # atomic, as recorders should

    (incoming / "001-broken.wav").write_bytes(b"RIFF....not a wav file")  # logged and skipped
    thread = threading.Thread(target=recorder)
    thread.start()
    source = FolderSource(incoming, poll_seconds=0.02, idle_timeout=2.0)
    levels = [round(float(block[0]), 3) for block, _ in source]
    thread.join()
    assert source.seen == ["000.wav", "001-broken.wav", "001.wav", "002.wav"]
    assert levels == [0.1, 0.2, 0.3]
    with pytest.raises(ParameterError, match="not a directory"):
        FolderSource(tmp_path / "nope")


def test_pcm_source(stream: Any) -> None:
    signal, _ = stream
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    blocks = list(PcmSource(io.BytesIO(pcm.tobytes()), sr=SR, block_seconds=0.3))
    np.testing.assert_array_equal(np.concatenate([b for b, _ in blocks]), pcm / np.float32(32768))
    two = np.stack([signal, signal * 0.5], axis=1).astype("<f4")
    decoded = np.concatenate(
        [b for b, _ in PcmSource(io.BytesIO(two.tobytes()), format="f32le", channels=2, channel=1)]
    )
    np.testing.assert_array_equal(decoded, two[:, 1])
    for kwargs, match in (({"format": "mp3"}, "format"), ({"channels": 2, "channel": 2}, "channel 2")):
        with pytest.raises(ParameterError, match=match):
            PcmSource(io.BytesIO(), **kwargs)


# -- long recordings -------------------------------------------------------------------------------------------------
def test_scan_long_recording_in_flat_memory(gaussian: GaussianDetector, stream: Any, tmp_path: Path) -> None:
    signal, onset = stream
    sf.write(tmp_path / "rec.wav", signal, SR, subtype="PCM_16")
    result = scan(gaussian, tmp_path / "rec.wav", window_seconds=1.0, hop_seconds=0.25, block_seconds=0.7)
    assert result.duration == pytest.approx(10.0) and result.sr == SR
    assert len(result.events) == 1 and onset <= result.events[0].start <= onset + 1.0
    np.testing.assert_allclose(result.ends - result.starts, 1.0)
    assert result.to_rows()[0]["above"] is False

    peaks = []
    for seconds in (15, 60):
        noise = np.random.default_rng(seconds).normal(0, 0.1, seconds * SR).astype(np.float32)
        sf.write(tmp_path / f"{seconds}.wav", noise, SR, subtype="PCM_16")
        del noise
        tracemalloc.start()
        scan(gaussian, tmp_path / f"{seconds}.wav", window_seconds=2.0, hop_seconds=1.0, block_seconds=1.0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 1e6  # 4x the audio, not 4x the memory
    assert peaks[1] < 20e6  # a window is 128 kB


# -- the CLI ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_and_recording(
    gaussian: GaussianDetector, stream: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    signal, _ = stream
    sf.write(folder / "rec.wav", np.concatenate([signal, generate_clip(0, duration=3.0, clip_index=77)]), SR)
    return gaussian.save(folder / "model"), folder / "rec.wav"


def test_cli_monitor_wav_with_jsonl(
    model_and_recording: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, recording = model_and_recording
    jsonl = tmp_path / "events.jsonl"
    argv = ["monitor", str(model), str(recording), "--window", "1", "--hop", "0.25", "--jsonl", str(jsonl)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("ALERT") and lines[1].startswith("CLEARED") and len(lines) == 2
    assert "stream ended after 13.0 s of audio" in err and "1 alert(s)" in err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["type"] for r in records] == ["raised", "cleared"]
    assert 6.0 <= records[0]["start"] <= 7.0 and records[1]["end"] > records[1]["start"]


def test_cli_monitor_stdin_and_ctrl_c(
    model_and_recording: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model, recording = model_and_recording
    signal, sr = sf.read(recording, dtype="int16")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(signal[: 9 * SR].tobytes())))
    assert main(["monitor", str(model), "-", "--window", "1", "--hop", "0.25", "--rate", str(sr)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ALERT") and "ONGOING" in out  # the stream ends during the fault

    from soundanomaly.cli import monitor as _cli_monitor

    def interrupted(args: Any) -> Iterator[tuple[np.ndarray, int]]:
        yield from WavFileSource(recording, block_seconds=0.5)
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli_monitor, "_source", interrupted)
    jsonl = tmp_path / "e.jsonl"
    assert main(["monitor", str(model), str(recording), "--window", "1", "--hop", "0.25", "--jsonl", str(jsonl)]) == 0
    assert "stopped after 13.0 s" in capsys.readouterr().err
    assert [json.loads(line)["type"] for line in jsonl.read_text().splitlines()] == ["raised", "cleared"]


def test_cli_errors_are_one_line(tmp_path: Path, model_and_recording: Any, capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = model_and_recording
    assert main(["monitor", str(tmp_path), "x.wav"]) == 2
    assert main(["monitor", str(model), str(tmp_path / "missing.wav")]) == 2
    assert main(["scan", str(model), str(tmp_path / "missing.wav")]) == 2
    assert main(["monitor", str(model), "-", "--window", "1", "--hop", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("soundanomaly: error: ") for line in err)


def test_cli_scan(model_and_recording: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, recording = model_and_recording
    out_dir = tmp_path / "scan"
    assert main(["scan", str(model), str(recording), "--window", "1", "--hop", "0.25", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "13.0 s" in out and " Hz" in out  # events table with the top bands
    events = (out_dir / "events.csv").read_text().splitlines()
    assert events[0].startswith("start,end") and len(events) == 2
    assert len((out_dir / "scores.csv").read_text().splitlines()) > 40
    assert (out_dir / "scan.png").stat().st_size > 5000


def _fit_per_id() -> PerGroup:
    """One Gaussian per machine id, on log-mel frames of synthetic fans 0 and 2."""
    features = LogMelFrames()
    clips = [generate_clip(m, duration=2.0, clip_index=100 + i) for m in (0, 2) for i in range(8)]
    train = ClipFeatures.from_arrays([features.transform(c, SR) for c in clips], params=features.params())
    groups = ["fan/id_00"] * 8 + ["fan/id_02"] * 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few clips per group to hold out
        return PerGroup(GaussianDetector(shrinkage=0.2)).fit(train, groups=groups)


def test_per_id_model_monitors_one_group_like_its_clip_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model trained per machine id streams for the id the microphone listens to, equal to PerGroup.score."""
    model = _fit_per_id()
    with pytest.raises(ParameterError, match=r"group=.*'fan/id_00', 'fan/id_02'"):
        Monitor(model)
    with pytest.raises(ParameterError, match="one of"):
        Monitor(model, group="fan/id_04")
    with pytest.raises(ParameterError, match="PerGroup model"):
        Monitor(_fit_gaussian(), group="fan/id_00")
    signal = generate_clip(2, duration=4.0, clip_index=7)
    monitor = Monitor(model, window_seconds=1.0, hop_seconds=0.25, group="fan/id_02")
    assert monitor.detector is model.models_["fan/id_02"] and monitor.threshold == model.threshold_ == 0.0
    windows = _push_random_blocks(monitor, signal, 13, high=4000)
    n = monitor.window_samples_
    arrays = [model.features.transform(signal[round(w.start * SR) : round(w.start * SR) + n], SR) for w in windows]
    clips = ClipFeatures.from_arrays(arrays, params=model.features.params())
    expected = model.score(clips, groups=["fan/id_02"] * len(windows))
    scale = abs(model.models_["fan/id_02"].threshold_)
    np.testing.assert_allclose([w.score for w in windows], expected, rtol=1e-5, atol=1e-5 * scale)
    calibration = monitor.calibrate(signal, SR, target_false_alarms_per_hour=0.0)  # a fresh monitor, same group
    assert calibration.n_windows == len(windows) and calibration.n_false_alarms == 0
    scores = [w.score for w in windows]  # the threshold is one of the fresh monitor's scores: on the same scale
    assert min(scores) - 1e-6 * scale <= calibration.threshold <= max(scores) + 1e-6 * scale
    # the CLI: --group, and one line naming the groups without it
    path = model.save(tmp_path / "per-id")
    sf.write(tmp_path / "rec.wav", signal, SR)
    assert main(["scan", str(path), str(tmp_path / "rec.wav"), "--window", "1", "--group", "fan/id_02"]) == 0
    out = capsys.readouterr().out
    assert "4.0 s, 4 windows" in out and " Hz" in out  # events explained by the group's model
    assert main(["scan", str(path), str(tmp_path / "rec.wav"), "--window", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "fan/id_02" in err[0] and "--group" in err[0]


def test_import_stays_light() -> None:
    code = (
        "import sys, soundanomaly.monitor, soundanomaly.explain, soundanomaly.cli\n"
        "print([m for m in ('matplotlib', 'tensorflow', 'librosa') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_monitor_module_still_exports_every_public_name() -> None:
    """``soundanomaly.monitor`` became a re-export of ``soundanomaly.streaming``: users' imports keep working."""
    import soundanomaly.monitor as old
    import soundanomaly.streaming as new

    names = ["Alerter", "Event", "FolderSource", "Monitor", "MonitorCalibration", "PcmSource", "ScanResult",
             "WavFileSource", "WindowScore", "count_events", "fault_onset_stream", "scan"]  # fmt: skip
    assert sorted(old.__all__) == sorted(new.__all__) == sorted(names)
    assert all(getattr(old, name) is getattr(new, name) for name in names)


def test_a_detector_scoring_otherwise_gets_no_stream_scorer_and_is_scored_exactly(
    gaussian: GaussianDetector, stream: Any
) -> None:
    """The detector provides its streaming scorer; a subclass that scores differently provides none and the
    front end scores its vectors exactly (the stream still equals clip scoring)."""
    import copy

    assert isinstance(gaussian.stream_scorer(), streaming_scorers.GaussianStreamScorer)

    class Doubled(GaussianDetector):
        def _score_windows(self, windows: np.ndarray) -> np.ndarray:
            return 2.0 * GaussianDetector._score_windows(self, windows)

    doubled = copy.copy(gaussian)
    doubled.__class__ = Doubled
    assert doubled.stream_scorer() is None and streaming_scorers.stream_scorer_of(doubled) is None
    signal, _ = stream
    monitor = Monitor(doubled, window_seconds=2.0, hop_seconds=0.5)
    windows = _push_random_blocks(monitor, signal[: 5 * SR], 3)
    assert monitor._frames is not None and monitor._frames.shift_model is None
    np.testing.assert_allclose(
        [w.score for w in windows], _clip_scores(doubled, signal, windows, monitor.window_samples_), rtol=1e-5
    )
