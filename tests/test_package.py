from __future__ import annotations

import json
import subprocess
import sys

import pytest

import soundanomaly

HEAVY = (
    "tensorflow",
    "keras",
    "boto3",
    "botocore",
    "sagemaker",
    "s3fs",
    "matplotlib",
    "dask",
    "distributed",
    "pyarrow",
)
DESIGN_CARD = (
    "FeatureExtractor",
    "Detector",
    "AutoencoderDetector",
    "RekognitionDetector",
    "ThresholdCalibrator",
    "Evaluator",
)


def _modules_after(code: str) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_is_light() -> None:
    assert _modules_after("import soundanomaly") == []
    # every public name resolves without pulling in TensorFlow, AWS or matplotlib
    assert _modules_after("import soundanomaly\nfor n in soundanomaly.__all__: getattr(soundanomaly, n)") == []
    assert _modules_after("import soundanomaly.detectors") == []


def test_public_names_resolve() -> None:
    for name in soundanomaly.__all__:
        assert getattr(soundanomaly, name) is not None
    assert soundanomaly.__version__
    for name in (
        *DESIGN_CARD,
        "GaussianDetector",
        "SpectrogramCNNDetector",
        "load_model",
        "load_audio",
        "register_extractor",
        "BaseDetector",
        "find_training_clips",
    ):
        assert name in soundanomaly.__all__, name


def test_unambiguous_loaders(tmp_path: object) -> None:
    from soundanomaly.audio import load
    from soundanomaly.detectors.base import load_model

    assert soundanomaly.load_audio is load
    assert soundanomaly.load_model is load_model
    with pytest.deprecated_call(match="load_audio"):
        assert soundanomaly.load is load


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        soundanomaly.nope  # noqa: B018
