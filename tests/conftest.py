"""Shared fixtures: tiny synthetic data sets and the real MIMII clips in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundanomaly.datasets import DCASE, MIMII, shift, synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_MIMII = REPO.parent / "shared" / "data" / "mimii-fan"


@pytest.fixture(scope="session")
def mimii_root() -> Path:
    """The 14 real MIMII fan clips; tests using it skip where they are absent."""
    if not SHARED_MIMII.is_dir():
        pytest.skip(f"real MIMII clips not found at {SHARED_MIMII}")
    return SHARED_MIMII


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 ids x (8 normal + 4 abnormal) synthetic clips of 2 s."""
    root = tmp_path_factory.mktemp("tiny")
    return synthetic.write_dataset(root, ids=[0, 2], n_normal=8, n_abnormal=4, duration=2.0, seed=1)


@pytest.fixture(scope="session")
def tiny(tiny_root: Path) -> MIMII:
    return MIMII(tiny_root)


@pytest.fixture(scope="session")
def shift_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny domain-shift set in the DCASE 2023 layout: 3 sections (operating point, background,
    microphone shift) x (40 source + 4 target training clips, 6 test clips per domain and label) of 1 s."""
    root = tmp_path_factory.mktemp("shift") / "dev"
    return shift.write_shift_dataset(root, n_source=40, n_target=4, n_test=6, duration=1.0, seed=shift.DEVELOPMENT_SEED)


@pytest.fixture(scope="session")
def shift_clips(shift_root: Path) -> DCASE:
    clips = DCASE(shift_root)
    assert isinstance(clips, DCASE)
    return clips
