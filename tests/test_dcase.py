"""DCASE Task 2 layouts 2020-2024 (tiny generated WAVs under real DCASE names), the official score, submissions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundanomaly.datasets import DCASE, MIMII, ClipRecord, ClipSet, open_dataset, parse_dcase_path, synthetic
from soundanomaly.dcase_score import dcase_score, mcclish_pauc, write_submission
from soundanomaly.evaluation import Evaluator, partial_auc
from soundanomaly.exceptions import ParameterError

# (path under the data folder, machine, section/id, domain, split, label, attributes, layout)
REAL_NAMES = [
    # 2020 development and evaluation sets (MIMII + ToyADMOS)
    ("dev_data/fan/train/normal_id_00_00000000.wav", "fan", 0, None, "train", "normal", "", "dcase2020"),
    ("dev_data/ToyCar/test/anomaly_id_01_00000123.wav", "ToyCar", 1, None, "test", "abnormal", "", "dcase2020"),
    ("dev_data/ToyConveyor/test/normal_id_03_00000012.wav", "ToyConveyor", 3, None, "test", "normal", "", "dcase2020"),
    ("eval_data/valve/test/id_05_00000007.wav", "valve", 5, None, "test", "unknown", "", "dcase2020"),
    # 2021 (MIMII DUE, ToyADMOS2): source_test / target_test folders
    ("dev_data/fan/train/section_00_source_train_normal_0000_strength_1_ambient.wav", "fan", 0, "source", "train",
     "normal", "strength_1_ambient", "dcase"),
    ("dev_data/gearbox/train/section_00_source_train_normal_0000_0_g_25_mm_2000_mV_none.wav", "gearbox", 0, "source",
     "train", "normal", "0_g_25_mm_2000_mV_none", "dcase"),
    ("dev_data/ToyTrain/source_test/section_00_source_test_anomaly_0090.wav", "ToyTrain", 0, "source", "test",
     "abnormal", "", "dcase"),
    ("dev_data/pump/target_test/section_02_target_test_normal_0010.wav", "pump", 2, "target", "test", "normal", "",
     "dcase"),
    ("eval_data/ToyTrain/target_test/section_05_target_test_0162.wav", "ToyTrain", 5, "target", "test", "unknown", "",
     "dcase"),
    # 2022 (MIMII DG, ToyADMOS2)
    ("dev_data/fan/train/section_01_target_train_normal_0003_m-n_X.wav", "fan", 1, "target", "train", "normal",
     "m-n_X", "dcase"),
    ("dev_data/bearing/test/section_00_source_test_anomaly_0012_vel_14.wav", "bearing", 0, "source", "test",
     "abnormal", "vel_14", "dcase"),
    ("eval_data/valve/test/section_03_0049.wav", "valve", 3, None, "test", "unknown", "", "dcase"),
    # 2023 (first-shot) and 2024
    ("dev_data/raw/ToyCar/test/section_00_source_test_anomaly_0001_car_B1_spd_31V_mic_1.wav", "ToyCar", 0, "source",
     "test", "abnormal", "car_B1_spd_31V_mic_1", "dcase"),
    ("dev_data/raw/slider/test/section_00_target_test_normal_0001_noAttribute.wav", "slider", 0, "target", "test",
     "normal", "noAttribute", "dcase"),
    ("dev_data/raw/gearbox/train/section_00_source_train_normal_0000_volt_1.0_wt_30.wav", "gearbox", 0, "source",
     "train", "normal", "volt_1.0_wt_30", "dcase"),
    ("eval_data/raw/3DPrinter/test/section_00_0199.wav", "3DPrinter", 0, None, "test", "unknown", "", "dcase"),
]  # fmt: skip


def _write(path: Path, seed: int = 0, *, anomaly: str | None = None, duration: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = synthetic.generate_clip(0, anomaly=anomaly, severity=1.0, duration=duration, seed=seed, clip_index=seed)
    sf.write(path, clip, 16000, subtype="PCM_16")


@pytest.mark.parametrize("name", REAL_NAMES, ids=lambda n: Path(n[0]).name)
def test_parses_real_names_of_every_year(name: tuple[str, str, int, str | None, str, str, str, str]) -> None:
    path, machine, section, domain, split, label, attributes, layout = name
    record = parse_dcase_path(f"/data/{path}")
    assert record is not None
    assert (record.machine, record.section, record.domain, record.split) == (machine, section, domain, split)
    assert (record.label, record.attributes, record.layout, record.snr) == (label, attributes, layout, None)
    assert record.labelled == (label != "unknown")


@pytest.mark.parametrize(
    "path",
    [
        "fan/id_00/normal/00000000.wav",  # MIMII, not DCASE
        "fan/validation/section_00_source_test_normal_0000.wav",  # unknown split folder
        "fan/train/section_00_source_test_normal_0000.wav",  # name says test, folder says train
        "fan/train/id_00_00000000.wav",  # a 2020 training clip always says normal
        "fan/test/section_00_source_test_broken_0000.wav",
        "section_00_0000.wav",
    ],
)
def test_rejects_other_names(path: str) -> None:
    assert parse_dcase_path(path) is None


@pytest.fixture(scope="module")
def dcase_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every REAL_NAMES file as a tiny generated WAV."""
    root = tmp_path_factory.mktemp("dcase")
    for i, (path, *_) in enumerate(REAL_NAMES):
        _write(root / path, i)
    return root


