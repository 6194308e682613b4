"""Shift-robust detectors (#22): per-domain k-NN banks, selective Mahalanobis, TWFR-GMM; the TWFR extractor.

Tiny seeded data: a "source" domain of 60 clips and a "target" domain of 10 clips far from it (another
operating point), and anomalies that are off both. Assertions use wide margins on AUCs and rates.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets.synthetic import generate_clip
from soundanomaly.detectors import (
    BaseDetector,
    ClipStatsDetector,
    DomainKNNDetector,
    SelectiveMahalanobisDetector,
    TWFRGMMDetector,
    load_model,
)
from soundanomaly.detectors.domain_knn import MemoryBanks
from soundanomaly.evaluation import roc_auc
from soundanomaly.exceptions import ModelFormatError, ParameterError
from soundanomaly.features import ClipFeatures, TimeWeightedFrequency, gwrp

pytestmark = pytest.mark.filterwarnings("ignore::soundanomaly.exceptions.CalibrationWarning")  # few held-out clips

D = 12
SHIFT = np.r_[np.full(D // 2, 4.0), np.zeros(D - D // 2)]  # the target domain's offset
FAULT = np.r_[np.zeros(D // 2), np.full(D - D // 2, 4.0)]  # anomalies move another way
TARGET_SPREAD = 2.0  # the target domain is also noisier (another background)

FACTORIES: list[Callable[[], BaseDetector]] = [
    lambda: DomainKNNDetector(),
    lambda: SelectiveMahalanobisDetector(),
    lambda: TWFRGMMDetector(min_clips=20),
]
IDS = ["domain-knn", "selective-mahalanobis", "twfr-gmm"]


def _clips(rng: np.random.Generator, n: int, offset: np.ndarray, spread: float = 1.0) -> list[np.ndarray]:
    return [(rng.normal(0.0, spread, (1, D)) + offset).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def data() -> dict[str, ClipFeatures | np.ndarray]:
    rng = np.random.default_rng(22)
    source, target = _clips(rng, 60, 0 * SHIFT), _clips(rng, 10, SHIFT, TARGET_SPREAD)
    test_normal = _clips(rng, 30, 0 * SHIFT) + _clips(rng, 30, SHIFT, TARGET_SPREAD)
    test_abnormal = _clips(rng, 30, FAULT) + _clips(rng, 30, SHIFT + FAULT, TARGET_SPREAD)
    return {
        "train": ClipFeatures.from_arrays(source + target),
        "sessions": np.array(["source"] * 60 + ["target"] * 10),
        "source": ClipFeatures.from_arrays(source),
        "target": ClipFeatures.from_arrays(target),
        "test": ClipFeatures.from_arrays(test_normal + test_abnormal),
        "labels": np.r_[np.zeros(60), np.ones(60)].astype(np.int8),
        "target_normal": ClipFeatures.from_arrays(test_normal[30:]),
    }


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_domains_rank_anomalies_and_keep_target_normals_below_threshold(factory, data):
    detector = factory().fit(data["train"], sessions=data["sessions"])
    assert sorted(detector.sessions_) == ["source", "target"]
    scores = detector.score(data["test"])
    assert scores.shape == (120,) and np.isfinite(scores).all()
    assert roc_auc(data["labels"], scores) >= 0.9
    target_normal_auc = roc_auc(data["labels"][30:], scores[30:])  # target normals against every anomaly
    assert target_normal_auc >= 0.85
    if isinstance(detector, DomainKNNDetector):  # only the k-NN scores are standardised per domain
        assert detector.predict(data["target_normal"]).mean() <= 0.2


def test_one_pooled_knn_flags_target_normals_where_the_banks_do_not(data):
    """The point of the banks: one k-NN on the pooled clips calls most new target normals anomalous."""
    pooled = ClipStatsDetector(scaling="std", n_neighbors=3).fit(data["train"])
    banks = DomainKNNDetector().fit(data["train"], sessions=data["sessions"])
    pooled_alarms = pooled.predict(data["target_normal"]).mean()
    banks_alarms = banks.predict(data["target_normal"]).mean()
    assert banks_alarms <= 0.05 and pooled_alarms >= 0.1


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_without_sessions_one_model(factory, data):
    detector = factory().fit(data["source"])
    assert detector.sessions_ == ["all"]
    assert np.isfinite(detector.score(data["test"])).all()


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_adapt_adds_a_domain_without_retraining(factory, data):
    detector = factory().fit(data["source"], sessions=["source"] * 60)
    before = detector.score(data["target_normal"])
    source_before = detector.score(data["source"])
    detector.adapt(data["target"], sessions=["target"] * 10)
    assert sorted(detector.sessions_) == ["source", "target"]
    after = detector.score(data["target_normal"])
    assert np.median(after) < np.median(before)
    assert detector.predict(data["target_normal"]).mean() < (before > detector.threshold_).mean()
    # the source model is untouched: a source clip never scores worse than before (min over domains)
    assert (detector.score(data["source"]) <= source_before + 1e-9).all()


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_save_load_roundtrip_after_adapt(factory, data, tmp_path: Path):
    detector = factory().fit(data["source"], sessions=["source"] * 60)
    detector.adapt(data["target"], sessions=["target"] * 10)
    path = detector.save(tmp_path / "model")
    loaded = load_model(path)
    assert type(loaded) is type(detector) and loaded.sessions_ == detector.sessions_
    np.testing.assert_allclose(loaded.score(data["test"]), detector.score(data["test"]), rtol=1e-9)
    assert loaded.threshold_ == detector.threshold_


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_load_refuses_a_manifest_naming_more_sessions_than_the_state_holds(factory, data, tmp_path: Path):
    path = factory().fit(data["train"], sessions=data["sessions"]).save(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["extra"]["sessions"].append("ghost")
    if "components" in manifest["extra"]:
        manifest["extra"]["components"].append(1)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError):
        load_model(path)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (DomainKNNDetector, {"n_neighbors": 0}),
        (DomainKNNDetector, {"scaling": "minmax"}),
        (DomainKNNDetector, {"metric": "manhattan"}),
        (SelectiveMahalanobisDetector, {"prior_strength": -1.0}),
        (SelectiveMahalanobisDetector, {"prior_strength": float("nan")}),
        (SelectiveMahalanobisDetector, {"scaling": None}),
        (TWFRGMMDetector, {"n_components": 0}),
        (TWFRGMMDetector, {"n_components": 1000}),
        (TWFRGMMDetector, {"reg_covar": 0.0}),
        (TWFRGMMDetector, {"min_clips": 1}),
        (TWFRGMMDetector, {"seed": 1.5}),
    ],
)
def test_bad_parameters_name_themselves(cls, params):
    with pytest.raises(ParameterError, match=next(iter(params))):
        cls(**params)


def test_knn_training_scores_leave_each_clip_out_of_its_bank(data):
    detector = DomainKNNDetector(threshold=10.0).fit(data["train"], sessions=data["sessions"])
    # leave-one-out z-scores: each bank's members average 0 against their own bank (min over banks <= that)
    assert abs(float(np.mean(detector.train_scores_))) < 0.5
    assert detector.train_scores_.min() < 0 < detector.train_scores_.max()


def test_memory_banks_small_bank_borrows_statistics():
    rng = np.random.default_rng(0)
    banks = MemoryBanks(n_neighbors=1).fit(rng.normal(size=(30, 3)), ["a"] * 30)
    banks.add(rng.normal(5, 1, size=(2, 3)), ["b", "b"])
    np.testing.assert_allclose(banks.stats[1], banks.stats[0])
    with pytest.raises(ParameterError, match="values"):
        banks.add(rng.normal(size=(2, 4)), ["c", "c"])


def test_gwrp_spans_mean_to_max():
    values = np.array([[1.0, 4.0, 2.0, 3.0]])
    np.testing.assert_allclose(gwrp(values, 1.0), [2.5])
    np.testing.assert_allclose(gwrp(values, 0.0), [4.0])
    middle = float(gwrp(values, 0.7)[0])
    assert 2.5 < middle < 4.0
    with pytest.raises(ParameterError, match="decay"):
        gwrp(values, 1.5)


def test_twfr_is_loudness_independent_and_sees_a_fault():
    extractor = TimeWeightedFrequency()
    normal = generate_clip(0, duration=1.0, seed=3)
    quiet = extractor.transform(normal * 0.1, 16000)
    np.testing.assert_allclose(quiet, extractor.transform(normal, 16000), atol=1e-3)
    assert quiet.shape == (1, 128) and quiet.dtype == np.float32
    faulty = extractor.transform(generate_clip(0, anomaly="clogging", severity=1.0, duration=1.0, seed=3), 16000)
    other = extractor.transform(generate_clip(0, duration=1.0, seed=3, clip_index=1), 16000)
    assert np.abs(faulty - quiet).mean() > 2 * np.abs(other - quiet).mean()
    with pytest.raises(ParameterError, match="decay"):
        TimeWeightedFrequency(decay=-0.1)


def test_twfr_gmm_end_to_end_on_files(tmp_path: Path):
    import soundfile as sf

    paths = []
    for i in range(12):
        path = tmp_path / f"n{i}.wav"
        sf.write(path, generate_clip(0, duration=1.0, seed=5, clip_index=i), 16000)
        paths.append(str(path))
    bad = tmp_path / "bad.wav"
    sf.write(bad, generate_clip(0, anomaly="bearing_wear", severity=1.0, duration=1.0, seed=5), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = TWFRGMMDetector(min_clips=5).fit(paths[:10])
    scores = detector.score([*paths[10:], str(bad)])
    assert scores[2] > scores[:2].max()


@pytest.fixture(scope="module")
def shifted_fans(tmp_path_factory: pytest.TempPathFactory):
    """A tiny DCASE-layout shift set (datasets.shift): one section, the target runs at another speed."""
    from soundanomaly.datasets import open_dataset
    from soundanomaly.datasets.shift import write_shift_dataset

    root = write_shift_dataset(
        tmp_path_factory.mktemp("shift") / "data",
        sections=[0],
        shifts=["operating_point"],
        n_source=40,
        n_target=10,
        n_test=12,
        severity=0.8,
        duration=1.0,
        seed=5,
    )
    clips = open_dataset(root)
    return clips.filter(split="train"), clips.filter(split="test")


@pytest.mark.parametrize("factory", FACTORIES, ids=IDS)
def test_on_the_synthetic_shift_set_files_to_scores(factory, shifted_fans):
    train, test = shifted_fans
    detector = factory().fit(train)  # sessions: the ClipSet's DCASE domains
    assert sorted(detector.sessions_) == ["fan/section_00/source", "fan/section_00/target"]
    scores = detector.score(test)
    domains = np.array([r.domain for r in test])
    for domain in ("source", "target"):  # DCASE: a domain's normal clips against every anomaly
        keep = (domains == domain) | (test.labels == 1)
        assert roc_auc(test.labels[keep], scores[keep]) >= 0.8
