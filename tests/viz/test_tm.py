"""TM figure (paper Fig. 4): rows, the captured TM input/output, and the cosine numbers."""

from __future__ import annotations

import torch

from tdrl.model.td_loss import temporal_diversity
from tdrl.viz.grid import DPI, save_figure
from tdrl.viz.loading import load_model, read_clip
from tdrl.viz.tm import build_tm_figure, mean_pairwise_cosine, tm_result

from .helpers import axis_at, check_png, grid_shape


def test_cosine_matches_the_td_loss_per_channel():
    torch.manual_seed(0)
    z = torch.randn(5, 6, 4, 4)  # (T, C, H, W)
    z[:, 2] = 0  # an all-zero channel counts as 0, never NaN
    for channels in (1, 3, 6):
        want = float(temporal_diversity(z, 5, channels)) / channels
        assert abs(mean_pairwise_cosine(z, channels) - want) < 1e-5
    same = torch.rand(1, 3, 4, 4).expand(4, -1, -1, -1)  # identical frames: cosine 1
    assert abs(mean_pairwise_cosine(same, 3) - 1.0) < 1e-6


def test_tm_figure_rows_and_captured_tensors(tiny_ckpt, tiny_ckpt_no_td, real_frames_dir, tmp_path):
    a, b = load_model(tiny_ckpt[0]), load_model(tiny_ckpt_no_td[0])
    clip = read_clip(real_frames_dir, 4, input_size=a.data_cfg.input_size, short_side=a.data_cfg.short_side)
    ra = tm_result(a.model, clip.clip, label="w/ TD")
    rb = tm_result(b.model, clip.clip, label="w/o TD")
    # The captured output is TM applied to the captured input, and the block is the paper's layer2.-1.
    assert ra.block == "layer2.1"
    tm = a.model.layer2[-1].temporal
    with torch.no_grad():
        torch.testing.assert_close(ra.after, tm(ra.before))
    assert ra.channels == round(0.5 * ra.before.shape[1])
    # Model A's "after" cosine is its TD term for this clip at that block, per channel.
    td = float(temporal_diversity(ra.after, 4, ra.channels)) / ra.channels
    assert abs(ra.cos_after - td) < 1e-5

    fig = build_tm_figure(clip.frames, [ra, rb], title="tm")
    assert grid_shape(fig) == (1 + 2 * 2, 4)
    labels = [axis_at(fig, r, 0).get_ylabel() for r in range(5)]
    assert labels[0] == "input"
    assert f"cos={ra.cos_before:.3f}" in labels[1] and "before TM" in labels[1]
    assert f"cos={ra.cos_after:.3f}" in labels[2] and "after TM" in labels[2]
    assert "w/o TD" in labels[3] and f"cos={rb.cos_after:.3f}" in labels[4]
    check_png(save_figure(fig, tmp_path / "tm.png"), fig, DPI)
