"""Session-aware calibration and adaptation (#22): whole sessions held out, thresholds per domain, adapt()."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import DCASE, ClipSet
from soundanomaly.detectors import ClipStatsDetector, GaussianDetector
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import CalibrationWarning, ModelFormatError, ParameterError
from soundanomaly.features import ClipFeatures
from soundanomaly.sessions import check_sessions, split_by_session


def _clips(clips: DCASE, *, split: str, domain: str | None = None, section: int | None = None) -> ClipSet:
    return ClipSet(
        r
        for r in clips
        if r.split == split and (domain is None or r.domain == domain) and (section is None or r.machine_id == section)
    )


def _vectors(n: int, *, shift: float = 0.0, seed: int = 0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    return ClipFeatures.from_arrays([rng.normal(shift, 1.0, size=(1, 8)).astype("float32") for _ in range(n)])


@pytest.mark.parametrize("seed", range(20))
def test_whole_sessions_never_mix(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_sessions = int(rng.integers(2, 8))
    keys = np.repeat([f"day{i}" for i in range(n_sessions)], rng.integers(1, 12, n_sessions))
    rng.shuffle(keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        split = split_by_session(keys, holdout=0.2, random_state=seed)
    train, held = set(keys[split.train].tolist()), set(keys[split.holdout].tolist())
    assert not train & held, (train, held)  # a held-out session never trains
    assert train, "every session held out"
    assert sorted(np.concatenate([split.train, split.holdout]).tolist()) == list(range(len(keys)))
    if split.strategy == "sessions":
        assert held == set(split.held_sessions) and len(split.holdout) >= 2


def test_domains_each_give_calibration_clips() -> None:
    keys = np.array(["fan/section_00/source"] * 50 + ["fan/section_00/target"] * 10)
    split = split_by_session(keys, holdout=0.2, random_state=0)
    assert split.strategy == "domains" and split.held_sessions == ()
    held = keys[split.holdout].tolist()
    assert held.count("fan/section_00/source") == 10 and held.count("fan/section_00/target") == 2
    assert set(keys[split.train].tolist()) == set(keys.tolist())  # the model learns both domains


def test_warns_when_calibration_comes_from_the_training_session() -> None:
    calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.1)
    with pytest.warns(CalibrationWarning, match="one session it trains on"):
        GaussianDetector(threshold=calibrator, holdout=0.3).fit(_vectors(40), sessions=["monday"] * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no session given: the old behaviour, no new warning
        GaussianDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.1)).fit(_vectors(60))


def test_fit_holds_out_whole_sessions() -> None:
    data = ClipFeatures.from_arrays(
        [np.full((1, 4), float(i // 10), np.float32) + np.float32(0.01 * i) for i in range(40)]
    )
    sessions = [f"day{i // 10}" for i in range(40)]
    detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(
        data, sessions=sessions
    )
    assert detector._fit_sessions is not None
    trained = set(detector._fit_sessions.tolist())
    assert len(trained) == 3 and len(detector.holdout_scores_) == 10
    assert detector.session_thresholds_ == {}  # whole held-out sessions: one pooled threshold


def test_domain_thresholds_saved_and_used(shift_clips: DCASE, tmp_path: Path) -> None:
    train = _clips(shift_clips, split="train", section=0)
    detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(train)
    own = detector.session_thresholds_
    # 8 source clips calibrate (resolve 20 %: their own threshold); 1 target clip does not (the global one)
    assert set(own) == {"fan/section_00/source"}
    assert detector.threshold_ >= own["fan/section_00/source"]
    test = _clips(shift_clips, split="test", section=0)
    keys = [f"fan/section_00/{r.domain}" for r in test]
    scores = detector.score(test)
    expected = (scores > np.array([own.get(k, detector.threshold_) for k in keys])).astype(np.int8)
    assert detector.predict(test, sessions=keys).tolist() == expected.tolist()
    loaded = BaseDetector.load(detector.save(tmp_path / "model"))
    assert loaded.session_thresholds_ == pytest.approx(own)
    assert loaded.predict(test, sessions=keys).tolist() == expected.tolist()


def test_bad_saved_session_thresholds_are_refused(tmp_path: Path) -> None:
    calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.2)
    detector = ClipStatsDetector(threshold=calibrator).fit(_vectors(30), sessions=["a/source"] * 20 + ["a/target"] * 10)
    folder = detector.save(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"]["sessions"] = {"a/source": "rm -rf"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="session thresholds"):
        BaseDetector.load(folder)


def test_adapt_reduces_target_false_alarms(shift_clips: DCASE) -> None:
    """Trained on the source domain only, the target's normal clips are flagged; 4 target clips fix most of it."""
    rates = []
    for section in (0, 1, 2):
        detector = ClipStatsDetector(holdout=0.4)
        with pytest.warns(CalibrationWarning):
            detector.fit(_clips(shift_clips, split="train", domain="source", section=section))
        normal = ClipSet(r for r in _clips(shift_clips, split="test", section=section) if r.label == "normal")
        target = np.array([r.domain == "target" for r in normal])
        before = detector.predict(normal)[target].mean()
        with pytest.warns(CalibrationWarning, match="out-of-fold"):
            detector.adapt(_clips(shift_clips, split="train", domain="target", section=section))
        assert f"fan/section_{section:02d}/target" not in detector.session_thresholds_  # 4 clips: the global one
        after = detector.predict(normal)
        rates.append((before, after[target].mean(), after[~target].mean()))
    assert np.mean([b for b, _, _ in rates]) >= 0.5  # the shift is real
    assert np.mean([a for _, a, _ in rates]) <= 0.25  # adapt removes most target false alarms
    assert np.mean([s for _, _, s in rates]) <= 0.3  # and the source stays quiet (16 calibration clips)


