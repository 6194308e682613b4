"""A model folder is data, never configuration of this machine (issue #23, with #21's run-option split).

On c91f061 a manifest's ``"cache_dir": "/any/path"`` made ``score`` write
feature files there (and trust what it found), ``"n_jobs": 16`` started 16
processes, and feature parameters were used unbounded (``n_fft`` 2**27 ran the
machine out of memory).
"""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.detectors import GaussianDetector, load_model
from soundanomaly.exceptions import ModelFormatError


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list[str]]:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(4):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, rng.normal(0, 0.1, 16000), 16000)
        clips.append(str(path))
    model = tmp_path / "M"
    GaussianDetector(threshold=5.0).fit(clips[:3]).save(model)
    return model, clips


def _edit(model: Path, section: str, key: str, value: object) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest[section][key] = value
    (model / "manifest.json").write_text(json.dumps(manifest))


def test_a_saved_cache_dir_is_never_used(saved: tuple[Path, list[str]], tmp_path: Path) -> None:
    model, clips = saved
    elsewhere = tmp_path / "planted-cache"
    _edit(model, "params", "cache_dir", str(elsewhere))
    try:
        detector = load_model(model)
    except ModelFormatError:
        return  # refusing the folder is as good as ignoring the key
    detector.score(clips)
    assert not elsewhere.exists()


def test_a_saved_n_jobs_starts_no_process(saved: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    model, clips = saved
    _edit(model, "params", "n_jobs", 16)

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process pool was started because the model said so")

    monkeypatch.setattr(futures, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr("soundanomaly.features.base.ProcessPoolExecutor", no_pool, raising=False)
    try:
        detector = load_model(model)
    except ModelFormatError:
        return
    assert np.isfinite(detector.score(clips)).all()


@pytest.mark.parametrize(("key", "value"), [("n_fft", 2**27), ("n_mels", 100_000), ("hop_length", 1), ("n_fft", -1)])
def test_saved_feature_parameters_are_bounded_at_load(saved: tuple[Path, list[str]], key: str, value: int) -> None:
    model, _ = saved
    _edit(model, "features", key, value)
    with pytest.raises(ModelFormatError, match=key):
        load_model(model)
