"""Feature extractors: clip → matrix of feature vectors."""

from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.features.images import SpectrogramImages
from soundanomaly.features.logmel import LogMelFrames, log_mel_spectrogram, mel_basis
from soundanomaly.features.multichannel import MultiChannel, delay_and_sum, estimate_delays
from soundanomaly.features.twfr import TimeWeightedFrequency, gwrp

__all__ = [
    "BaseFeatureExtractor",
    "ClipFeatures",
    "LogMelFrames",
    "MultiChannel",
    "SpectrogramImages",
    "TimeWeightedFrequency",
    "delay_and_sum",
    "estimate_delays",
    "gwrp",
    "log_mel_spectrogram",
    "mel_basis",
]
