"""One group vocabulary (#21 defect 1): per-section DCASE and per-id MIMII models work end to end.

On c91f061 a per-id model trained on a DCASE folder knew ``fan/id_00`` while
``evaluate``, ``score`` on paths and ``Monitor(group=...)`` asked for
``fan/section_00``: every step after ``train`` failed.
"""

from __future__ import annotations

import csv
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.cli import main
from soundanomaly.datasets import DCASE, MIMII, ClipRecord, ClipSet
from soundanomaly.detectors import GaussianDetector, PerGroup, load_model
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import ClipFeatures

SR = 16000


def _tone(path: Path, freq: float, seed: int, *, loud: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    signal = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size) + loud * rng.normal(size=t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal.astype(np.float32), SR)


def _dcase(root: Path) -> Path:
    for section, freq in ((0, 300.0), (1, 900.0)):
        for i in range(6):
            for domain in ("source", "target"):
                name = f"section_{section:02d}_{domain}_train_normal_{i:04d}_a_{i}.wav"
                _tone(root / "fan" / "train" / name, freq, 100 * section + 10 * i + (domain == "target"))
        for i in range(2):
            _tone(root / "fan" / "test" / f"section_{section:02d}_source_test_normal_{i:04d}.wav", freq, 1000 + i)
            _tone(
                root / "fan" / "test" / f"section_{section:02d}_source_test_anomaly_{i:04d}.wav", freq, 2000 + i, loud=1
            )
    return root


def _mimii(root: Path) -> Path:
    for machine_id, freq in ((0, 300.0), (2, 900.0)):
        for i in range(8):
            _tone(
                root / "6_dB_fan" / "fan" / f"id_{machine_id:02d}" / "normal" / f"{i:08d}.wav",
                freq,
                50 * machine_id + i,
            )
        for i in range(2):
            _tone(
                root / "6_dB_fan" / "fan" / f"id_{machine_id:02d}" / "abnormal" / f"{i:08d}.wav", freq, 900 + i, loud=1
            )
    return root


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([argv[0], "-q", *argv[1:]])
    return code, out.getvalue()


def test_group_and_session_keys_of_records_and_paths_agree(tmp_path: Path) -> None:
    from soundanomaly.datasets.keys import group_key, group_keys, session_key, session_keys

    dev = DCASE(_dcase(tmp_path / "dev"))
    assert sorted(set(dev.groups)) == ["fan/section_00", "fan/section_01"]
    assert dev.groups == [group_key(p) for p in dev.paths]
    assert dev.sessions == [session_key(p) for p in dev.paths]
    assert set(dev.filter(split="train").sessions) == {
        f"fan/section_0{s}/{d}" for s in (0, 1) for d in ("source", "target")
    }
    fans = MIMII(_mimii(tmp_path / "mimii"))
    assert sorted(set(fans.groups)) == ["fan/id_00", "fan/id_02"]
    assert fans.groups == group_keys(fans.paths).tolist()
    assert session_keys(fans) is None
    assert group_key("dev/fan/train/normal_id_04_00000000.wav") == "fan/id_04"  # DCASE 2020 names an id
    record = ClipRecord("x.wav", "fan", 3, None, "normal", session="night shift")
    assert session_key(record) == "night shift" and ClipSet([record]).sessions == ["night shift"]
    with pytest.raises(ParameterError, match="cannot tell the group"):
        group_keys(["a.wav"])
    with pytest.raises(ParameterError, match="2 groups for 1 clips"):
        group_keys(["a.wav"], groups=["x", "y"])


@pytest.mark.parametrize("layout", ["dcase", "mimii"])
def test_per_group_model_trains_evaluates_scores_and_monitors(tmp_path: Path, layout: str) -> None:
    data = _dcase(tmp_path / "dev") if layout == "dcase" else _mimii(tmp_path / "mimii")
    clips = DCASE(data) if layout == "dcase" else MIMII(data)
    expected = ["fan/section_00", "fan/section_01"] if layout == "dcase" else ["fan/id_00", "fan/id_02"]
    model_dir = tmp_path / "model"
    assert _run("train", os.fspath(data), "--detector", "gaussian", "--per-id", "--out", os.fspath(model_dir))[0] == 0
    model = load_model(model_dir)
    assert isinstance(model, PerGroup) and model.groups_ == expected

    code, report = _run("evaluate", os.fspath(model_dir), os.fspath(data))
    assert code == 0 and "AUC" in report

    test = clips.filter(label="abnormal")
    code, table = _run("score", os.fspath(model_dir), *test.paths)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == len(test) and all(np.isfinite(float(r["score"])) for r in rows)

    from soundanomaly.monitor import Monitor

    signal, sr = sf.read(test.paths[0], dtype="float32")
    monitor = Monitor(model, group=expected[0], window_seconds=0.25, hop_seconds=0.25)
    assert monitor.group == expected[0] and monitor.push(signal, sr)


def test_fit_hands_groups_and_sessions_to_the_detector(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    class Probe(GaussianDetector):
        def _fit(self, features: ClipFeatures, labels: object = None) -> None:
            seen["groups"], seen["sessions"] = self._fit_groups, self._fit_sessions
            super()._fit(features, labels)  # type: ignore[arg-type]

    dev = DCASE(_dcase(tmp_path / "dev")).filter(split="train")
    Probe(threshold=1e9).fit(dev)
    assert set(seen["groups"].tolist()) == {"fan/section_00", "fan/section_01"}  # type: ignore[attr-defined]
    assert len(set(seen["sessions"].tolist())) == 4  # type: ignore[attr-defined]
    Probe(threshold=1e9).fit(dev, sessions=["day"] * len(dev))
    assert set(seen["sessions"].tolist()) == {"day"}  # type: ignore[attr-defined]


def test_predict_takes_groups_on_every_detector_and_uses_the_one_rule() -> None:
    rng = np.random.default_rng(0)
    train = ClipFeatures.from_arrays([rng.normal(i % 2 * 4, 1, size=(8, 3)).astype("f4") for i in range(24)])
    model = PerGroup(GaussianDetector(threshold=4.0)).fit(train, groups=["a/id_00", "a/id_01"] * 12)
    odd = ClipFeatures.from_arrays([np.full((8, 3), 4.0, "f4")])
    assert model.predict(odd, groups=["a/id_00"]).tolist() == [1]
    assert model.predict(odd, groups=["a/id_01"]).tolist() == [0]
    assert "predict" not in vars(PerGroup)  # one predict, in the base
