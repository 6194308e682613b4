"""Recommended configurations are one line each and build what the docs say (#22)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundanomaly.detectors import BaseDetector, ClipStatsDetector, DomainKNNDetector, PerGroup
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.multichannel import MultiChannel
from soundanomaly.presets import PRESETS, recommended


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_fresh_unfitted_detector(name: str) -> None:
    first, second = recommended(name), recommended(name)
    assert isinstance(first, BaseDetector) and first is not second
    assert not hasattr(first, "threshold_")
    assert type(first)(**first.get_params(deep=False)).get_params().keys() == first.get_params().keys()


def test_mimii_8mic_is_the_documented_configuration() -> None:
    detector = recommended("mimii-8mic")
    assert isinstance(detector, ClipStatsDetector) and detector.channel is None
    assert isinstance(detector.features, MultiChannel) and detector.features.strategy == "delay_and_sum"
    assert isinstance(recommended("mimii-1mic"), PerGroup)
    assert isinstance(recommended("domain-shift"), DomainKNNDetector)


def test_mimii_8mic_fits_real_clips(mimii_root: Path) -> None:
    from soundanomaly.datasets import open_dataset

    clips = open_dataset(mimii_root)
    normal = clips.filter(label="normal")
    detector = recommended("mimii-8mic").set_params(threshold=1.0).fit(normal)
    scores = detector.score(clips.filter(label="abnormal"))
    assert scores.shape == (len(clips.filter(label="abnormal")),) and np.isfinite(scores).all()


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="mimii-8mic"):
        recommended("best")
