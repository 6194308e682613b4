"""The synthetic domain-shift generator: DCASE 2023 layout, parse, and shifts that really shift (#22)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import DCASE, ClipSet, open_dataset
from soundanomaly.datasets.shift import (
    EVALUATION_SEED,
    SHIFT_KINDS,
    Condition,
    domain_conditions,
    generate_shift_clip,
    iter_shift_clips,
    write_shift_dataset,
)
from soundanomaly.detectors import GaussianDetector
from soundanomaly.exceptions import CalibrationWarning, ParameterError


def _section(clips: ClipSet, section: int, split: str, domain: str | None = None) -> ClipSet:
    return ClipSet(
        r for r in clips if r.machine_id == section and r.split == split and (domain is None or r.domain == domain)
    )


def test_layout_counts_and_names(shift_root: Path, shift_clips: DCASE) -> None:
    assert {p.name for p in shift_root.iterdir()} == {"fan"}
    assert {p.name for p in (shift_root / "fan").iterdir()} == {"train", "test"}
    for section in (0, 1, 2):
        assert len(_section(shift_clips, section, "train", "source")) == 40
        assert len(_section(shift_clips, section, "train", "target")) == 4
        test = _section(shift_clips, section, "test")
        for domain in ("source", "target"):
            labels = [r.label for r in test if r.domain == domain]
            assert labels.count("normal") == 6 and labels.count("abnormal") == 6
    names = sorted(p.name for p in (shift_root / "fan" / "train").iterdir())
    assert names[0].startswith("section_00_source_train_normal_0000_spd_")
    assert all(r.attributes.startswith("spd_") and "_bg_" in r.attributes for r in shift_clips)
    # the open_dataset reader sees the same clips and splits them by folder
    assert len(open_dataset(shift_root, split="train")) == 3 * 44


def test_attributes_name_the_shift(shift_clips: DCASE) -> None:
    def attrs(section: int, domain: str) -> set[str]:
        return {r.attributes for r in _section(shift_clips, section, "train", domain)}

    # section 0: the operating point (speed, load) differs; section 1: background; section 2: microphone
    assert not any("load_100" in a for a in attrs(0, "target"))
    assert all("bg_factory" in a for a in attrs(1, "source")) and not any("bg_factory" in a for a in attrs(1, "target"))
    assert all("mic_g0_d100_t0" in a for a in attrs(2, "source"))
    assert not any("mic_g0_d100_t0" in a for a in attrs(2, "target"))


def test_deterministic_and_seeded() -> None:
    a = generate_shift_clip(1, Condition(speed=1.1), duration=0.25, seed=3, clip_index=2)
    b = generate_shift_clip(1, Condition(speed=1.1), duration=0.25, seed=3, clip_index=2)
    c = generate_shift_clip(1, Condition(speed=1.1), duration=0.25, seed=4, clip_index=2)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert domain_conditions(0, "operating_point", seed=EVALUATION_SEED) != domain_conditions(0, "operating_point")


@pytest.mark.parametrize("shift", SHIFT_KINDS)
def test_target_speed_and_levels_within_spec(shift: str) -> None:
    for seed in range(10):
        target = domain_conditions(3, shift, seed=seed)["target"][0]
        if shift == "operating_point":
            assert 0.10 <= abs(target.speed - 1.0) <= 0.20 and target.load >= 1.3
        elif shift == "background":
            assert target.background != "factory" and 3.0 <= 6.0 - target.snr <= 6.0
        else:
            assert 4.0 <= abs(target.gain_db) <= 8.0 and 1.5 <= target.distance <= 2.5


def test_microphone_gain_shows_in_level() -> None:
    quiet = generate_shift_clip(0, Condition(), duration=0.5)
    loud = generate_shift_clip(0, Condition(gain_db=6.0), duration=0.5)
    ratio = float(np.sqrt(np.mean(loud.astype(float) ** 2) / np.mean(quiet.astype(float) ** 2)))
    assert ratio == pytest.approx(2.0, rel=0.02)


def test_new_day_session(tmp_path: Path) -> None:
    root = write_shift_dataset(tmp_path / "day2", sections=[0], n_source=5, n_target=2, n_test=2, duration=0.25, day=2)
    clips = open_dataset(root)
    assert {r.split for r in clips} == {"test"} and len(clips) == 8
    assert all(r.attributes.endswith("_day_2") for r in clips)
    day1 = next(iter_shift_clips(sections=[0], n_source=0, n_target=0, n_test=1, duration=0.25))[1]
    day2 = next(iter_shift_clips(sections=[0], n_source=0, n_target=0, n_test=1, duration=0.25, day=2))[1]
    assert not np.allclose(day1, day2)


def test_shift_actually_shifts(shift_clips: DCASE) -> None:
    """A detector trained on the source domain scores the target domain's normal clips higher than the source's."""
    for section in (0, 1, 2):
        detector = GaussianDetector(threshold=ThresholdCalibrator("target_fpr", target_fpr=0.1), holdout=0.3)
        with pytest.warns(CalibrationWarning, match="one session"):  # source clips only: one session
            detector.fit(_section(shift_clips, section, "train", "source"))
        test = _section(shift_clips, section, "test")
        normal = ClipSet(r for r in test if r.label == "normal")
        scores = detector.score(normal)
        target = np.array([r.domain == "target" for r in normal])
        assert np.median(scores[target]) > np.max(scores[~target]), section
        assert np.mean(scores[target] > detector.threshold_) >= 0.5, section  # the source threshold fails


def test_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ParameterError, match="not an empty folder"):
        write_shift_dataset(tmp_path, sections=[0], n_source=1, n_target=0, n_test=0, duration=0.25)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_source": -1}, "n_source"),
        ({"day": 0}, "day"),
        ({"sections": [0, 0]}, "sections"),
        ({"shifts": ["weather"]}, "shifts"),
        ({"anomaly_types": ["fire"]}, "anomaly_types"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        next(iter_shift_clips(duration=0.25, **kwargs))  # type: ignore[arg-type]


def test_bad_condition() -> None:
    with pytest.raises(ParameterError, match="background"):
        generate_shift_clip(0, Condition(background="rain"), duration=0.25)
    with pytest.raises(ParameterError, match="distance"):
        generate_shift_clip(0, Condition(distance=0.5), duration=0.25)