def test_adapt_keeps_a_numeric_threshold_and_default_session() -> None:
    detector = ClipStatsDetector(threshold=5.0).fit(_vectors(20))
    bank = len(detector.reference_)
    detector.adapt(_vectors(5, shift=3.0, seed=1))
    assert detector.threshold_ == 5.0 and len(detector.reference_) == bank + 5
    detector = ClipStatsDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.2)).fit(_vectors(40))
    old = detector.threshold_
    detector.adapt(_vectors(6, shift=3.0, seed=1))  # 6 clips resolve 20 %: no warning
    assert set(detector.session_thresholds_) == {"adapted"}
    assert detector.threshold_ == max(old, detector.session_thresholds_["adapted"])


def test_adapt_refusals(shift_clips: DCASE) -> None:
    detector = GaussianDetector(threshold=1.0).fit(_vectors(20))
    with pytest.raises(ParameterError, match=r"cannot adapt.*ClipStatsDetector"):
        detector.adapt(_vectors(5))
    with pytest.raises(ParameterError, match="knn"):
        ClipStatsDetector(method="mahalanobis", threshold=1.0).fit(_vectors(30)).adapt(_vectors(5))
    knn = ClipStatsDetector(threshold=1.0).fit(_vectors(20))
    with pytest.raises(ParameterError, match="normal clips only"):
        knn.adapt(_clips(shift_clips, split="test", section=0))
    with pytest.raises(ParameterError, match="2 sessions for 3 clips"):
        knn.adapt(_vectors(3), sessions=["a", "b"])


def test_check_sessions_rejects_bad_keys() -> None:
    with pytest.raises(ParameterError, match="non-empty"):
        check_sessions(["a", ""], 2)
    with pytest.raises(ParameterError, match="sequence"):
        check_sessions("day1", 4)


