"""Which frame indices make a clip: TSN segments over the whole video, or a Kinetics-style window.

All functions return int64 index arrays; randomness comes only from the ``numpy.random.Generator``
passed in, so a seeded generator gives exact, testable indices.

Segments (Something-Something, TSN): the video's ``n`` frames are cut into ``T`` equal segments
with real-valued boundaries ``i*n/T``; training takes a uniformly random frame of each segment,
evaluation the frame at the segment centre ``floor((i+0.5)*n/T)``. Real-valued boundaries cover
the whole video also when ``T`` does not divide ``n``. A video shorter than ``T`` gives segments
shorter than one frame, so frames repeat in temporal order (``[0,0,1,1,2,2,...]``): like TSN's
testing rule it keeps every clip at ``T`` frames, but unlike TSN's training fallback (all zeros)
it keeps the motion.

Window (Kinetics): ``T`` frames at stride ``window/T`` from a window of ``window`` (64)
consecutive frames whose start is uniformly random in training and centred in evaluation. A
video shorter than the window uses the whole video as the window (segments rule), so it also
handles videos shorter than ``T``.

Multi-clip evaluation: ``num_clips`` clips, clip ``c`` shifted by ``(c+0.5)/num_clips`` of a
segment (segments) or with window starts spread evenly over the video (window). One clip is the
single-clip centre rule.
"""

from __future__ import annotations

import numpy as np


def _check(num_frames: int, frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample from a video with {num_frames} frames")
    if frames < 1:
        raise ValueError(f"frames per clip must be >= 1, got {frames}")


def segment_indices(num_frames: int, frames: int, *, train: bool, rng: np.random.Generator | None = None,
                    num_clips: int = 1) -> np.ndarray:
    """TSN segment sampling -> ``(num_clips, frames)`` int64 (``num_clips`` must be 1 in training)."""
    _check(num_frames, frames)
    seg = num_frames / frames
    starts = np.floor(np.arange(frames) * seg).astype(np.int64)
    if train:
        if rng is None:
            raise ValueError("training sampling needs an rng")
        ends = np.floor((np.arange(frames) + 1) * seg).astype(np.int64)
        width = np.maximum(ends - starts, 1)
        # rng.integers with an array of highs draws one value per segment in a single call.
        return (starts + rng.integers(0, width))[None, :]
    shift = (np.arange(num_clips) + 0.5) / num_clips  # (num_clips,)
    idx = np.floor((np.arange(frames)[None, :] + shift[:, None]) * seg).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def window_indices(num_frames: int, frames: int, *, train: bool, window: int = 64,
                   rng: np.random.Generator | None = None, num_clips: int = 1) -> np.ndarray:
    """Kinetics sampling: ``frames`` at stride ``window/frames`` in a ``window``-frame window -> ``(num_clips, frames)``."""
    _check(num_frames, frames)
    if num_frames <= window:
        return segment_indices(num_frames, frames, train=train, rng=rng, num_clips=num_clips)
    offsets = np.floor(np.arange(frames) * (window / frames)).astype(np.int64)
    room = num_frames - window  # window starts 0..room keep the window inside the video
    if train:
        if rng is None:
            raise ValueError("training sampling needs an rng")
        starts = np.array([rng.integers(0, room + 1)])
    else:
        starts = np.floor((np.arange(num_clips) + 0.5) / num_clips * room + 0.5).astype(np.int64)
    return starts[:, None] + offsets[None, :]


def sample_indices(mode: str, num_frames: int, frames: int, *, train: bool, rng: np.random.Generator | None = None,
                   window: int = 64, num_clips: int = 1) -> np.ndarray:
    """Dispatch on ``mode`` ("segments" or "window") -> ``(num_clips, frames)`` int64."""
    if mode == "segments":
        return segment_indices(num_frames, frames, train=train, rng=rng, num_clips=num_clips)
    if mode == "window":
        return window_indices(num_frames, frames, train=train, window=window, rng=rng, num_clips=num_clips)
    raise ValueError(f"unknown sampling mode {mode!r}; choose segments or window")
