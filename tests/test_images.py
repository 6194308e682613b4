from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundanomaly.datasets import MIMII, classifier_split, synthetic
from soundanomaly.detectors import SpectrogramCNNDetector, load
from soundanomaly.evaluation import Evaluator
from soundanomaly.exceptions import ParameterError
from soundanomaly.features import SpectrogramImages
from soundanomaly.features.images import decode_png
from soundanomaly.features.logmel import log_mel_spectrogram
from soundanomaly.manifest import ManifestEntry, manifest_lines, read_manifest, write_manifest


def test_image_layout_low_frequencies_at_bottom_loud_is_dark() -> None:
    sr = 16000
    t = np.arange(10 * sr) / sr
    low_tone = (0.5 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    image = SpectrogramImages().image(low_tone, sr)
    assert image.shape == (64, 313)
    assert image.dtype == np.uint8
    rows = image.mean(axis=1)
    assert rows.argmin() > 48  # the darkest (loudest) row is near the bottom
    assert image.min() == 0 and image.max() == 255  # min-max scaled per image


def test_image_matches_the_log_mel_spectrogram() -> None:
    clip = synthetic.generate_clip(0, duration=2.0)
    db = log_mel_spectrogram(clip, 16000)
    expected = np.round(255 * (1 - (db - db.min()) / (db.max() - db.min())))[::-1]
    np.testing.assert_array_equal(SpectrogramImages().image(clip, 16000), expected.astype(np.uint8))


def test_options(tmp_path: Path) -> None:
    clip = synthetic.generate_clip(0, duration=2.0)
    resized = SpectrogramImages(size=(128, 32))
    assert resized.image(clip, 16000).shape == (32, 128)
    assert resized.transform(clip, 16000).shape == (1, 32 * 128)
    fixed = SpectrogramImages(scaling="fixed").image(clip * 0.01, 16000)
    assert fixed.max() <= 255
    coloured = SpectrogramImages(colormap="magma").png(clip, 16000)
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(coloured)).mode == "RGB"
    with pytest.raises(ParameterError, match="scaling"):
        SpectrogramImages(scaling="log")  # type: ignore[arg-type]


def test_write_images_to_folder_and_fsspec(tiny: MIMII, tmp_path: Path) -> None:
    paths = tiny.paths[:3]
    written = SpectrogramImages().write_images(paths, str(tmp_path / "images"), progress=False)
    assert len(written) == 3
    assert all(Path(p).is_file() for p in written)
    assert "/abnormal/" in written[0] or "/normal/" in written[0]
    np.testing.assert_array_equal(
        decode_png(Path(written[0]).read_bytes()), SpectrogramImages().image(*_load(paths[0]))
    )
    pytest.importorskip("fsspec")
    in_memory = SpectrogramImages().write_images(paths[:1], "memory://images", names=["a.png"], progress=False)
    assert in_memory == ["memory://images/a.png"]


def _load(path: str) -> tuple[np.ndarray, int]:
    from soundanomaly.audio import load as load_audio

    return load_audio(path)


def test_manifest_round_trip(tmp_path: Path) -> None:
    entries = [
        ManifestEntry("s3://b/images/normal/a.png", "normal"),
        ManifestEntry("s3://b/images/abnormal/b.png", "abnormal"),
    ]
    target = write_manifest(entries, tmp_path / "train.manifest")
    lines = Path(target).read_text().splitlines()
    record = json.loads(lines[1])
    assert record["source-ref"] == "s3://b/images/abnormal/b.png"
    assert record["sound-label"] == 1
    metadata = record["sound-label-metadata"]
    assert metadata["class-name"] == "abnormal"
    assert metadata["type"] == "groundtruth/image-classification"
    assert metadata["human-annotated"] == "yes"
    assert metadata["confidence"] == 1.0
    assert metadata["job-name"] == "labeling-job/sound-label"
    assert len(metadata["creation-date"]) == 26
    assert read_manifest(target) == entries
    with pytest.raises(ParameterError, match="class_name"):
        manifest_lines([ManifestEntry("s3://b/x.png", "broken")])
    (tmp_path / "bad.manifest").write_text('{"source-ref": "x"}\n')
    with pytest.raises(ParameterError, match="line 1"):
        read_manifest(tmp_path / "bad.manifest")


@pytest.mark.tf
def test_cnn_learns_the_synthetic_faults(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "fans", ids=[0, 2], n_normal=20, n_abnormal=10, duration=3.0, seed=5)
    clips = MIMII(root)
    split = classifier_split(clips)
    detector = SpectrogramCNNDetector(epochs=40, batch_size=8, learning_rate=3e-3).fit(split.train)
    assert detector.threshold_ == 0.5
    scores = detector.score(split.test)
    assert ((scores >= 0) & (scores <= 1)).all()
    report = Evaluator().evaluate(split.test.labels, scores, threshold=detector.threshold_)
    assert report.overall.accuracy >= 0.9
    loaded = load(detector.save(tmp_path / "cnn"))
    np.testing.assert_allclose(loaded.score(split.test), scores, rtol=1e-5)


@pytest.mark.tf
def test_cnn_needs_labels(tiny: MIMII) -> None:
    with pytest.raises(ParameterError, match="supervised"):
        SpectrogramCNNDetector(epochs=1).fit(tiny.paths)
    with pytest.raises(ParameterError, match="both normal"):
        SpectrogramCNNDetector(epochs=1).fit(tiny.filter(label="normal"))
