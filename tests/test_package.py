from __future__ import annotations

import subprocess
import sys

import soundanomaly


def test_import_is_light() -> None:
    code = (
        "import sys, soundanomaly\n"
        "soundanomaly.LogMelFrames, soundanomaly.MIMII, soundanomaly.load\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'boto3', 'botocore', 'sagemaker', 's3fs') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_names_resolve() -> None:
    for name in soundanomaly.__all__:
        assert getattr(soundanomaly, name) is not None
    assert soundanomaly.__version__


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        soundanomaly.nope  # noqa: B018
