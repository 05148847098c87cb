"""Helpers for the data tests, in a module of their own: several test folders have a ``conftest.py``,
so importing ``conftest`` by name picks whichever was imported first (``pytest tests/data
tests/reliability`` did not collect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
