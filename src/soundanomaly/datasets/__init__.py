"""Data sets: the MIMII layout, splits and the synthetic fan generator."""

from soundanomaly.datasets import synthetic
from soundanomaly.datasets.mimii import LABELS, MIMII, ClipRecord, ClipSet, parse_path
from soundanomaly.datasets.splits import AutoencoderSplit, ClassifierSplit, autoencoder_split, classifier_split

__all__ = [
    "LABELS",
    "MIMII",
    "AutoencoderSplit",
    "ClassifierSplit",
    "ClipRecord",
    "ClipSet",
    "autoencoder_split",
    "classifier_split",
    "parse_path",
    "synthetic",
]