def test_indexes_every_year_and_filters(dcase_tree: Path, tmp_path: Path) -> None:
    clips = DCASE(dcase_tree)
    assert len(clips) == len(REAL_NAMES)
    assert repr(clips) == "DCASE(16 clips: 8 normal, 4 abnormal, 4 unlabelled)"
    assert len(clips.filter(split="train")) == 5
    assert len(clips.filter(domain="target")) == 4
    assert len(clips.filter(labelled=False)) == 4 and clips.filter(labelled=False).labelled is False
    assert clips.filter(labelled=True).labels.tolist() == [int(r.label == "abnormal") for r in clips if r.labelled]
    assert len(clips.filter(machine="ToyCar", ids=0)) == 1
    with pytest.raises(ParameterError, match="4 of 16 clips are unlabelled"):
        _ = clips.labels
    with pytest.raises(ParameterError, match="domain"):
        clips.filter(domain="other")
    with pytest.raises(ParameterError, match="split"):
        clips.filter(split="validation")
    assert len(DCASE(dcase_tree / "dev_data" / "fan" / "train")) == 3  # any folder inside the layout
    _write(tmp_path / "fan" / "id_00" / "normal" / "00000000.wav")
    with pytest.raises(ParameterError, match="no clips found"):
        DCASE(tmp_path)  # MIMII layout only
    with pytest.raises(ParameterError, match="not a folder"):
        DCASE(dcase_tree / "missing")


def test_open_dataset_detects_the_layout(dcase_tree: Path, tiny_root: Path, tmp_path: Path) -> None:
    assert isinstance(open_dataset(tiny_root), MIMII)
    assert isinstance(open_dataset(dcase_tree), DCASE)
    assert len(open_dataset(dcase_tree, split="train")) == 5
    assert {r.split for r in open_dataset(dcase_tree, split="test")} == {"test"}
    mixed = tmp_path / "mixed"
    _write(mixed / "6_dB_fan" / "fan" / "id_00" / "normal" / "00000000.wav")
    _write(mixed / "dev_data" / "fan" / "train" / "section_00_source_train_normal_0000.wav")
    both = open_dataset(mixed, split="train")  # MIMII clips have no split: kept
    assert type(both) is ClipSet and {r.layout for r in both} == {"mimii", "dcase"}
    with pytest.raises(ParameterError, match="no clips found"):
        open_dataset(tmp_path / "mixed" / "dev_data", split="test")
    with pytest.raises(ParameterError, match="split"):
        open_dataset(mixed, split="eval")


def _records(spec: list[tuple[str, str, int]]) -> ClipSet:
    """(domain, label, count) -> DCASE test records of one section of fan."""
    recs = []
    for domain, label, count in spec:
        for i in range(count):
            recs.append(
                ClipRecord(
                    f"fan/test/section_00_{domain}_test_{label}_{i:04d}.wav",
                    "fan",
                    0,
                    None,
                    "abnormal" if label == "anomaly" else "normal",
                    domain=domain,
                    split="test",
                    layout="dcase",
                )
            )
    return ClipSet(recs)


def test_official_score_by_hand(tmp_path: Path) -> None:
    clips = _records(
        [("source", "normal", 4), ("source", "anomaly", 2), ("target", "normal", 4), ("target", "anomaly", 2)]
    )
    # source normals low; target normals as high as the source anomalies: a domain shift
    scores = np.array([0, 1, 2, 3, 10, 11, 9, 10.5, 12, 13, 14, 15], dtype=float)
    result = dcase_score(clips, scores)
    section = result.sections[0]
    # AUC(source): source normals {0..3} vs all anomalies {10, 11, 14, 15}: 1.0
    assert section.auc["source"] == 1.0
    # AUC(target): target normals {9, 10.5, 12, 13} against the anomalies of both domains {10, 11, 14, 15}
    won = sum((a > n) + 0.5 * (a == n) for a in (10, 11, 14, 15) for n in (9, 10.5, 12, 13))
    assert section.auc["target"] == pytest.approx(won / 16)
    assert section.pauc["all"] == pytest.approx(mcclish_pauc(clips.labels, scores, max_fpr=0.1))
    values = [section.auc["source"], section.auc["target"], section.pauc["all"]]
    assert result.official == pytest.approx(3 / sum(1 / v for v in values))
    assert result.arithmetic_mean == pytest.approx(np.mean(values))
    assert result.official < result.arithmetic_mean  # the harmonic mean punishes the weak domain
    assert section.auc["target"] < 0.75
    # 2021: each domain on its own clips; target normals then only meet the target anomalies {14, 15}
    per_domain = dcase_score(clips, scores, edition=2021).sections[0]
    assert per_domain.auc == {"source": 1.0, "target": 1.0}
    assert set(per_domain.pauc) == {"source", "target"}
    assert "fan | 00 | 1.000" in result.to_markdown()
    files = write_submission(tmp_path, clips, scores, edition=2021)  # the 2021 format: one file per domain
    assert [p.name for p in files] == [
        "anomaly_score_fan_section_00_source_test.csv",
        "anomaly_score_fan_section_00_target_test.csv",
    ]
    assert result.to_dict()["official_score"] == pytest.approx(result.official)


