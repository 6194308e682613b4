"""Shared fixtures: tiny synthetic data sets and the real MIMII clips in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundanomaly.datasets import MIMII, synthetic

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
