"""PEM figure (paper Fig. 3): the channels shown are the top/bottom-k of the enhancement actually
computed for the clip, and the figure has one input row plus three rows per block, T columns."""

from __future__ import annotations

import pytest
import torch

from tdrl.viz.grid import DPI, save_figure, scale_row
from tdrl.viz.loading import load_model, read_clip
from tdrl.viz.pem import build_pem_figure, pem_results, pem_selection

from .conftest import save_tiny_checkpoint
from .helpers import axis_at, check_png, grid_shape


@pytest.fixture(scope="module")
def loaded(tiny_ckpt):
    return load_model(tiny_ckpt[0])


@pytest.fixture(scope="module")
def clip(loaded, real_frames_dir):
    return read_clip(real_frames_dir, loaded.model_cfg.frames, input_size=loaded.data_cfg.input_size,
                     short_side=loaded.data_cfg.short_side)


def _hook_enhance(module):
    """An independent capture of PEM's input and output (not the viz package's hook helper)."""
    seen = {}

    def hook(_m, args, out):
        seen["x"], seen["out"] = args[0].detach().clone(), out.detach().clone()
    return seen, module.register_forward_hook(hook)


@pytest.mark.parametrize("block, index", [("layer1.0", ("layer1", 0)), ("layer3.-1", ("layer3", -1))])
def test_selected_channels_are_topk_of_the_computed_enhancement(loaded, clip, block, index):
    model = loaded.model
    pem = getattr(model, index[0])[index[1]].enhance
    seen, handle = _hook_enhance(pem)
    try:
        with torch.no_grad():
            model(clip.clip)
    finally:
        handle.remove()
    a_ref = pem.enhancement(seen["x"]).detach()  # (1, T, C), recomputed from the hooked input
    t, c = a_ref.shape[1:]
    # The a recomputed here is the one the forward applied: PEM's output is x scaled by it.
    torch.testing.assert_close(seen["out"], seen["x"] * a_ref.reshape(t, c, 1, 1))

    (res,) = pem_results(model, clip.clip, [block], k=10)
    torch.testing.assert_close(res.x, seen["x"])
    torch.testing.assert_close(res.selection.a, a_ref)
    k = min(10, c)
    assert res.selection.top.shape == (1, t, k) and res.selection.bottom.shape == (1, t, k)
    top_ref = torch.topk(a_ref, k, dim=-1).indices
    bottom_ref = torch.topk(a_ref, k, dim=-1, largest=False).indices
    for f in range(t):  # compare as sets per frame: ties could order equal values differently
        assert set(res.selection.top[0, f].tolist()) == set(top_ref[0, f].tolist())
        assert set(res.selection.bottom[0, f].tolist()) == set(bottom_ref[0, f].tolist())
        # and they really are extreme: every chosen top value >= every unchosen one
        chosen = a_ref[0, f, res.selection.top[0, f]]
        rest = a_ref[0, f][~torch.isin(torch.arange(c), res.selection.top[0, f])]
        if rest.numel():
            assert chosen.min() >= rest.max()


def test_pem_selection_is_pure_and_clamps_k():
    from tdrl.model.pem import ProgressiveEnhancement

    torch.manual_seed(0)
    pem = ProgressiveEnhancement(channels=12, frames=3, reduction=4).eval()
    x = torch.randn(2 * 3, 12, 5, 5)  # (N*T, C, H, W), N=2
    sel = pem_selection(pem, x, k=20)
    assert sel.a.shape == (2, 3, 12)
    assert sel.top.shape == (2, 3, 12)  # k lowered to C
    sel = pem_selection(pem, x, k=4)
    torch.testing.assert_close(sel.a, pem.enhancement(x))
    assert torch.equal(sel.top, torch.topk(sel.a, 4, dim=-1).indices)
    assert torch.equal(sel.bottom, torch.topk(sel.a, 4, dim=-1, largest=False).indices)


def test_figure_layout_and_rows_show_the_chosen_channels(loaded, clip, tmp_path):
    results = pem_results(loaded.model, clip.clip, ["layer1.0", "layer2.-1"], k=10)
    fig = build_pem_figure(clip.frames, results, title="t")
    t = loaded.model_cfg.frames
    assert grid_shape(fig) == (1 + 3 * 2, t)
    # Row 0 is the picture of the input; row 2 (block 1's top-k) is, frame by frame, the mean of
    # exactly the chosen channels (same row scaling), computed here with plain indexing.
    assert axis_at(fig, 0, 0).get_images()[0].get_array().shape == clip.frames[0].shape
    res = results[0]
    top_maps = torch.stack([res.x[f, res.selection.top[0, f]].mean(0) for f in range(t)])
    bottom_maps = torch.stack([res.x[f, res.selection.bottom[0, f]].mean(0) for f in range(t)])
    for row, maps in ((2, top_maps), (3, bottom_maps)):
        want = scale_row(maps)
        for f in range(t):
            got = axis_at(fig, row, f).get_images()[0].get_array()
            assert got.shape == want[f].shape
            assert abs(got - want[f]).max() < 1e-5
    rgb = axis_at(fig, 1, 0).get_images()[0].get_array()
    assert rgb.shape[-1] == 3
    out = save_figure(fig, tmp_path / "pem.png")
    check_png(out, fig, DPI)


def test_block_without_pem_is_refused(tmp_path, clip):
    path, _ = save_tiny_checkpoint(tmp_path, seed=2, enhance="none")
    with pytest.raises(ValueError, match="no PEM"):
        pem_results(load_model(path).model, clip.clip, ["layer1.0"])
    with pytest.raises(ValueError, match="layer1 has 2 blocks"):
        pem_results(load_model(path).model, clip.clip, ["layer1.5"])
