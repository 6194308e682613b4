"""Data sets: the MIMII and DCASE Task 2 layouts, verified downloads, splits and the synthetic fan generator."""

from soundanomaly.datasets import synthetic
from soundanomaly.datasets.dcase import DCASE, open_dataset, parse_dcase_path
from soundanomaly.datasets.download import download_dcase, download_mimii
from soundanomaly.datasets.mimii import LABELS, MIMII, UNLABELLED, ClipRecord, ClipSet, parse_path
from soundanomaly.datasets.splits import AutoencoderSplit, ClassifierSplit, autoencoder_split, classifier_split

__all__ = [
    "DCASE",
    "LABELS",
    "MIMII",
    "UNLABELLED",
    "AutoencoderSplit",
    "ClassifierSplit",
    "ClipRecord",
    "ClipSet",
    "autoencoder_split",
    "classifier_split",
    "download_dcase",
    "download_mimii",
    "open_dataset",
    "parse_dcase_path",
    "parse_path",
    "synthetic",
]
