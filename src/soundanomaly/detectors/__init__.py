"""Detectors: fit on clips, score clips (higher = more anomalous), predict (1 = anomaly).

``AutoencoderDetector`` needs the ``tf`` extra only to train; scoring a
trained or loaded one runs on NumPy.
"""

from __future__ import annotations

from pathlib import Path

from soundanomaly.detectors.autoencoder import AutoencoderDetector
from soundanomaly.detectors.base import FORMAT_VERSION, BaseDetector
from soundanomaly.detectors.cnn import SpectrogramCNNDetector
from soundanomaly.detectors.gaussian import GaussianDetector
from soundanomaly.detectors.rekognition import RekognitionDetector
from soundanomaly.typing import PathLike

__all__ = [
    "FORMAT_VERSION",
    "AutoencoderDetector",
    "BaseDetector",
    "GaussianDetector",
    "RekognitionDetector",
    "SpectrogramCNNDetector",
    "load",
]


def load(path: PathLike) -> BaseDetector:
    """Load any detector saved with :meth:`BaseDetector.save`, whatever its class.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> train = ClipFeatures.from_arrays([np.random.default_rng(0).normal(size=(20, 4)).astype("float32")] * 3)
    >>> path = GaussianDetector().fit(train).save("model")
    >>> type(load(path)).__name__
    'GaussianDetector'

    """
    return BaseDetector.load(Path(path))
