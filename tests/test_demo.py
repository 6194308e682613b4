"""The demo: report folder safety (never over user files) and what it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from soundanomaly import load_model
from soundanomaly._safeio import MARKER, OutputExistsError
from soundanomaly.demo import EXTRA_DETECTORS, run_demo

TINY = {"ids": (0,), "n_normal": 10, "n_abnormal": 3, "duration": 2.0}


def _demo(out: Path, cache: Path, **options: object) -> object:
    return run_demo(out, epochs=1, cache_dir=cache, progress=False, synthetic_params=TINY, **options)  # type: ignore[arg-type]


def test_demo_rows_come_from_the_registry() -> None:
    """#21: the demo's extra detectors are the registry's ``demo=`` lines (one table), baseline first."""
    from soundanomaly import registry
    from soundanomaly.detectors import PerGroup
    from soundanomaly.features import LogMelFrames

    rows = registry.demo_detectors()
    assert [label for label, _ in EXTRA_DETECTORS] == [label for label, _, _ in rows]
    assert rows[0][1] == "GaussianDetector"
    features = LogMelFrames(n_mels=16)
    for (_, factory), (_, name, per_group) in zip(EXTRA_DETECTORS, rows, strict=True):
        detector = factory(features, 3)
        member = detector.detector if per_group else detector
        assert isinstance(detector, PerGroup) == per_group and type(member) is registry.get("detector", name)
        assert member.random_state == 3
    assert EXTRA_DETECTORS[0][1](features, 3).features is features  # shares the demo's log-mel features


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.md").write_text("my notes")
    with pytest.raises(OutputExistsError, match=r"notes\.md"):
        _demo(notes, tmp_path / "cache")
    assert (notes / "notes.md").read_text() == "my notes"
    assert sorted(p.name for p in notes.iterdir()) == ["notes.md"]
    assert not (tmp_path / "cache").exists()  # refused before any work
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".notes.")]  # no stray temporaries


def test_demo_never_writes_over_its_data(tmp_path: Path, tiny_root: Path) -> None:
    with pytest.raises(OutputExistsError, match="input"):
        run_demo(tiny_root, data=tiny_root, epochs=1, progress=False, cache_dir=tmp_path / "cache", overwrite=True)
    with pytest.raises(OutputExistsError, match="input"):
        run_demo(tiny_root.parent, data=tiny_root, epochs=1, progress=False, cache_dir=tmp_path, overwrite=True)
    assert any(tiny_root.rglob("*.wav"))


@pytest.mark.tf
def test_demo_writes_a_complete_report_and_replaces_only_its_own(tmp_path: Path) -> None:
    out, cache = tmp_path / "report", tmp_path / "cache"
    result = _demo(out, cache)
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "report.md", "metrics.json", "scores.csv", "roc.png", "model", MARKER} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["autoencoder"]["positive_class"] == "anomaly"
    assert set(metrics["extra_detectors"]) == {label for label, _ in EXTRA_DETECTORS}
    assert metrics["parameters"]["epochs"] == 1
    # the model inside loads and labels like the report says
    model = load_model(out / "model")
    with (out / "scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["split"]["test"]
    assert all(int(row["predicted"]) == int(float(row["score"]) > model.threshold_) for row in rows)
    assert result.out == out  # type: ignore[attr-defined]
    # a second run replaces the report it wrote itself (no --force needed) and leaves no temporaries
    _demo(out, cache)
    assert (out / "index.html").is_file()
    # a file the user added to the report folder is never deleted silently (#23): refused, unless overwrite
    (out / "mine.txt").write_text("my notes on this run")
    with pytest.raises(OutputExistsError, match=r"mine\.txt"):
        _demo(out, cache)
    assert (out / "mine.txt").read_text() == "my notes on this run"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
