"""Feature extractors: clip → matrix of feature vectors."""

from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.images import SpectrogramImages
from soundanomaly.features.logmel import LogMelFrames, log_mel_spectrogram, mel_basis

__all__ = [
    "BaseFeatureExtractor",
    "ClipFeatures",
    "LogMelFrames",
    "SpectrogramImages",
    "log_mel_spectrogram",
    "mel_basis",
]
