"""Detector behaviour: held-out calibration, inputs, errors, persistence round trips."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import MIMII
from soundanomaly.detectors import (
    DEFAULT_TARGET_FPR,
    AutoencoderDetector,
    BaseDetector,
    GaussianDetector,
    find_training_clips,
    load_model,
)
from soundanomaly.detectors.options import RunOptions
from soundanomaly.exceptions import (
    AudioError,
    CalibrationWarning,
    InvalidScoreError,
    InvalidScoreWarning,
    ModelFormatError,
    NotFittedError,
    ParameterError,
)
from soundanomaly.features import ClipFeatures, LogMelFrames

FACTORIES: dict[str, Callable[[], BaseDetector]] = {
    "gaussian": lambda: GaussianDetector(),
    "autoencoder": lambda: AutoencoderDetector(epochs=30, batch_size=64, learning_rate=3e-3, seed=0),
}
PARAMS = [
    pytest.param("gaussian", id="gaussian"),
    pytest.param("autoencoder", id="autoencoder", marks=pytest.mark.tf),
]


def quiet_fit(detector: BaseDetector, data: object, **kwargs: object) -> BaseDetector:
    """Fit on tiny data: the too-few-clips calibration warning is expected there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        return detector.fit(data, **kwargs)  # type: ignore[arg-type]