def test_pauc_matches_scikit_learn_and_the_task_description() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [60, 40])
    scores = rng.normal(size=100) + labels
    for p in (0.05, 0.1, 0.3):
        assert mcclish_pauc(labels, scores, max_fpr=p) == pytest.approx(roc_auc_score(labels, scores, max_fpr=p))
    clips = ClipSet(
        ClipRecord(f"{i}.wav", "fan", 0, None, "abnormal" if y else "normal", domain="source", layout="dcase")
        for i, y in enumerate(labels)
    )
    normalized = dcase_score(clips, scores, pauc="normalized").sections[0].pauc["all"]
    assert normalized == pytest.approx(partial_auc(labels, scores, max_fpr=0.1))
    assert Evaluator(max_fpr=0.3).dcase_score(clips, scores).max_fpr == 0.3


def test_unlabelled_sets_score_with_ground_truth_and_errors_are_clear() -> None:
    recs = [
        ClipRecord(f"eval/fan/test/section_03_{i:04d}.wav", "fan", 3, None, "unknown", split="test", layout="dcase")
        for i in range(6)
    ]
    clips = ClipSet(recs)
    scores = [0.1, 0.2, 0.9, 0.3, 0.8, 0.95]
    with pytest.raises(ParameterError, match="unlabelled"):
        dcase_score(clips, scores)
    with pytest.raises(ParameterError, match="domains="):
        dcase_score(clips, scores, labels=[0, 0, 1, 0, 1, 1])
    truth = dcase_score(
        clips, scores, labels=[0, 0, 1, 0, 1, 1], domains=["source", "target", "source", "target", "source", "target"]
    )
    assert truth.official == 1.0 and truth.sections[0].section == 3
    assert dcase_score(clips, scores, labels=[0, 0, 1, 0, 1, 1], edition=2020).sections[0].auc == {"all": 1.0}
    with pytest.raises(ParameterError, match="one score"):
        dcase_score(clips, scores[:3], labels=[0, 0, 1])
    with pytest.raises(ParameterError, match="pauc"):
        dcase_score(clips, scores, pauc="sklearn")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="0 \\(normal\\) or 1"):
        dcase_score(clips, scores, labels=[0, 0, 2, 0, 1, 1], edition=2020)


@pytest.mark.filterwarnings("ignore::soundanomaly.exceptions.CalibrationWarning")  # 6 training clips, on purpose
def test_an_unlabelled_eval_set_is_scored_and_written_as_a_submission(tmp_path: Path) -> None:
    from soundanomaly.detectors import GaussianDetector

    for i in range(6):
        _write(tmp_path / "eval_data/fan/train" / f"section_03_source_train_normal_{i:04d}_m-n_W.wav", i, duration=1.0)
    for i in range(4):
        anomaly = "bearing_wear" if i % 2 else None
        _write(tmp_path / "eval_data/fan/test" / f"section_03_{i:04d}.wav", 100 + i, anomaly=anomaly, duration=1.0)
    clips = DCASE(tmp_path)
    detector = GaussianDetector(progress=False).fit(clips.filter(split="train"))
    test = clips.filter(split="test")
    assert not test.labelled
    scores = detector.score(test)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    written = write_submission(tmp_path / "team", test, scores, threshold=detector.threshold_)
    assert [p.name for p in written] == [
        "anomaly_score_fan_section_03_test.csv",
        "decision_result_fan_section_03_test.csv",
    ]
    rows = list(csv.reader(written[0].read_text().splitlines()))
    assert [r[0] for r in rows] == [f"section_03_{i:04d}.wav" for i in range(4)]
    assert np.allclose([float(r[1]) for r in rows], scores, rtol=1e-6)
    decisions = [int(r[1]) for r in csv.reader(written[1].read_text().splitlines())]
    assert decisions == [int(s > detector.threshold_) for s in scores]
    by_id = write_submission(tmp_path / "team2020", test, scores, decisions=[0, 1, 0, 1], edition=2020)
    assert [p.name for p in by_id] == ["anomaly_score_fan_id_03.csv", "decision_result_fan_id_03.csv"]
    with pytest.raises(ParameterError, match="no domain"):
        write_submission(tmp_path / "team2021", test, scores, edition=2021)
    with pytest.raises(ParameterError, match="threshold or decisions"):
        write_submission(tmp_path / "team", test, scores, threshold=0.0, decisions=[0, 1, 0, 1])
