"""ONNX export (#25): the exported file scores exactly as the library, carries its metadata, refuses what it cannot hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from soundanomaly.detectors import ClipStatsDetector, GaussianDetector, PerGroup
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.clipstats import ClipStatistics
from soundanomaly.detectors.domain_knn import DomainKNNDetector
from soundanomaly.detectors.selective_mahalanobis import SelectiveMahalanobisDetector
from soundanomaly.detectors.twfr_gmm import TWFRGMMDetector
from soundanomaly.edge.check import check_onnx_bytes
from soundanomaly.exceptions import NotFittedError, OutputExistsError, ParameterError
from soundanomaly.export import export_model, plan, save_onnx, to_onnx
from soundanomaly.features import ClipFeatures, LogMelFrames
from soundanomaly.results import label_scores

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SR = 16000
RTOL = 1e-4  # the parity target (float32 front end, float64 distances)


def _clip(
    rng: np.random.Generator, tone: float, *, seconds: float = 2.0, noise: float = 0.1
) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * SR)) / SR
    return (noise * rng.standard_normal(len(t)) + 0.05 * np.sin(2 * np.pi * tone * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> dict[str, list[npt.NDArray[np.float32]]]:
    rng = np.random.default_rng(7)
    train = [_clip(rng, 1000 + 7 * i) for i in range(14)]
    test = [_clip(rng, 1000), _clip(rng, 2500, noise=0.3), _clip(rng, 400, noise=0.01), _clip(rng, 1100)]
    return {"train": train, "test": test}


def _features(extractor: Any, clips: list[npt.NDArray[np.float32]]) -> ClipFeatures:
    return ClipFeatures.from_arrays([extractor.transform(c, SR) for c in clips], params=extractor.params())


def _onnx_scores(model: Any, clips: list[npt.NDArray[np.float32]], **options: Any) -> tuple[np.ndarray, np.ndarray]:
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = 1
    data = to_onnx(model, **options).SerializeToString()
    check_onnx_bytes(data)  # every exported graph passes the edge runtime's checks (only its allowed operators)
    session = ort.InferenceSession(data, session_options)
    out = [session.run(None, {"pcm": c}) for c in clips]
    return np.array([float(s) for s, _ in out]), np.array([int(label) for _, label in out])


CASES = {
    "gaussian-mean": (lambda: GaussianDetector(threshold=1.5), LogMelFrames),
    "gaussian-max": (lambda: GaussianDetector(threshold=1.5, aggregate="max"), LogMelFrames),
    "gaussian-percentile": (lambda: GaussianDetector(threshold=1.5, aggregate="percentile:90"), LogMelFrames),
    "gaussian-topk": (lambda: GaussianDetector(threshold=1.5, aggregate="topk:7"), LogMelFrames),
    "gaussian-small-frames": (
        lambda: GaussianDetector(threshold=1.5, features=LogMelFrames(n_mels=32, frames=3, n_fft=512, hop_length=192)),
        lambda: LogMelFrames(n_mels=32, frames=3, n_fft=512, hop_length=192),
    ),
    "gaussian-unsplit-fft": (  # 254 = 2 x 127 has no two-stage split: one DFT matrix
        lambda: GaussianDetector(threshold=1.5, features=LogMelFrames(n_mels=24, frames=2, n_fft=254, hop_length=100)),
        lambda: LogMelFrames(n_mels=24, frames=2, n_fft=254, hop_length=100),
    ),
    "clipstats-knn": (lambda: ClipStatsDetector(threshold=2.0), ClipStatistics),
    "clipstats-mahalanobis-std": (
        lambda: ClipStatsDetector(method="mahalanobis", scaling="std", threshold=2.0),
        ClipStatistics,
    ),
    "clipstats-knn-logmel": (lambda: ClipStatsDetector(threshold=2.0, features=LogMelFrames()), LogMelFrames),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_scores_equal_the_library(case: str, clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    make, extractor = CASES[case]
    detector = make()
    features = extractor()
    detector.fit(_features(features, clips["train"]))
    expected = detector.score(_features(features, clips["test"]))
    scores, labels = _onnx_scores(detector, clips["test"], window_seconds=2.0)
    np.testing.assert_allclose(scores, expected, rtol=RTOL)
    assert expected.max() > 2 * expected.min()  # the test clips differ: parity is not a constant
    assert labels.tolist() == label_scores(expected, detector.threshold_).tolist()


SHIFT_CASES = {
    "domain-knn": lambda: DomainKNNDetector(threshold=2.0, n_neighbors=2),
    "domain-knn-cosine": lambda: DomainKNNDetector(threshold=2.0, metric="cosine"),
    "selective-mahalanobis": lambda: SelectiveMahalanobisDetector(threshold=2.0),
    "selective-mahalanobis-raw": lambda: SelectiveMahalanobisDetector(threshold=2.0, normalise=False),
    "twfr-gmm": lambda: TWFRGMMDetector(threshold=2.0),
    "twfr-gmm-clipstats": lambda: TWFRGMMDetector(threshold=2.0, features=ClipStatistics(n_mels=8, n_bands=64)),
}


@pytest.mark.parametrize("case", sorted(SHIFT_CASES))
def test_shift_robust_detectors_export_with_their_sessions(
    case: str, clips: dict[str, list[npt.NDArray[np.float32]]]
) -> None:
    """Several sessions (domains): the file holds every bank and takes the least score, as the detector."""
    rng = np.random.default_rng(9)
    target = [_clip(rng, 3000 + 11 * i, noise=0.2) for i in range(8)]
    detector = SHIFT_CASES[case]()
    extractor = detector.features  # each detector's own default features
    sessions = ["source"] * len(clips["train"]) + ["target"] * len(target)
    detector.fit(_features(extractor, clips["train"] + target), sessions=sessions)
    assert list(detector.sessions_) == ["source", "target"]
    test = [*clips["test"], _clip(rng, 3000, noise=0.2)]
    expected = detector.score(_features(extractor, test))
    scores, labels = _onnx_scores(detector, test, window_seconds=2.0)
    np.testing.assert_allclose(scores, expected, rtol=RTOL)
    assert labels.tolist() == label_scores(expected, detector.threshold_).tolist()


@pytest.mark.tf
def test_autoencoder_onnx_scores_equal_the_library(clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    from soundanomaly.detectors import AutoencoderDetector

    detector = AutoencoderDetector(epochs=2, batch_size=128, threshold=50.0)
    detector.fit(_features(LogMelFrames(), clips["train"]))
    expected = detector.score(_features(LogMelFrames(), clips["test"]))
    scores, labels = _onnx_scores(detector, clips["test"], window_seconds=2.0)
    np.testing.assert_allclose(scores, expected, rtol=RTOL)
    assert labels.tolist() == (expected > detector.threshold_).astype(int).tolist()


def test_pergroup_exports_one_file_per_group(clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    train = _features(LogMelFrames(), clips["train"])
    groups = ["fan/id_00", "fan/id_02"] * 7
    model = PerGroup(GaussianDetector(threshold=1.5)).fit(train, groups=groups)
    test = _features(LogMelFrames(), clips["test"])
    for group in model.groups_:
        expected = model.score(test, groups=[group] * len(clips["test"]))
        scores, labels = _onnx_scores(model, clips["test"], window_seconds=2.0, group=group)
        np.testing.assert_allclose(scores, expected, rtol=RTOL)
        assert labels.tolist() == (expected > 0).astype(int).tolist()
        assert plan(model, group=group).metadata["group"] == group
    with pytest.raises(ParameterError, match="one file per group"):
        to_onnx(model)


def test_metadata_travels_in_the_file(clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    detector = GaussianDetector(threshold=1.25).fit(_features(LogMelFrames(), clips["train"]))
    meta = {p.key: p.value for p in to_onnx(detector).metadata_props}
    assert meta["soundanomaly.sample_rate"] == "16000"
    assert meta["soundanomaly.window_samples"] == "160000"
    assert float(meta["soundanomaly.threshold"]) == 1.25
    assert json.loads(meta["soundanomaly.features"]) == LogMelFrames().params()
    assert len(meta["soundanomaly.training_fingerprint"]) == 32
    other = GaussianDetector(threshold=1.25).fit(_features(LogMelFrames(), clips["train"][:-2]))
    assert plan(other).metadata["training_fingerprint"] != meta["soundanomaly.training_fingerprint"]


def test_nan_audio_is_labelled_anomalous(clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    detector = GaussianDetector(threshold=1.5).fit(_features(LogMelFrames(), clips["train"]))
    broken = clips["test"][0].copy()
    broken[100] = np.nan
    scores, labels = _onnx_scores(detector, [broken], window_seconds=2.0)
    assert not np.isfinite(scores[0]) and labels[0] == 1


class _Opaque(BaseDetector):
    def _fit(self, features: ClipFeatures, labels: Any = None) -> None:
        self.mean_ = float(features.windows.mean())

    def _score_windows(self, windows: Any) -> Any:
        return np.abs(windows.mean(axis=1) - self.mean_)

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        pass


def test_export_refuses_what_it_cannot_represent(clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    train = _features(LogMelFrames(), clips["train"])
    with pytest.raises(ParameterError, match="_Opaque cannot be exported"):
        to_onnx(_Opaque(threshold=1.0).fit(train))
    odd = LogMelFrames(n_fft=509, hop_length=200)
    with pytest.raises(ParameterError, match="odd n_fft"):
        to_onnx(GaussianDetector(threshold=1.0, features=odd).fit(_features(odd, clips["train"])))
    with pytest.raises(ParameterError, match="channel=None"):
        to_onnx(GaussianDetector(threshold=1.0, channel=None).fit(train))
    with pytest.raises(ParameterError, match="shorter than the features need"):
        to_onnx(GaussianDetector(threshold=1.0).fit(train), window_seconds=0.05)
    with pytest.raises(ParameterError, match="computed at 16000 Hz"):
        to_onnx(GaussianDetector(threshold=1.0).fit(train), sample_rate=8000)
    with pytest.raises(NotFittedError):
        to_onnx(GaussianDetector())


def test_export_model_output_safety(tmp_path: Path, clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    detector = GaussianDetector(threshold=1.5).fit(_features(LogMelFrames(), clips["train"]))
    folder = detector.save(tmp_path / "model")
    with pytest.raises(OutputExistsError, match="lies inside"):
        export_model(folder, format="onnx", out=folder / "model.onnx")
    mine = tmp_path / "notes.onnx"
    mine.write_text("not ours")
    with pytest.raises(OutputExistsError, match="not written by soundanomaly"):
        export_model(folder, format="onnx", out=mine)
    assert mine.read_text() == "not ours"
    out = export_model(folder, format="onnx", out=tmp_path / "model.onnx")
    first = out.read_bytes()
    export_model(folder, format="onnx", out=out, window_seconds=2.0)  # a file the library wrote is replaced
    assert out.read_bytes() != first
    export_model(folder, format="onnx", out=mine, force=True)
    assert mine.read_bytes()[:2] != b"no"
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".soundanomaly-outputs.json")  # the ledger
    assert names == ["model", "model.onnx", "notes.onnx"]  # no temporaries left
    with pytest.raises(ParameterError, match="int8"):
        export_model(folder, format="onnx", out=tmp_path / "x.onnx", int8=True)
    with pytest.raises(ParameterError, match="format"):
        export_model(folder, format="pb", out=tmp_path / "x.pb")  # type: ignore[arg-type]


def test_save_onnx_round_trip_in_real_clips(mimii_root: Path, tmp_path: Path) -> None:
    """The 14 real MIMII fan clips (8 channels, 10 s): the ONNX file scores every one as the library."""
    paths = sorted(str(p) for p in mimii_root.rglob("*.wav"))
    normal = [p for p in paths if "/normal/" in p]
    detector = GaussianDetector(threshold=1.5, holdout=0.0).fit(normal)
    expected = detector.score(paths)
    out = save_onnx(detector, tmp_path / "fan.onnx")
    session = ort.InferenceSession(str(out))
    features = LogMelFrames()
    import soundfile

    for path, score in zip(paths, expected, strict=True):
        pcm = soundfile.read(path, dtype="float32", always_2d=True)[0][:, 0]
        (got, _) = session.run(None, {"pcm": np.ascontiguousarray(pcm)})
        assert float(got) == pytest.approx(score, rel=RTOL), path
    assert features.params()["sr"] == 16000


def test_every_detector_exports_or_says_why() -> None:
    """A detector without export hooks is refused with one message naming it (no fitting needed to know)."""
    import soundanomaly.detectors as detectors

    classes = [getattr(detectors, name) for name in detectors.__all__]
    refused = []
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseDetector)) or cls is BaseDetector:
            continue
        if cls._export_parts is BaseDetector._export_parts and cls.group_member is BaseDetector.group_member:
            with pytest.raises(ParameterError, match=f"{cls.__name__} cannot be exported"):
                BaseDetector._export_parts(object.__new__(cls))
            refused.append(cls.__name__)
    assert "GaussianDetector" not in refused and "PerGroup" not in refused and "SpectrogramCNNDetector" in refused


@pytest.mark.parametrize("case", ["gaussian-percentile", "clipstats-knn", "twfr-gmm"])
def test_the_graph_follows_the_onnx_specification(case: str, clips: dict[str, list[npt.NDArray[np.float32]]]) -> None:
    """ONNX's own reference evaluator (the operators as the standard defines them) gives ONNX Runtime's scores."""
    from onnx.reference import ReferenceEvaluator

    detector = {**{k: v[0] for k, v in CASES.items()}, **SHIFT_CASES}[case]()
    extractor = detector.features
    detector.fit(_features(extractor, [c[:SR] for c in clips["train"]]))
    model = to_onnx(detector, window_seconds=1.0)
    pcm = clips["test"][1][:SR]
    reference = ReferenceEvaluator(model).run(None, {"pcm": pcm})
    runtime = ort.InferenceSession(model.SerializeToString()).run(None, {"pcm": pcm})
    assert float(reference[0]) == pytest.approx(float(runtime[0]), rel=1e-6)
    assert int(reference[1]) == int(runtime[1])
