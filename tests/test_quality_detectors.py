"""Detectors for noisy conditions (issue 14): clip statistics, machine-id classifier, per-group models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets import MIMII, synthetic
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.clipstats import ClipStatistics, ClipStatsDetector, ledoit_wolf
from soundanomaly.detectors.gaussian import GaussianDetector
from soundanomaly.detectors.machine_id import MachineIdDetector
from soundanomaly.detectors.pergroup import PerGroup, clip_groups, group_of_path
from soundanomaly.evaluation import roc_auc
from soundanomaly.exceptions import AudioError, ModelFormatError, ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.features.multichannel import MultiChannel


@pytest.fixture(scope="module")
def fans(tmp_path_factory: pytest.TempPathFactory) -> MIMII:
    """Two fan ids at 6 dB: 14 normal and 4 clearly faulty 2 s clips each."""
    root = tmp_path_factory.mktemp("fans")
    synthetic.write_dataset(
        root, ids=[0, 2], n_normal=14, n_abnormal=4, snr=6, severity=0.8, duration=2.0,
        anomaly_types=("imbalance", "voltage_change"),
    )  # fmt: skip
    return MIMII(root)


def _split(clips: MIMII) -> tuple[object, object]:
    normal = clips.filter(label="normal")
    train_idx = [i for i, r in enumerate(normal) if int(r.path[-8:-4]) < 10]
    test_idx = [i for i, r in enumerate(normal) if int(r.path[-8:-4]) >= 10]
    test = normal.take(test_idx) + clips.filter(label="abnormal")
    return normal.take(train_idx), test


def _fit_quietly(detector: BaseDetector, data: object, **kwargs: object) -> BaseDetector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: calibration warnings are expected
        return detector.fit(data, **kwargs)  # type: ignore[arg-type]


def _clustered(n: int, ids: tuple[str, ...] = ("fan/id_00", "fan/id_02"), width: int = 6) -> ClipFeatures:
    rng = np.random.default_rng(1)
    clips = [rng.normal(3.0 * (i % len(ids)), 1.0, size=(8, width)).astype(np.float32) for i in range(n)]
    paths = [f"6_dB_fan/{ids[i % len(ids)]}/normal/{i:08d}.wav" for i in range(n)]
    return ClipFeatures.from_arrays(clips, paths=paths)


# -- clip statistics ---------------------------------------------------------------


def test_clip_statistics_shape_and_level_invariance() -> None:
    rng = np.random.default_rng(0)
    clip = rng.normal(size=20000).astype(np.float32)
    extractor = ClipStatistics(n_fft=2048, n_bands=64, n_mels=16)
    features = extractor.transform(clip, 16000)
    assert features.shape == (1, 64 + 32) and features.dtype == np.float32
    louder = extractor.transform(clip * 4, 16000)
    np.testing.assert_allclose(louder[0, :64], features[0, :64], atol=1e-3)  # the spectrum's shape, not level
    with pytest.raises(AudioError, match="too short"):
        extractor.transform(clip[:1000], 16000)
    with pytest.raises(ParameterError, match="n_bands"):
        ClipStatistics(n_bands=1)


def test_ledoit_wolf_is_well_conditioned_with_few_rows() -> None:
    x = np.random.default_rng(0).normal(size=(10, 40))
    cov, shrink = ledoit_wolf(x)
    assert 0.0 < shrink <= 1.0
    assert np.linalg.eigvalsh(cov).min() > 0


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_per_id_clipstats_separates_faults_on_an_easy_set(fans: MIMII, method: str) -> None:
    train, test = _split(fans)
    small = ClipStatistics(n_bands=256)  # the default 1024 bands work too; this keeps the test fast
    detector = _fit_quietly(PerGroup(ClipStatsDetector(method=method, features=small)), train)  # type: ignore[arg-type]
    scores = detector.score(test)  # type: ignore[arg-type]
    labels = test.labels  # type: ignore[attr-defined]
    groups = clip_groups(test)  # type: ignore[arg-type]
    for group in ("fan/id_00", "fan/id_02"):
        assert roc_auc(labels[groups == group], scores[groups == group]) >= 0.8


def test_knn_training_scores_leave_the_clip_itself_out() -> None:
    detector = ClipStatsDetector(method="knn", threshold=1.0).fit(_clustered(12))
    assert (detector.train_scores_ > 0).all()


def test_clipstats_save_load_round_trip(tmp_path: Path) -> None:
    train = _clustered(12)
    for method in ("knn", "mahalanobis"):
        for scaling in ("none", "std"):
            detector = ClipStatsDetector(method=method, scaling=scaling, threshold=1.0, aggregate="max").fit(train)
            loaded = BaseDetector.load(detector.save(tmp_path / f"{method}-{scaling}"))
            assert isinstance(loaded, ClipStatsDetector)
            assert (loaded.method, loaded.scaling, loaded.aggregate) == (method, scaling, "max")
            np.testing.assert_array_equal(loaded.score(train), detector.score(train))
    with pytest.raises(ParameterError, match="scaling"):
        ClipStatsDetector(scaling="minmax")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="method"):
        ClipStatsDetector(method="forest")  # type: ignore[arg-type]


# -- per-group models --------------------------------------------------------------


def test_group_keys_from_paths_and_records(fans: MIMII) -> None:
    assert group_of_path("x/-6_dB_fan/fan/id_06/abnormal/1.wav") == "fan/id_06"
    assert group_of_path("dev/fan/train/section_02_source_train_normal_0001.wav") == "fan/section_02"
    assert set(clip_groups(fans).tolist()) == {"fan/id_00", "fan/id_02"}
    assert clip_groups(fans.paths).tolist() == clip_groups(fans).tolist()
    with pytest.raises(ParameterError, match="groups="):
        clip_groups(["a.wav"])
    with pytest.raises(ParameterError, match="groups"):
        clip_groups(["a.wav", "b.wav"], groups=["x"])


def test_pergroup_routes_each_clip_to_its_own_model() -> None:
    train = _clustered(20)
    model = _fit_quietly(PerGroup(GaussianDetector()), train)
    assert isinstance(model, PerGroup)
    assert model.groups_ == ["fan/id_00", "fan/id_02"] and model.threshold_ == 0.0
    a, b = model.models_["fan/id_00"], model.models_["fan/id_02"]
    assert a is not b and not np.allclose(a.mean_, b.mean_)  # type: ignore[attr-defined]
    clip = ClipFeatures.from_arrays([train.clip(1)])  # an id_02 clip
    as_00 = model.score(clip, groups=["fan/id_00"])[0]
    as_02 = model.score(clip, groups=["fan/id_02"])[0]
    assert as_00 == pytest.approx(a.score(clip)[0] - a.threshold_)
    assert as_02 == pytest.approx(b.score(clip)[0] - b.threshold_)
    assert as_00 > as_02  # id_02's sound is anomalous for id_00's model
    np.testing.assert_array_equal(model.predict(clip, groups=["fan/id_00"]), [1])
    with pytest.raises(ParameterError, match="no model for group"):
        model.score(clip, groups=["pump/id_00"])


def test_pergroup_save_load_round_trip_is_one_folder_with_identical_scores(tmp_path: Path, fans: MIMII) -> None:
    train, test = _split(fans)
    model = _fit_quietly(PerGroup(ClipStatsDetector()), train)
    path = model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == ["manifest.json", "state.npz"]
    loaded = BaseDetector.load(path)
    assert isinstance(loaded, PerGroup) and loaded.groups_ == model.groups_  # type: ignore[attr-defined]
    for group in model.groups_:  # type: ignore[attr-defined]
        assert loaded.models_[group].threshold_ == model.models_[group].threshold_  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.score(test), model.score(test))  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))  # type: ignore[arg-type]
    refit = _fit_quietly(PerGroup(loaded.detector), train)
    np.testing.assert_allclose(refit.score(test), model.score(test))  # type: ignore[arg-type]


def _tampered(path: Path, original: str, change: object) -> None:
    manifest = json.loads(original)
    change(manifest)  # type: ignore[operator]
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["extra"]["models"][0].update(endpoint="http://example.invalid"), "unknown key"),
        (lambda m: m["extra"]["models"][1].update(group=m["extra"]["models"][0]["group"]), "once per group"),
        (lambda m: m["extra"]["models"][0].update(threshold=float("inf")), "finite"),
        (lambda m: m["extra"]["models"][0].update(detector="PerGroup"), "unknown detector"),
        (lambda m: m["extra"]["models"][0]["params"].update(shell="rm -rf /"), "not GaussianDetector's"),
        (lambda m: m["extra"].update(models=m["extra"]["models"] * 600), "1 to 1024"),
        (lambda m: m["extra"].update(models=[]), "1 to 1024"),
        (lambda m: m["extra"].pop("group_by"), "'group_by' and 'models'"),
    ],
    ids=["unknown-key", "duplicate-group", "infinite-threshold", "nested", "stray-param", "too-many", "none", "keys"],
)
def test_pergroup_load_rejects_a_tampered_manifest(tmp_path: Path, change: object, match: str) -> None:
    """A saved PerGroup is data: its group entries are checked as strictly as an Ensemble's members."""
    path = _fit_quietly(PerGroup(GaussianDetector()), _clustered(20)).save(tmp_path / "model")
    _tampered(path, (path / "manifest.json").read_text(), change)
    with pytest.raises(ModelFormatError, match=match):
        BaseDetector.load(path)


