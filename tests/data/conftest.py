"""Shared fixtures for the data tests: the real test files, tiny encoded videos, a tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# ../shared relative to the repo root (tests/data/conftest.py -> parents[2] is the repo root).
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real() -> Path:
    if not (REAL / "test.mp4").is_file():
        pytest.skip(f"real test files not found at {REAL.resolve()} (expected ../shared/data/real next to the repo)")
    return REAL


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264", fps: int = 10) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 with PyAV (container from the suffix)."""
    import av

    fmt = {".webm": "webm", ".mp4": "mp4", ".avi": "avi"}[path.suffix]
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def ramp_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose mean brightness encodes the frame number (robust to codec error)."""
    return np.stack([np.full((h, w, 3), 10 + 12 * i, np.uint8) for i in range(n)])


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    from tdrl.data.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("synth")
    return generate_synthetic(out, num_classes=4, train_per_class=2, val_per_class=1, frames=8, size=32,
                              seed=3, workers=1)
