"""``soundanomaly adapt``: a saved model learns a new session from a folder of normal clips (#22)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.cli import main
from soundanomaly.datasets import DCASE, ClipSet
from soundanomaly.detectors import ClipStatsDetector, load_model


@pytest.fixture
def model_and_target(shift_clips: DCASE, tmp_path: Path) -> tuple[Path, Path]:
    source = ClipSet(r for r in shift_clips if r.split == "train" and r.domain == "source" and r.machine_id == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ClipStatsDetector().fit(source).save(tmp_path / "model")
    target = tmp_path / "after-speed-change" / "fan" / "train"
    target.mkdir(parents=True)
    for record in shift_clips:
        if record.split == "train" and record.domain == "target" and record.machine_id == 0:
            shutil.copy(record.path, target)
    return model, tmp_path / "after-speed-change"


def test_adapt_writes_a_new_model(model_and_target: tuple[Path, Path], tmp_path: Path) -> None:
    model, target = model_and_target
    before = (model / "manifest.json").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["adapt", str(model), str(target), "--out", str(tmp_path / "adapted"), "-q"]) == 0
    assert (model / "manifest.json").read_bytes() == before  # the input model is untouched
    old, new = load_model(model), load_model(tmp_path / "adapted")
    assert len(new.reference_) == len(old.reference_) + 4
    clips = DCASE(target)
    assert np.mean(new.predict(clips)) <= np.mean(old.predict(clips))


def test_adapt_refuses_an_output_inside_the_model(model_and_target: tuple[Path, Path]) -> None:
    model, target = model_and_target
    assert main(["adapt", str(model), str(target), "--out", str(model / "inner"), "-q"]) != 0
    assert not (model / "inner").exists()


def test_adapt_refuses_abnormal_clips(model_and_target: tuple[Path, Path], shift_root: Path, tmp_path: Path) -> None:
    model, _ = model_and_target
    assert main(["adapt", str(model), str(shift_root), "--out", str(tmp_path / "x"), "-q"]) != 0
    assert not (tmp_path / "x").exists()
