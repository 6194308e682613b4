"""One clip the model cannot score is reported, the rest are scored (issue #23).

On c91f061 a per-id model aborted the whole ``score``/``evaluate`` (exit 2,
nothing written, even with ``--skip-errors``) on one clip of an unseen id or
without an id.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.cli import main


@pytest.fixture(scope="module")
def per_id(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("per-id") / "P"
    argv = ["train", str(tiny_root), "--out", str(out), "--detector", "gaussian", "--per-id", "--ids", "0", "-q"]
    assert main(argv) == 0
    return out


def test_score_reports_clips_of_unknown_groups_and_scores_the_rest(
    per_id: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = sorted((tiny_root / "6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))[0]
    unseen = sorted((tiny_root / "6_dB_fan" / "fan" / "id_02" / "normal").glob("*.wav"))[0]
    no_id = tmp_path / "no_id.wav"
    shutil.copy(known, no_id)
    csv = tmp_path / "scores.csv"
    assert main(["score", str(per_id), str(known), str(unseen), str(no_id), "--csv", str(csv), "-q"]) == 1
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [str(known), str(unseen), str(no_id)]
    assert np.isfinite(float(rows[0][1])) and rows[0][3] == "ok"
    assert rows[1][1] == "" and rows[1][2] == "anomaly" and "no model for group fan/id_02" in rows[1][4]
    assert rows[2][1] == "" and rows[2][2] == "anomaly" and "cannot tell its group" in rows[2][4]
    err = capsys.readouterr().err
    assert "fan/id_02" in err and "no_id.wav" in err


def test_evaluate_leaves_out_clips_of_unknown_groups(
    per_id: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(per_id), str(tiny_root), "-q"]) == 1
    out = capsys.readouterr().out
    assert "| fan id_00" in out and "left out of the metrics" in out


def test_the_api_marks_them_skipped(per_id: Path, tiny_root: Path) -> None:
    from soundanomaly.detectors import load_model

    model = load_model(per_id)
    paths = [str(p) for p in sorted(tiny_root.rglob("*.wav"))]
    records = model.score_records(paths)
    assert {r.status for r in records if "id_02" in r.path} == {"skipped"}
    assert all(r.status == "ok" for r in records if "id_00" in r.path)
    assert all(r.label == 1 and np.isnan(r.score) for r in records if r.status != "ok")
