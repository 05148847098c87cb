"""Shared fixtures for the data tests: the real test files and a tiny synthetic set (helpers that tests
import by name are in ``data_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

# ../shared relative to the repo root (tests/data/conftest.py -> parents[2] is the repo root).
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real() -> Path:
    if not (REAL / "test.mp4").is_file():
        pytest.skip(f"real test files not found at {REAL.resolve()} (expected ../shared/data/real next to the repo)")
    return REAL


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    from tdrl.data.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("synth")
    return generate_synthetic(out, num_classes=4, train_per_class=2, val_per_class=1, frames=8, size=32,
                              seed=3, workers=1)