def test_whole_day_holdout_flags_fewer_clips_of_a_new_day() -> None:
    """A threshold calibrated on whole held-out days holds better on an unheard day than one from random clips."""
    from dataclasses import replace

    from soundanomaly.datasets.shift import Condition, generate_shift_clip

    extractor = ClipStatsDetector().features
    rates: dict[str, list[float]] = {"random": [], "sessions": []}
    for seed in (0, 1):
        days = []
        for day in range(5):  # slow drift: speed +1 %, SNR and microphone gain -0.5 dB a day
            condition = replace(Condition(), speed=1 + 0.01 * day, snr=6 - 0.5 * day, gain_db=-0.5 * day)
            clips = [
                generate_shift_clip(0, condition, duration=1.0, seed=seed, stream=300 + day, clip_index=i)
                for i in range(30)
            ]
            days.append(ClipFeatures.from_arrays([extractor.transform(c, 16000) for c in clips]))
        train = ClipFeatures.from_arrays([m for d in days[:4] for m in d])
        sessions = [f"day{d}" for d in range(4) for _ in range(30)]
        calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.05)
        for name, given in (("random", None), ("sessions", sessions)):
            detector = ClipStatsDetector(threshold=calibrator).fit(train, sessions=given)
            rates[name].append(float(detector.predict(days[4]).mean()))
    assert np.mean(rates["random"]) >= np.mean(rates["sessions"]) + 0.1, rates


def test_pergroup_adapts_each_section(shift_clips: DCASE) -> None:
    from soundanomaly.detectors import PerGroup

    train = ClipSet(r for r in shift_clips if r.split == "train" and r.domain == "source" and r.machine_id < 2)
    with pytest.warns(CalibrationWarning):
        model = PerGroup(ClipStatsDetector(holdout=0.4)).fit(train)
    normal = ClipSet(
        r
        for r in shift_clips
        if r.split == "test" and r.label == "normal" and r.domain == "target" and r.machine_id < 2
    )
    before = model.predict(normal).mean()
    target = ClipSet(r for r in shift_clips if r.split == "train" and r.domain == "target" and r.machine_id < 2)
    with pytest.warns(CalibrationWarning):
        model.adapt(target)
    assert before >= 0.5 and model.predict(normal).mean() <= 0.25
    with pytest.raises(ParameterError, match="no model for group"):
        model.adapt(ClipSet(r for r in shift_clips if r.split == "train" and r.machine_id == 2))


def test_adapted_domain_knn_saves_and_loads(shift_clips: DCASE, tmp_path: Path) -> None:
    from soundanomaly.detectors import DomainKNNDetector

    calibrator = ThresholdCalibrator("target_fpr", target_fpr=0.25)
    detector = DomainKNNDetector(threshold=calibrator)
    with pytest.warns(CalibrationWarning):
        detector.fit(_clips(shift_clips, split="train", domain="source", section=1))
    detector.adapt(_clips(shift_clips, split="train", domain="target", section=1))  # 4 clips resolve 25 %
    assert "fan/section_01/target" in detector.session_thresholds_
    test = _clips(shift_clips, split="test", section=1)
    loaded = BaseDetector.load(detector.save(tmp_path / "adapted"))
    assert loaded.session_thresholds_ == pytest.approx(detector.session_thresholds_)
    assert loaded.threshold_ == pytest.approx(detector.threshold_)
    np.testing.assert_allclose(loaded.score(test), detector.score(test), rtol=1e-6)
    assert loaded.predict(test).tolist() == detector.predict(test).tolist()


def test_days_and_domains_together() -> None:
    """Days are held out whole; the domains (DCASE keys) each give a share; no held-out day trains."""
    keys = np.array(
        ["mon"] * 10 + ["tue"] * 10 + ["wed"] * 10 + ["fan/section_00/source"] * 30 + ["fan/section_00/target"] * 5
    )
    split = split_by_session(keys, holdout=0.2, random_state=3)
    assert split.strategy == "sessions" and len(split.held_sessions) >= 1
    trained = set(keys[split.train].tolist())
    assert not trained & set(split.held_sessions)
    assert {"fan/section_00/source", "fan/section_00/target"} <= trained
    held = keys[split.holdout].tolist()
    assert held.count("fan/section_00/source") == 6 and held.count("fan/section_00/target") == 1
