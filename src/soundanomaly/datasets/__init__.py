"""Data sets: the MIMII and DCASE Task 2 layouts, verified downloads, splits and the synthetic fan and domain-shift generators."""

from typing import TYPE_CHECKING, Any

from soundanomaly.datasets import keys, shift, synthetic
from soundanomaly.datasets.clips import LABELS, UNLABELLED, ClipRecord, ClipSet
from soundanomaly.datasets.dcase import DCASE, open_dataset, parse_dcase_path
from soundanomaly.datasets.keys import group_key, session_key
from soundanomaly.datasets.mimii import MIMII, parse_path
from soundanomaly.datasets.splits import AutoencoderSplit, ClassifierSplit, autoencoder_split, classifier_split

if TYPE_CHECKING:  # pragma: no cover - imported on first use: the HTTP stack costs ~40 ms
    from soundanomaly.datasets.download import download_dcase, download_mimii

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
    "group_key",
    "keys",
    "open_dataset",
    "parse_dcase_path",
    "parse_path",
    "session_key",
    "shift",
    "synthetic",
]


def __getattr__(name: str) -> Any:
    if name in ("download_mimii", "download_dcase", "download"):
        import importlib

        module = importlib.import_module("soundanomaly.datasets.download")  # binds the submodule attribute too
        return module if name == "download" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