def test_pergroup_load_rejects_stray_or_misshapen_state(tmp_path: Path) -> None:
    model = _fit_quietly(PerGroup(GaussianDetector()), _clustered(20))
    path = model.save(tmp_path / "model")
    with np.load(path / "state.npz") as archive:
        state = dict(archive)
    np.savez(path / "state.npz", **state, g7__stray=np.zeros(3))
    with pytest.raises(ModelFormatError, match="g7__stray"):
        BaseDetector.load(path)
    np.savez(path / "state.npz", **{**state, "g0__mean_": np.zeros(5)})
    with pytest.raises(ModelFormatError, match="mean_"):
        BaseDetector.load(path)
    np.savez(path / "state.npz", **state)
    loaded = BaseDetector.load(path)
    np.testing.assert_array_equal(loaded.score(_clustered(4)), model.score(_clustered(4)))


def test_pergroup_calibrates_each_group_on_its_own_clips() -> None:
    train = _clustered(20)
    model = _fit_quietly(PerGroup(GaussianDetector()), train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrations = model.calibrate_groups(train)  # type: ignore[attr-defined]
    assert sorted(calibrations) == ["fan/id_00", "fan/id_02"]
    for group, calibration in calibrations.items():
        assert model.models_[group].threshold_ == calibration.threshold  # type: ignore[attr-defined]


def test_pergroup_rejects_bad_templates() -> None:
    with pytest.raises(ParameterError, match="detector"):
        PerGroup("gaussian")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="PerGroup"):
        PerGroup(PerGroup(GaussianDetector()))
    with pytest.raises(ParameterError, match="needs a detector"):
        PerGroup().fit(_clustered(8))


