"""scikit-learn conventions: parameters from the signature, clone, set_params, repr, validation, global RNG untouched."""

# ruff: noqa: NPY002 - the legacy global random state is exactly what these tests protect

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks

import registered
from soundanomaly import registry
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors import (
    AutoencoderDetector,
    BaseDetector,
    ClipStatsDetector,
    Ensemble,
    GaussianDetector,
    MachineIdDetector,
    PerGroup,
)
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import ClipFeatures, LogMelFrames

FACTORIES: dict[str, Callable[[], BaseDetector]] = {
    "gaussian": lambda: GaussianDetector(shrinkage=0.2, threshold=ThresholdCalibrator(target_fpr=0.05), holdout=0.3),
    "autoencoder": lambda: AutoencoderDetector(hidden=[16, 4, 16], epochs=2, aggregate="max"),
}
SKLEARN_CHECKS = [
    "check_get_params_invariance",
    "check_set_params",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_estimator_repr",
    "check_estimators_overwrite_params",
]


def _train() -> ClipFeatures:
    rng = np.random.default_rng(0)
    return ClipFeatures.from_arrays([rng.normal(size=(20, 6)).astype(np.float32) for _ in range(6)])


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_estimator_checks_that_apply(name: str, check: str) -> None:
    function = getattr(estimator_checks, check, None)
    if function is None:
        pytest.skip(f"this scikit-learn has no {check}")
    if check == "check_estimators_overwrite_params":
        pytest.skip("fits on X, y arrays: our fit takes clips (covered by test_fit_does_not_change_parameters)")
    with warnings.catch_warnings():
        # check_set_params tries inf/None for every parameter; we refuse invalid values at once, which it notes
        warnings.simplefilter("ignore")
        function(name, FACTORIES[name]())


@pytest.mark.parametrize("name", list(FACTORIES))
def test_get_params_is_the_signature_and_values_are_unchanged(name: str) -> None:
    detector = FACTORIES[name]()
    params = detector.get_params(deep=False)
    signature = [p for p in inspect.signature(type(detector).__init__).parameters if p != "self"]
    assert list(params) == signature
    extractor = LogMelFrames(n_mels=32)
    hidden = [8, 2, 8]
    custom = type(detector)(features=extractor, hidden=hidden) if name == "autoencoder" else None
    if custom is not None:
        assert custom.get_params()["features"] is extractor and custom.get_params()["hidden"] is hidden


@pytest.mark.parametrize("name", list(FACTORIES))
def test_clone_copies_parameters_not_state(name: str) -> None:
    detector = FACTORIES[name]()
    copy = clone(detector)
    assert type(copy) is type(detector) and copy is not detector
    assert repr(copy) == repr(detector)
    if name == "gaussian":
        fitted = detector.set_params(threshold=1.0).fit(_train())
        assert not hasattr(clone(fitted), "threshold_")


def test_deep_params_and_nested_set_params() -> None:
    detector = GaussianDetector(threshold=ThresholdCalibrator(target_fpr=0.05))
    assert detector.get_params()["threshold__target_fpr"] == 0.05
    detector.set_params(threshold__target_fpr=0.1)
    assert isinstance(detector.threshold, ThresholdCalibrator) and detector.threshold.target_fpr == 0.1


def test_set_params_validates_and_leaves_the_detector_unchanged_on_error() -> None:
    detector = GaussianDetector()
    assert detector.set_params(shrinkage=0.3, aggregate="topk:3") is detector
    assert detector.shrinkage == 0.3 and detector.aggregate == "topk:3"
    with pytest.raises(ParameterError, match="invalid parameter 'shrinkge'"):
        detector.set_params(shrinkge=0.1)
    with pytest.raises(ParameterError, match="shrinkage"):
        detector.set_params(shrinkage=2.0, aggregate="max")
    assert detector.shrinkage == 0.3 and detector.aggregate == "topk:3"


