"""The Ensemble detector: members fitted on the same clips, standardised scores combined, saved as one model."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pytest

from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.datasets import MIMII, ClipSet
from soundanomaly.detectors import ClipStatsDetector, Ensemble, GaussianDetector, PerGroup, load_model
from soundanomaly.detectors.clipstats import ClipStatistics
from soundanomaly.evaluation import roc_auc
from soundanomaly.exceptions import CalibrationWarning, ModelFormatError, NotFittedError, ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames

P = ParamSpec("P")
R = TypeVar("R")


def _members() -> list[GaussianDetector | ClipStatsDetector]:
    return [GaussianDetector(), ClipStatsDetector()]


def _quietly(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: calibration warnings are expected
        return call(*args, **kwargs)


@pytest.fixture(scope="module")
def split(tiny: MIMII) -> tuple[ClipSet, ClipSet]:
    """Train: the first 5 normal clips of each id; test: the other 3 normal and every abnormal clip."""
    normal = tiny.filter(label="normal")
    train_idx = [i for i, r in enumerate(normal) if int(r.path[-8:-4]) < 5]
    test_idx = [i for i, r in enumerate(normal) if int(r.path[-8:-4]) >= 5]
    return normal.take(train_idx), normal.take(test_idx) + tiny.filter(label="abnormal")


@pytest.fixture(scope="module")
def fitted(split: tuple[ClipSet, ClipSet]) -> Ensemble:
    train, _ = split
    return _quietly(Ensemble(_members()).fit, train)


def test_fit_score_predict(fitted: Ensemble, split: tuple[ClipSet, ClipSet]) -> None:
    train, test = split
    assert [type(m).__name__ for m in fitted.detectors_] == ["GaussianDetector", "ClipStatsDetector"]
    assert all(not hasattr(m, "threshold_") for m in fitted.detectors or [])  # templates stay unfitted
    assert fitted.centres_.shape == fitted.spreads_.shape == (2,)
    assert (fitted.spreads_ > 0).all()
    assert len(fitted.holdout_scores_) >= 2 and fitted.calibration_ is not None
    assert fitted.calibration_.source == "holdout"
    assert len(fitted.training_clips_) == len(train)
    scores = _quietly(fitted.score, test)
    labels = _quietly(fitted.predict, test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert labels.shape == (len(test),) and labels.dtype == np.int8
    assert np.isfinite(scores).all()
    assert roc_auc(test.labels, scores) >= 0.8
    assert fitted.last_status_ == ("ok",) * len(test)


def test_combine_mean_and_max(fitted: Ensemble, split: tuple[ClipSet, ClipSet]) -> None:
    _, test = split
    per_member = _quietly(fitted.member_scores, test)
    assert per_member.shape == (2, len(test))
    np.testing.assert_allclose(_quietly(fitted.score, test), per_member.mean(axis=0))
    as_max = Ensemble(fitted.detectors, combine="max")
    as_max.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})  # same fitted members
    np.testing.assert_allclose(_quietly(as_max.score, test), per_member.max(axis=0))


def test_save_load_round_trip(fitted: Ensemble, split: tuple[ClipSet, ClipSet], tmp_path: Path) -> None:
    _, test = split
    path = fitted.save(tmp_path / "model")
    loaded = load_model(path)
    assert isinstance(loaded, Ensemble)
    assert loaded.threshold_ == fitted.threshold_
    assert [type(m).__name__ for m in loaded.detectors_] == ["GaussianDetector", "ClipStatsDetector"]
    assert [m.threshold_ for m in loaded.detectors_] == [m.threshold_ for m in fitted.detectors_]
    np.testing.assert_array_equal(loaded.centres_, fitted.centres_)
    np.testing.assert_array_equal(_quietly(loaded.score, test), _quietly(fitted.score, test))
    np.testing.assert_array_equal(_quietly(loaded.predict, test), _quietly(fitted.predict, test))
    assert [type(m).__name__ for m in loaded.detectors or []] == ["GaussianDetector", "ClipStatsDetector"]  # refittable
    assert Ensemble.load(path).combine == "mean"


def test_get_params_and_clone(fitted: Ensemble) -> None:
    from sklearn.base import clone

    params = fitted.get_params(deep=True)
    assert params["detectors"] is fitted.detectors and params["combine"] == "mean"
    copy = clone(fitted)
    assert type(copy) is Ensemble and not hasattr(copy, "threshold_")
    assert [type(m) for m in copy.detectors or []] == [type(m) for m in fitted.detectors or []]
    assert all(a is not b for a, b in zip(copy.detectors or [], fitted.detectors or [], strict=True))
    assert copy.set_params(combine="max", standardize="standard").combine == "max"
    assert "combine='max'" in repr(copy)
    with pytest.raises(NotFittedError):
        copy.score(ClipFeatures.from_arrays([np.zeros((2, 3), np.float32)]))
    with pytest.raises(ParameterError, match="combine"):
        copy.set_params(combine="median")


def test_member_that_cannot_fit_names_it() -> None:
    silent = ClipFeatures.from_arrays([np.zeros((4, 5), np.float32) for _ in range(12)])
    ensemble = Ensemble([GaussianDetector(), ClipStatsDetector()])
    with pytest.raises(ParameterError, match=r"detectors\[0\] \(GaussianDetector\) cannot fit.*barely vary"):
        _quietly(ensemble.fit, silent)
    # ClipStatsDetector refuses silence too (#23's degenerate-data rule): also named
    with pytest.raises(ParameterError, match=r"detectors\[0\] \(ClipStatsDetector\).*(barely vary|do not vary)"):
        _quietly(Ensemble([ClipStatsDetector()]).fit, silent)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"detectors": [object()]}, r"detectors\[0\] must be a detector"),
        ({"detectors": GaussianDetector()}, "list of detectors"),
        ({"detectors": []}, "1 to"),
        ({"detectors": [Ensemble([GaussianDetector()])]}, "must not itself be an Ensemble"),
        ({"detectors": [GaussianDetector()], "combine": "median"}, "combine"),
        ({"detectors": [GaussianDetector()], "standardize": "zscore"}, "standardize"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        Ensemble(**kwargs)  # type: ignore[arg-type]


def test_fit_needs_detectors() -> None:
    with pytest.raises(ParameterError, match="needs detectors"):
        Ensemble().fit(ClipFeatures.from_arrays([np.ones((2, 2), np.float32)] * 4))


def test_per_member_features_match_paths(fitted: Ensemble, split: tuple[ClipSet, ClipSet]) -> None:
    """A list of ClipFeatures (one per member) gives what the members extract from the paths themselves."""
    train, test = split
    lists = [[LogMelFrames().extract(d.paths), ClipStatistics().extract(d.paths)] for d in (train, test)]
    ensemble = _quietly(Ensemble(_members()).fit, lists[0])
    np.testing.assert_allclose(
        _quietly(ensemble.score, lists[1]),
        _quietly(fitted.score, test),
        rtol=1e-6,
        atol=1e-9,
    )
    with pytest.raises(ParameterError, match="one each"):
        fitted.score(lists[1][:1])
    with pytest.raises(ParameterError, match="different numbers of clips"):
        fitted.score([lists[1][0], lists[0][1]])


def test_nested_pergroup_member_round_trip(split: tuple[ClipSet, ClipSet], tmp_path: Path) -> None:
    train, test = split
    ensemble = _quietly(Ensemble([PerGroup(ClipStatsDetector()), GaussianDetector()], threshold=0.5).fit, train)
    loaded = load_model(ensemble.save(tmp_path / "model"))
    assert isinstance(loaded, Ensemble) and isinstance(loaded.detectors_[0], PerGroup)
    np.testing.assert_array_equal(_quietly(loaded.score, test), _quietly(ensemble.score, test))


def test_load_rejects_tampered_models(fitted: Ensemble, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "model")
    manifest_path = path / "manifest.json"
    original = manifest_path.read_text()
    manifest = json.loads(original)
    manifest["extra"]["members"][0]["endpoint"] = "http://example.invalid"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="unknown key"):
        load_model(path)
    manifest = json.loads(original)
    manifest["extra"]["members"][1]["detector"] = "os.system"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="unknown detector"):
        load_model(path)
    manifest_path.write_text(original)
    with np.load(path / "state.npz") as archive:
        state = dict(archive)
    np.savez(path / "state.npz", **state, m5__stray=np.zeros(3))
    with pytest.raises(ModelFormatError, match="stray"):
        load_model(path)
    state["centres"] = np.zeros(3)
    np.savez(path / "state.npz", **state)
    with pytest.raises(ModelFormatError, match="centres"):
        load_model(path)


def test_member_without_holdout_warns_and_standard_mode() -> None:
    rng = np.random.default_rng(3)
    clips = ClipFeatures.from_arrays([rng.normal(size=(4, 6)).astype(np.float32) for _ in range(40)])
    members = [GaussianDetector(threshold=5.0), ClipStatsDetector(threshold=ThresholdCalibrator(target_fpr=0.2))]
    ensemble = Ensemble(members, standardize="standard", threshold=1.0)
    with pytest.warns(CalibrationWarning, match=r"detectors\[0\].*no held-out scores"):
        ensemble.fit(clips)
    assert ensemble.threshold_ == 1.0 and len(ensemble.holdout_scores_) == 0  # a fixed threshold holds nothing out
    first, second = ensemble.detectors_
    assert len(first.train_scores_) == 40  # so the members train on every clip
    assert np.isclose(ensemble.centres_[0], first.train_scores_.mean())
    assert np.isclose(ensemble.spreads_[0], first.train_scores_.std())
    assert np.isclose(ensemble.centres_[1], second.holdout_scores_.mean())


@pytest.mark.parametrize(
    "check",
    [
        "check_get_params_invariance",
        "check_set_params",
        "check_no_attributes_set_in_init",
        "check_parameters_default_constructible",
        "check_estimator_repr",
    ],
)
def test_sklearn_estimator_checks_that_apply(check: str) -> None:
    from sklearn.utils import estimator_checks

    function = getattr(estimator_checks, check, None)
    if function is None:
        pytest.skip(f"this scikit-learn has no {check}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_set_params tries invalid values, which we refuse at once
        function("ensemble", Ensemble(_members(), combine="max"))


def test_robust_standardisation_uses_median_and_iqr() -> None:
    rng = np.random.default_rng(4)
    clips = ClipFeatures.from_arrays([rng.normal(size=(4, 6)).astype(np.float32) for _ in range(40)])
    rule = ThresholdCalibrator(target_fpr=0.2)
    ensemble = Ensemble([GaussianDetector(threshold=rule)], standardize="robust", threshold=rule).fit(clips)
    held = ensemble.detectors_[0].holdout_scores_
    q25, q75 = np.percentile(held, [25, 75])
    assert np.isclose(ensemble.centres_[0], np.median(held))
    assert np.isclose(ensemble.spreads_[0], (q75 - q25) / 1.3489795003921634)
    assert ensemble.calibration_ is not None and ensemble.calibration_.source == "holdout"