# -- machine-id classifier -----------------------------------------------------------


def test_machine_id_scores_the_true_id_and_round_trips(tmp_path: Path) -> None:
    train = _clustered(16)
    detector = _fit_quietly(MachineIdDetector(epochs=15, hidden=(16,)), train)
    assert isinstance(detector, MachineIdDetector)
    assert detector.classes_ == ["fan/id_00", "fan/id_02"]
    clip = ClipFeatures.from_arrays([train.clip(1)])  # an id_02 clip
    assert detector.score(clip, groups=["fan/id_00"])[0] > detector.score(clip, groups=["fan/id_02"])[0] + 1.0
    assert len(detector.holdout_scores_) >= 2  # its own hold-out, scored against the true ids
    loaded = BaseDetector.load(detector.save(tmp_path / "mid"))
    np.testing.assert_array_equal(loaded.score(train), detector.score(train))
    with pytest.raises(ParameterError, match="not seen in fit"):
        detector.score(clip, groups=["pump/id_00"])


def test_machine_id_needs_two_ids_and_known_ids() -> None:
    one = _clustered(6, ids=("fan/id_00",))
    with pytest.raises(ParameterError, match="at least 2"):
        _fit_quietly(MachineIdDetector(epochs=1), one)
    anonymous = ClipFeatures.from_arrays(list(_clustered(6)))
    with pytest.raises(ParameterError, match="machine id"):
        _fit_quietly(MachineIdDetector(epochs=1), anonymous)


def test_machine_id_on_files_uses_the_ids_of_the_paths(fans: MIMII) -> None:
    train, test = _split(fans)
    detector = _fit_quietly(MachineIdDetector(epochs=2, hidden=(8,)), train)
    assert detector.classes_ == ["fan/id_00", "fan/id_02"]  # type: ignore[attr-defined]
    assert np.isfinite(detector.score(test)).all()  # type: ignore[arg-type]


# -- all microphones -----------------------------------------------------------------


def test_multichannel_features_work_with_any_detector_and_reload(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "array", ids=[0], n_normal=6, n_abnormal=0, duration=1.0, n_mics=4)
    clips = MIMII(root)
    features = MultiChannel(LogMelFrames(), strategy="per_channel")
    detector = GaussianDetector(features=features, channel=None, threshold=5.0).fit(clips)
    assert detector.n_features_in_ == 320
    loaded = BaseDetector.load(detector.save(tmp_path / "model"))
    assert isinstance(loaded.features, MultiChannel) and loaded.features.strategy == "per_channel"
    np.testing.assert_allclose(loaded.score(clips), detector.score(clips))