def test_repr_reports_the_real_parameters() -> None:
    assert repr(GaussianDetector()) == "GaussianDetector()"
    assert (
        repr(GaussianDetector(threshold=ThresholdCalibrator(target_fpr=0.05), shrinkage=0.1))
        == "GaussianDetector(shrinkage=0.1, threshold=ThresholdCalibrator('target_fpr', target_fpr=0.05))"
    )
    assert "threshold=2.5" in repr(AutoencoderDetector(threshold=2.5))
    backend = type("Custom", (), {"train": lambda self: None, "__repr__": lambda self: 1 / 0})()  # a repr that raises
    assert "AutoencoderDetector" in repr(AutoencoderDetector(backend=backend))


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: AutoencoderDetector(backend="sagemkr"), "backend"),
        (lambda: GaussianDetector(chunk_size=2.5), "chunk_size"),  # old constructor run options: still checked
        (lambda: GaussianDetector(chunk_size=0), "chunk_size"),
        (lambda: GaussianDetector(threshold="high"), "threshold"),  # type: ignore[arg-type]
        (lambda: GaussianDetector(threshold=float("nan")), "threshold"),
        (lambda: GaussianDetector(holdout=1.0), "holdout"),
        (lambda: GaussianDetector(holdout=True), "holdout"),
        (lambda: GaussianDetector(on_error="ignore"), "on_error"),
        (lambda: GaussianDetector(aggregate="median"), "aggregate"),
        (lambda: GaussianDetector(channel="left"), "channel"),  # type: ignore[arg-type]
        (lambda: GaussianDetector(random_state=1.5), "random_state"),  # type: ignore[arg-type]
        (lambda: GaussianDetector(features="logmel"), "features"),
        (lambda: GaussianDetector(shrinkage="some"), "shrinkage"),  # type: ignore[arg-type]
    ],
)
def test_constructor_arguments_are_validated_at_once(factory: Callable[[], object], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        factory()


def test_fit_does_not_change_parameters() -> None:
    calibrator = ThresholdCalibrator(target_fpr=0.3)
    detector = GaussianDetector(threshold=calibrator, holdout=0.5)
    before = detector.get_params()
    detector.fit(_train())
    after = detector.get_params()
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


def _fit_keeps_global_rng(detector: BaseDetector) -> None:  # the legacy global state is what users share
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    detector.fit(_train())
    assert np.random.random() == expected_np and random.random() == expected_py


def test_fit_does_not_touch_the_global_random_state() -> None:
    _fit_keeps_global_rng(GaussianDetector(threshold=1.0))


@pytest.mark.tf
def test_autoencoder_fit_does_not_reseed_numpy() -> None:
    _fit_keeps_global_rng(AutoencoderDetector(epochs=1, batch_size=32, threshold=1.0, seed=7))


def test_pyod_names_are_mapped_in_the_docs() -> None:
    doc = BaseDetector.__doc__ or ""
    for phrase in ("decision_scores_", "train_scores_", "contamination", "target_fpr"):
        assert phrase in doc


# -- #21: the conventions hold for every registered detector (enumerated from the registry) ---------------------------
REGISTERED_CHECKS = ["check_get_params_invariance", "check_set_params", "check_no_attributes_set_in_init"]


@pytest.mark.parametrize("name", registered.params())
def test_every_registered_detector_follows_the_sklearn_conventions(name: str) -> None:
    detector = registered.build(name)
    for check in REGISTERED_CHECKS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(estimator_checks, check)(name, detector)
    clone(detector)
    assert repr(detector).startswith(name)


@pytest.mark.parametrize("name", registered.params())
def test_init_stores_every_parameter_unchanged(name: str) -> None:
    """scikit-learn: "__init__ only stores": ``get_params`` gives back exactly what was passed (or the default)."""
    args = registered.arguments(name)
    detector = registry.get("detector", name)(**args)
    signature = inspect.signature(type(detector).__init__).parameters
    for key, value in detector.get_params(deep=False).items():
        expected = args[key] if key in args else signature[key].default
        assert value is expected, f"{name}.{key} was changed by __init__: {value!r} instead of {expected!r}"


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: ClipStatsDetector(shrinkage="a"), "shrinkage"),
        (lambda: MachineIdDetector(hidden=5), "hidden"),
        (lambda: MachineIdDetector(learning_rate="x"), "learning_rate"),
        (lambda: AutoencoderDetector(hidden=5), "hidden"),
        (lambda: ClipStatsDetector(n_neighbors="3"), "n_neighbors"),
        (lambda: PerGroup(GaussianDetector(), holdout="half"), "holdout"),
        (lambda: PerGroup(GaussianDetector(), group_by="line"), "group_by"),
        (lambda: Ensemble([GaussianDetector()], combine="median"), "combine"),
    ],
)
def test_bad_parameters_raise_parameter_error_never_type_error(factory: Callable[[], object], name: str) -> None:
    """#21 defect 4: the same declared-constraint check for every detector (c91f061 leaked TypeError)."""
    with pytest.raises(ParameterError, match=name):
        factory()


def test_pergroup_honours_its_parameters() -> None:
    """#21 defect 2: on c91f061 ``PerGroup(..., threshold=5.0, holdout=0.5, aggregate="max", random_state=7)`` was the default."""
    rng = np.random.default_rng(0)
    train = ClipFeatures.from_arrays([rng.normal(size=(12, 4)).astype(np.float32) for _ in range(40)])
    groups = ["a/id_00", "a/id_01"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = PerGroup(GaussianDetector()).fit(train, groups=groups)
        tuned = PerGroup(GaussianDetector(), threshold=5.0, holdout=0.5, aggregate="max", random_state=7)
        tuned.fit(train, groups=groups)
    assert plain.threshold_ == 0.0 and tuned.threshold_ == 5.0
    for key in plain.groups_:
        model = tuned.models_[key]
        assert (model.holdout, model.aggregate, model.random_state) == (0.5, "max", 7)
        assert len(model.holdout_scores_) == 10 and len(plain.models_[key].holdout_scores_) == 4
    assert not np.allclose(tuned.score(train, groups=groups) - 5.0, plain.score(train, groups=groups))


def test_ensemble_runs_its_members_with_its_run_options(tmp_path: Path) -> None:
    """#21: ``Ensemble(progress=True)`` was accepted and ignored; run options now reach every member."""
    rng = np.random.default_rng(1)
    train = ClipFeatures.from_arrays([rng.normal(size=(6, 3)).astype(np.float32) for _ in range(30)])
    ensemble = Ensemble([GaussianDetector(), GaussianDetector(shrinkage=0.5)], threshold=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a handful of held-out clips cannot resolve 1 %
        ensemble.fit(train, options={"progress": True, "chunk_size": 7})
    assert all(m.run_options.progress and m.run_options.chunk_size == 7 for m in ensemble.detectors_)
    assert "progress" not in ensemble.get_params()
    with pytest.warns(FutureWarning, match="run options"):
        assert Ensemble([GaussianDetector()], progress=True).run_options.progress
