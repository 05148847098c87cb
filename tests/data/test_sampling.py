"""Sampling rules: exact indices for known lengths, train (seeded) and eval, short videos."""

from __future__ import annotations

import numpy as np
import pytest

from tdrl.data.sampling import sample_indices, segment_indices, window_indices


def test_segments_eval_centres() -> None:
    assert segment_indices(16, 8, train=False).tolist() == [[1, 3, 5, 7, 9, 11, 13, 15]]
    assert segment_indices(10, 4, train=False).tolist() == [[1, 3, 6, 8]]  # boundaries 0,2.5,5,7.5


def test_segments_short_video_repeats_in_order() -> None:
    assert segment_indices(3, 8, train=False).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]
    assert segment_indices(1, 4, train=False).tolist() == [[0, 0, 0, 0]]
    tr = segment_indices(3, 8, train=True, rng=np.random.default_rng(0))
    # Segment i starts at floor(i*3/8); segments shorter than a frame leave no choice.
    assert tr.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2]]


def test_segments_train_exact_with_seed_and_within_segments() -> None:
    idx = segment_indices(16, 4, train=True, rng=np.random.default_rng(0))
    # Reference: one draw per segment of width 4, same generator call.
    offs = np.random.default_rng(0).integers(0, np.array([4, 4, 4, 4]))
    assert idx.tolist() == [(np.arange(4) * 4 + offs).tolist()]
    for seed in range(50):
        i = segment_indices(37, 8, train=True, rng=np.random.default_rng(seed))[0]
        lo = np.floor(np.arange(8) * 37 / 8)
        hi = np.floor((np.arange(8) + 1) * 37 / 8)
        assert np.all(i >= lo) and np.all(i < hi)


def test_segments_multi_clip() -> None:
    assert segment_indices(12, 4, train=False, num_clips=3).tolist() == [[0, 3, 6, 9], [1, 4, 7, 10],
                                                                         [2, 5, 8, 11]]


def test_window_eval_and_train() -> None:
    # 300 frames, window 64, T=8: stride 8, centred start floor(236/2 + .5) = 118.
    assert window_indices(300, 8, train=False).tolist() == [[118 + 8 * k for k in range(8)]]
    start = np.random.default_rng(5).integers(0, 237)
    assert window_indices(300, 8, train=True, rng=np.random.default_rng(5)).tolist() == [
        [start + 8 * k for k in range(8)]]
    clips = window_indices(164, 4, train=False, num_clips=2)  # room 100: starts 25, 75; stride 16
    assert clips.tolist() == [[25, 41, 57, 73], [75, 91, 107, 123]]


def test_window_short_video_falls_back_to_segments() -> None:
    assert window_indices(40, 8, train=False).tolist() == segment_indices(40, 8, train=False).tolist()
    assert window_indices(5, 8, train=False).tolist() == [[0, 0, 1, 2, 2, 3, 4, 4]]  # floor((i+.5)*5/8)


def test_dispatch_and_errors() -> None:
    assert sample_indices("segments", 16, 8, train=False).shape == (1, 8)
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices("dense", 16, 8, train=False)
    with pytest.raises(ValueError, match="0 frames"):
        segment_indices(0, 8, train=False)