def gaussian_clips(n_clips: int, *, seed: int, windows: int = 4, dims: int = 24, shift: float = 0.0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    return ClipFeatures.from_arrays(
        [rng.normal(shift, 1.0, size=(windows, dims)).astype(np.float32) for _ in range(n_clips)]
    )


@pytest.fixture(scope="module")
def tiny_features(tiny: MIMII) -> dict[str, ClipFeatures]:
    extractor = LogMelFrames()
    return {
        "normal": extractor.extract(tiny.filter(label="normal").paths, progress=False),
        "abnormal": extractor.extract(tiny.filter(label="abnormal").paths, progress=False),
    }


@pytest.fixture(scope="module")
def fitted(tiny_features: dict[str, ClipFeatures]) -> dict[str, BaseDetector]:
    return {name: quiet_fit(factory(), tiny_features["normal"]) for name, factory in FACTORIES.items()}


# -- #13.1: the default threshold is calibrated on held-out normal clips ------------------------------------------
def test_default_threshold_holds_its_false_alarm_rate_on_unseen_normal_clips() -> None:
    # one window per clip and many features: the Gaussian fits its own training clips closely, so a threshold
    # taken from training scores (the old default) flags far more than 1 % of new normal clips (~25 % here;
    # 78-100 % on real data)
    normal, unseen = gaussian_clips(600, seed=0, windows=1, dims=100), gaussian_clips(3000, seed=1, windows=1, dims=100)
    detector = GaussianDetector().fit(normal)
    assert len(detector.holdout_scores_) == 120 and len(detector.train_scores_) == 480
    assert detector.calibration_ is not None and detector.calibration_.source == "holdout"
    false_alarms = float(detector.predict(unseen).mean())
    assert false_alarms <= 3.5 * DEFAULT_TARGET_FPR  # target 1 %; 120 held-out clips resolve it within noise
    in_sample = GaussianDetector(holdout=0).fit(normal)
    assert in_sample.calibration_ is not None and in_sample.calibration_.source == "training"
    assert float(in_sample.predict(unseen).mean()) >= 0.1


@pytest.mark.tf
def test_autoencoder_default_threshold_holds_its_false_alarm_rate() -> None:
    rng = np.random.default_rng(0)
    profile = np.linspace(-1, 1, 64)

    def clips(n: int) -> ClipFeatures:
        return ClipFeatures.from_arrays([(profile + rng.normal(size=(1, 64))).astype(np.float32) for _ in range(n)])

    detector = AutoencoderDetector(hidden=(32, 8, 32), epochs=5, batch_size=64).fit(clips(600))
    assert len(detector.holdout_scores_) == 120
    assert float(detector.predict(clips(3000)).mean()) <= 3.5 * DEFAULT_TARGET_FPR


def test_holdout_is_seeded_whole_clips_and_recorded() -> None:
    normal = gaussian_clips(20, seed=3)
    a = quiet_fit(GaussianDetector(random_state=5), normal)
    b = quiet_fit(GaussianDetector(random_state=5), normal)
    np.testing.assert_array_equal(a.holdout_scores_, b.holdout_scores_)
    assert len(a.holdout_scores_) == 4 and len(a.train_scores_) == 16
    assert a.calibration_ is not None and a.calibration_.n_normal == 4
    fixed = GaussianDetector(threshold=2.0).fit(normal)  # a fixed threshold: nothing held out
    assert fixed.threshold_ == 2.0 and len(fixed.train_scores_) == 20 and fixed.calibration_ is None


def test_too_few_clips_to_hold_out_warns() -> None:
    with pytest.warns(CalibrationWarning) as caught:
        detector = GaussianDetector().fit(gaussian_clips(3, seed=0))
    assert "too few clips (3)" in str(caught[0].message) and "3 normal clip(s)" in str(caught[1].message)
    assert detector.calibration_ is not None and detector.calibration_.source == "training"


# -- contract on real (synthetic) clips ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PARAMS)
def test_fitted_detector_scores_and_labels(
    name: str, fitted: dict[str, BaseDetector], tiny_features: dict[str, ClipFeatures]
) -> None:
    detector = fitted[name]
    scores = detector.score(tiny_features["abnormal"])
    assert scores.shape == (len(tiny_features["abnormal"]),) and scores.dtype == np.float64
    np.testing.assert_array_equal(detector.predict(tiny_features["abnormal"]), scores > detector.threshold_)
    # the threshold came from held-out clips: at most 1 % of them are flagged
    assert np.mean(detector.holdout_scores_ > detector.threshold_) <= 0.01


@pytest.mark.parametrize("name", PARAMS)
def test_not_fitted(name: str, tiny_features: dict[str, ClipFeatures]) -> None:
    detector = FACTORIES[name]()
    for method in (detector.score, detector.predict, detector.decision_function):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(tiny_features["normal"])
    with pytest.raises(NotFittedError):
        detector.save("nowhere")


@pytest.mark.parametrize("name", PARAMS)
def test_inputs_paths_clipset_features_agree(name: str, fitted: dict[str, BaseDetector], tiny: MIMII) -> None:
    detector = fitted[name]
    clips = tiny.filter(ids=2)
    from_clips = detector.score(clips)
    np.testing.assert_allclose(detector.score(clips.paths), from_clips)
    np.testing.assert_allclose(detector.score([Path(p) for p in clips.paths]), from_clips)
    np.testing.assert_allclose(detector.score(LogMelFrames().extract(clips.paths, progress=False)), from_clips)
    detector.chunk_size = 3  # streaming in chunks gives the same scores
    try:
        np.testing.assert_allclose(detector.score(clips), from_clips)
    finally:
        detector.chunk_size = 64


def test_bad_inputs(fitted: dict[str, BaseDetector], tiny: MIMII) -> None:
    detector = fitted["gaussian"]
    with pytest.raises(ParameterError, match="not a single path"):
        detector.score(tiny.paths[0])
    with pytest.raises(ParameterError, match="fitted on 320"):
        detector.score(ClipFeatures.from_arrays([np.zeros((3, 10), np.float32)]))
    with pytest.raises(ParameterError, match="data is empty"):
        detector.score([])
    arrays = [np.zeros((3, 320), np.float32)] * 3
    for data in (arrays, np.zeros((3, 320))):
        for method in (detector.score, GaussianDetector().fit):
            with pytest.raises(ParameterError, match=r"ClipFeatures\.from_arrays"):
                method(data)  # type: ignore[operator]
    with pytest.raises(ParameterError, match="clip paths"):
        detector.score([1, 2])  # type: ignore[list-item]


def test_labelled_clipset_trains_unsupervised_on_its_normal_clips(tiny: MIMII) -> None:
    clips = tiny.filter(ids=0)
    with pytest.warns(UserWarning, match="normal sound only: using the 8 normal clip"):
        detector = quiet_fit(GaussianDetector(), clips)
    assert len(detector.train_scores_) + len(detector.holdout_scores_) == 8
    assert sorted(p for p, _ in detector.training_clips_) == sorted(clips.filter(label="normal").paths)


def test_fit_groups_come_from_the_clipset_after_the_split(tiny: MIMII) -> None:
    seen: dict[str, object] = {}

    class Recorder(GaussianDetector):
        def _fit(self, features: ClipFeatures, labels: object = None) -> None:
            seen["groups"], seen["n"] = self._fit_groups, len(features)
            super()._fit(features)

    quiet_fit(Recorder(), tiny.filter(label="normal"))
    groups = seen["groups"]
    assert isinstance(groups, np.ndarray) and len(groups) == seen["n"] == 13  # 16 - 3 held out
    assert set(groups.tolist()) <= {"fan/id_00", "fan/id_02"}
    quiet_fit(Recorder(), tiny.filter(label="normal").paths)  # paths give the same keys as their records
    assert isinstance(seen["groups"], np.ndarray) and seen["groups"].tolist() == groups.tolist()
    quiet_fit(Recorder(), ClipFeatures.from_arrays([np.ones((4, 2), "f4") * i for i in range(6)]))
    assert seen["groups"] is None  # features without paths: unknown
    quiet_fit(Recorder(holdout=0), tiny.filter(label="normal").paths, groups=["g"] * 16)
    assert isinstance(seen["groups"], np.ndarray) and seen["groups"].tolist() == ["g"] * 16


def test_labels_are_validated(tiny_features: dict[str, ClipFeatures]) -> None:
    normal = tiny_features["normal"]
    with pytest.raises(ParameterError, match=r"got 256 at index 1"):
        GaussianDetector().fit(normal, labels=[0, 256] + [0] * (len(normal) - 2))
    with pytest.raises(ParameterError, match="labels"):
        GaussianDetector().fit(normal, labels=[0, 1])
    detector = GaussianDetector(threshold=1.0).fit(normal)
    with pytest.raises(ParameterError, match=r"1\.5"):
        detector.calibrate(normal, labels=[1.5] * len(normal))


# -- #11.5 / #11.6: fail closed, refuse degenerate data ----------------------------------------------------------------
def test_degenerate_training_data_is_refused() -> None:
    silent = ClipFeatures.from_arrays([np.full((10, 8), -100.0, np.float32)] * 6)
    with pytest.raises(ParameterError, match="barely vary"):
        GaussianDetector(threshold=1.0).fit(silent)
    one_window = ClipFeatures.from_arrays([np.ones((1, 8), np.float32)])
    nan = ClipFeatures.from_arrays([np.full((4, 8), np.nan, np.float32)] * 3)
    for detector in (GaussianDetector(threshold=1.0), AutoencoderDetector(threshold=1.0, epochs=1)):
        with pytest.raises(ParameterError, match="at least 2 feature windows"):
            detector.fit(one_window)
        with pytest.raises(ParameterError, match="NaN or infinite"):
            detector.fit(nan)


def test_non_finite_scores_never_count_as_normal() -> None:
    train = gaussian_clips(6, seed=0, dims=4)
    bad = ClipFeatures.from_arrays(
        [np.zeros((2, 4), np.float32), np.full((2, 4), np.inf, np.float32)], paths=["ok.wav", "loud.wav"]
    )
    with pytest.raises(InvalidScoreError, match=r"loud\.wav") as caught:
        GaussianDetector(threshold=1.0).fit(train).predict(bad)
    assert caught.value.paths == ("loud.wav",)
    skipping = GaussianDetector(threshold=1.0).set_run_options(on_error="skip").fit(train)
    with pytest.warns(InvalidScoreWarning):
        labels = skipping.predict(bad)
    assert labels.tolist() == [0, 1]
    assert skipping.last_status_ == ("ok", "invalid: non-finite score")


def test_unreadable_clips_raise_or_are_skipped_with_a_status(tiny: MIMII, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    paths = [*tiny.filter(label="normal", ids=0).paths[:2], str(broken)]
    detector = GaussianDetector(threshold=5.0).fit(tiny.filter(label="normal", ids=0).paths)
    with pytest.raises(AudioError, match=r"broken\.wav"):
        detector.score(paths)
    detector.set_run_options(on_error="skip", chunk_size=2)
    with pytest.warns(InvalidScoreWarning):
        scores, status = detector.score_with_status(paths)
    assert np.isfinite(scores[:2]).all() and np.isnan(scores[2])
    assert status[:2] == ("ok", "ok") and status[2].startswith("skipped: ")
    with pytest.warns(InvalidScoreWarning):
        assert detector.predict(paths)[2] == 1


# -- #14 aggregation, #12 progress, #8 extract options ------------------------------------------------------------------
def test_aggregate_is_validated_used_and_saved(tmp_path: Path) -> None:
    for bad in ("median", "percentile:101", "topk:0", "topk:1.5", 3):
        with pytest.raises(ParameterError, match="aggregate"):
            GaussianDetector(aggregate=bad)  # type: ignore[arg-type]
    train = gaussian_clips(8, seed=0, dims=4, windows=10)
    spiky = ClipFeatures.from_arrays([np.vstack([np.zeros((9, 4)), np.full((1, 4), 6.0)]).astype(np.float32)])
    mean = GaussianDetector(threshold=1.0).fit(train)
    worst = GaussianDetector(threshold=1.0, aggregate="max").fit(train)
    top = GaussianDetector(threshold=1.0, aggregate="percentile:95").fit(train)
    assert worst.score(spiky)[0] > top.score(spiky)[0] > mean.score(spiky)[0]
    loaded = load_model(worst.save(tmp_path / "m"))
    assert loaded.aggregate == "max"
    np.testing.assert_array_equal(loaded.score(spiky), worst.score(spiky))


def test_one_progress_bar_for_the_whole_run(tiny: MIMII, capfd: pytest.CaptureFixture[str]) -> None:
    clips = tiny.filter(label="normal", ids=0)
    detector = GaussianDetector(threshold=5.0).fit(clips.paths)
    capfd.readouterr()
    detector.score(clips.paths, options={"progress": True, "chunk_size": 3})
    err = capfd.readouterr().err
    assert err.count("scoring") == 1 and "8/8" in err and "features" not in err


def test_extract_options_reach_the_extractor(tiny: MIMII, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    clips = tiny.filter(label="normal", ids=0).paths[:4]
    detector = GaussianDetector(threshold=5.0).fit(clips, options=RunOptions(cache_dir=cache, n_jobs=1))
    assert len(list(cache.rglob("*.npy"))) == 4
    np.testing.assert_allclose(detector.score(clips), detector.score(LogMelFrames().extract(clips, progress=False)))
    with pytest.raises(ParameterError, match="n_jobs"):
        GaussianDetector().set_run_options(n_jobs=0)


# -- #13.13 training clips, #11.1/#11.2 saving ------------------------------------------------------------------------
def test_training_clips_are_recorded_and_found(tiny: MIMII, tmp_path: Path) -> None:
    normal = tiny.filter(label="normal", ids=0)
    detector = quiet_fit(GaussianDetector(), normal)
    manifest = json.loads((detector.save(tmp_path / "m") / "manifest.json").read_text())
    assert len(manifest["training_clips"]) == 8
    assert all(len(digest) == 32 for _, digest in manifest["training_clips"])
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(Path(normal.paths[0]).read_bytes())  # same content, other name: still a training clip
    others = tiny.filter(ids=2).paths
    found = find_training_clips(load_model(tmp_path / "m"), [*others, str(copy), normal.paths[3]])
    assert found == [str(copy), normal.paths[3]]


def test_save_never_replaces_foreign_data(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    detector = fitted["gaussian"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not written by soundanomaly"):
        detector.save(notes)
    assert (notes / "todo.md").read_text() == "mine"
    detector.save(notes, overwrite=True)
    assert load_model(notes).threshold_ == detector.threshold_
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "clip.wav", np.zeros(1600), 16000)
    for target in (data, tmp_path):
        with pytest.raises(FileExistsError, match="input"):
            detector.save(target, overwrite=True, inputs=[data / "clip.wav"])
    assert (data / "clip.wav").exists()
    model = detector.save(tmp_path / "model")
    detector.save(model)  # a model folder is replaced as a whole


def test_save_into_an_empty_working_directory(
    fitted: dict[str, BaseDetector], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    fitted["gaussian"].save(".")
    assert {"manifest.json", "state.npz"} <= set(os.listdir(here))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert load_model(".").threshold_ == fitted["gaussian"].threshold_


def test_load_recovers_a_save_killed_between_the_two_renames(
    fitted: dict[str, BaseDetector], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = fitted["gaussian"]
    target = detector.save(tmp_path / "model")
    real_replace = os.replace
    calls = []

    def killed(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after moving the old model aside
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        detector.save(target)
    monkeypatch.setattr(os, "replace", real_replace)
    # an interrupt between the renames finishes the swap (a process killed there: see test_safe_folders.py)
    assert target.is_dir() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    loaded = load_model(target)
    assert loaded.threshold_ == detector.threshold_


@pytest.mark.parametrize("name", PARAMS)
def test_save_load_round_trip(name: str, fitted: dict[str, BaseDetector], tiny: MIMII, tmp_path: Path) -> None:
    detector = fitted[name]
    target = detector.save(tmp_path / "model")
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["features"]["n_mels"] == 64
    assert manifest["detector"] == type(detector).__name__
    assert manifest["calibration"]["source"] == "holdout"
    loaded = load_model(target)
    assert type(loaded) is type(detector)
    assert loaded.threshold_ == detector.threshold_
    assert loaded.get_params() == detector.get_params() or name == "autoencoder"  # backend_options not trusted
    np.testing.assert_array_equal(loaded.holdout_scores_, detector.holdout_scores_)
    np.testing.assert_array_equal(loaded.score(tiny), detector.score(tiny))
    np.testing.assert_array_equal(type(detector).load(target).predict(tiny), detector.predict(tiny))


def test_save_is_atomic(fitted: dict[str, BaseDetector], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = fitted["gaussian"]
    target = detector.save(tmp_path / "model")
    before = (target / "manifest.json").read_text()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        detector.save(target)
    assert (target / "manifest.json").read_text() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no half-written leftovers


def test_load_errors(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    target = fitted["gaussian"].save(tmp_path / "model")
    with pytest.raises(ModelFormatError, match="trained on features"):
        GaussianDetector.load(target, features=LogMelFrames(n_mels=32))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["format_version"] = 99
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="newer than this soundanomaly supports"):
        load_model(target)
    with pytest.raises(ModelFormatError, match=r"no manifest\.json"):
        load_model(tmp_path)
    (target / "manifest.json").write_text("{")
    with pytest.raises(ModelFormatError, match="invalid JSON"):
        load_model(target)


def test_load_alias_is_deprecated(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    from soundanomaly.detectors import load

    target = fitted["gaussian"].save(tmp_path / "model")
    with pytest.deprecated_call():
        assert load(target).threshold_ == fitted["gaussian"].threshold_


@pytest.mark.tf
def test_load_wrong_class(fitted: dict[str, BaseDetector], tmp_path: Path) -> None:
    target = fitted["gaussian"].save(tmp_path / "model")
    with pytest.raises(ModelFormatError, match="not a AutoencoderDetector"):
        AutoencoderDetector.load(target)


def test_calibrate_sets_threshold(tiny: MIMII) -> None:
    detector = quiet_fit(GaussianDetector(), tiny.filter(label="normal", ids=0))
    result = detector.calibrate(tiny.filter(ids=2), calibrator=ThresholdCalibrator("min_errors"))
    assert detector.threshold_ == result.threshold
    assert detector.calibration_ is result and result.source == "calibrate"
    with pytest.warns(CalibrationWarning, match="8 normal clip"):
        detector.calibrate(tiny.filter(label="normal", ids=2))
    fixed = GaussianDetector(threshold=1.5).fit(tiny.filter(label="normal", ids=0))
    assert fixed.threshold_ == 1.5


def test_supervised_detectors_hold_out_stratified() -> None:
    seen: dict[str, object] = {}

    class Supervised(GaussianDetector):
        supervised = True

        def _fit(self, features: ClipFeatures, labels: object = None) -> None:
            seen["labels"] = labels
            super()._fit(features)

    data = ClipFeatures.from_arrays(list(gaussian_clips(20, seed=0, dims=4)) + list(gaussian_clips(10, seed=1, dims=4)))
    labels = [0] * 20 + [1] * 10
    detector = quiet_fit(Supervised(), data, labels=labels)
    assert isinstance(seen["labels"], np.ndarray) and seen["labels"].tolist().count(1) == 8
    assert detector.calibration_ is not None
    assert (detector.calibration_.n_normal, detector.calibration_.n_abnormal) == (4, 2)
    with pytest.raises(ParameterError, match="both normal"):
        Supervised().fit(data, labels=[0] * 30)
    with pytest.raises(ParameterError, match="supervised: pass labels"):
        Supervised().fit(data)


def test_fit_skips_unreadable_training_clips_on_request(tiny: MIMII, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    paths = [*tiny.filter(label="normal", ids=0).paths, str(broken)]
    with pytest.raises(AudioError, match=r"broken\.wav"):
        GaussianDetector(threshold=5.0).fit(paths)
    detector = GaussianDetector(threshold=5.0).fit(paths, options={"on_error": "skip"})
    assert [p for p, _ in detector.fit_skipped_] == [str(broken)]
    assert len(detector.training_clips_) == 8


def test_public_window_methods_match_clip_scoring_and_check_fitting() -> None:
    """#21: what streaming uses (score_windows, reduce_windows, check_is_fitted) is the detector's own scoring."""
    from soundanomaly.exceptions import NotFittedError

    rng = np.random.default_rng(5)
    clips = ClipFeatures.from_arrays([rng.normal(size=(6, 4)).astype("float32") for _ in range(40)])
    unfitted = GaussianDetector()
    with pytest.raises(NotFittedError):
        unfitted.check_is_fitted()
    with pytest.raises(NotFittedError):
        unfitted.score_windows(clips.windows)
    detector = GaussianDetector(aggregate="max", threshold=2.0).fit(clips)
    detector.check_is_fitted()
    per_window = detector.score_windows(clips.windows)
    assert per_window.shape == (len(clips.windows),)
    np.testing.assert_allclose(detector.reduce_windows(per_window, clips.offsets), detector.score(clips), rtol=1e-12)


def test_group_member_is_the_model_that_scores_a_group() -> None:
    """#21: ``group_member`` gives the monitor and export a PerGroup's model (score + offset = PerGroup's score)."""
    from soundanomaly.detectors import PerGroup

    rng = np.random.default_rng(6)
    clips = ClipFeatures.from_arrays([rng.normal(size=(6, 4)).astype("float32") for _ in range(60)])
    groups = ["fan/id_00", "fan/id_02"] * 30
    model = PerGroup(GaussianDetector(threshold=1.5)).fit(clips, groups=groups)
    member, offset, group = model.group_member("fan/id_02")
    assert group == "fan/id_02" and member is model.models_["fan/id_02"]
    np.testing.assert_allclose(
        member.score(clips) + offset, model.score(clips, groups=["fan/id_02"] * len(clips)), rtol=1e-12
    )
    with pytest.raises(ParameterError, match=r"one of \['fan/id_00', 'fan/id_02'\], not 'fan/id_04'"):
        model.group_member("fan/id_04")
    with pytest.raises(ParameterError, match="group="):
        model.group_member(None)  # two groups: name one
    leaf = GaussianDetector(threshold=1.5).fit(clips)
    assert leaf.group_member() == (leaf, 0.0, None)
    with pytest.raises(ParameterError, match="applies to a PerGroup model"):
        leaf.group_member("fan/id_00")
