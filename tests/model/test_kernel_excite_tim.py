"""``tdrl::excite_tim`` (PEM's excitation fused with TIM/TSM) against the straightforward references,
in Triton's interpreter: float64 to 1e-12 (output and every gradient), gradcheck, bf16 against
float64, both memory formats, T in {2, 3, 8, 16}, sizes that are not tile multiples, the TSM shift
and TIM at its TSM initialisation exactly, bitwise-repeatable gradients."""

from __future__ import annotations

import contextlib

import pytest
import torch
from kernel_helpers import layout, needs_interpreter, rel, small_tiles

from tdrl.model.reference import conv1d_tim, shift_tsm
from tdrl.model.temporal_shift import temporal_shift
from tdrl.model.tim import tsm_kernel

pytestmark = needs_interpreter
excite_tim = pytest.importorskip("tdrl.model.kernels.excite_tim").excite_tim


def reference(x, a, k, frames):
    """Excitation as a broadcast product, then TIM as the reference's depthwise Conv1d."""
    u = x * a[:, :, None, None] if a is not None else x
    return conv1d_tim(k, u, frames) if k is not None else u


def inputs(n, t, c, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * t, c, h, w, generator=g, dtype=dtype)
    a = torch.rand(n * t, c, generator=g, dtype=dtype) + 0.5
    k = torch.randn(c, 3, generator=g, dtype=dtype)
    out_grad = torch.randn(n * t, c, h, w, generator=g, dtype=dtype)
    return x, a, k, out_grad


def grads(fn, tensors, out_grad):
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    out = fn(*leaves)
    got = torch.autograd.grad(out, [t for t in leaves if t is not None], out_grad)
    return out.detach(), got


# T, C, H, W and tiles: C and H*W are never multiples of the tiles; the small tiles split both.
CASES = [(2, 5, 3, 5, None), (3, 6, 2, 7, (4, 8)), (8, 3, 3, 3, None), (16, 5, 2, 3, (4, 4))]


@pytest.mark.parametrize("t,c,h,w,tile", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_float64_output_and_gradients_match_conv1d_reference(t, c, h, w, tile, channels_last):
    x, a, k, g = inputs(2 if t < 8 else 1, t, c, h, w, seed=t)
    x, g = layout(x, channels_last), layout(g, not channels_last)  # the gradient in the other format
    with small_tiles(*tile) if tile else contextlib.nullcontext():
        out, got = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, t), (x, a, k), g)
    ref, want = grads(lambda x_, a_, k_: reference(x_, a_, k_, t), (x, a, k), g)
    assert rel(out, ref) < 1e-12
    for name, mine, theirs in zip("xak", got, want):
        assert rel(mine, theirs) < 1e-12, name
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last  # x's memory format
    assert got[0].is_contiguous(memory_format=torch.channels_last) == channels_last


def test_excitation_alone_and_temporal_conv_alone():
    x, a, k, g = inputs(2, 3, 4, 2, 3)
    for a_, k_ in ((a, None), (None, k)):
        out, got = grads(lambda x1, *rest: excite_tim(x1, *_fill(rest, a_, k_), 3),
                         [x] + [v for v in (a_, k_) if v is not None], g)
        ref, want = grads(lambda x1, *rest: reference(x1, *_fill(rest, a_, k_), 3),
                          [x] + [v for v in (a_, k_) if v is not None], g)
        assert rel(out, ref) < 1e-12 and all(rel(m, r) < 1e-12 for m, r in zip(got, want))


def _fill(rest, a, k):
    """Put the given tensors back in (a, k) order, None where absent."""
    it = iter(rest)
    return (next(it) if a is not None else None), (next(it) if k is not None else None)


@pytest.mark.parametrize("channels_last", [False, True])
def test_tsm_shift_and_tim_at_its_init_equal_the_shift_exactly(channels_last):
    t, c = 4, 17  # fold 2: channels 0-1 read t+1, 2-3 read t-1
    x = layout(torch.randn(2 * t, c, 3, 2), channels_last)
    g = torch.randn(2 * t, c, 3, 2)
    for kw in (dict(k=None, shift_fold=c // 8), dict(k=tsm_kernel(c, 8), shift_fold=-1)):
        xs = x.clone().requires_grad_()
        out = excite_tim(xs, None, kw["k"], t, kw["shift_fold"])
        assert torch.equal(out, temporal_shift(x, t, 8)) and torch.equal(out, shift_tsm(x, t, 8))
        (gx,) = torch.autograd.grad(out, xs, g)
        xr = x.clone().requires_grad_()
        assert torch.equal(gx, torch.autograd.grad(temporal_shift(xr, t, 8), xr, g)[0])
    # the excitation before the shift is the excitation of the shifted frames' inputs, exactly
    a = torch.rand(2 * t, c)
    assert torch.equal(excite_tim(x, a, None, t, c // 8), temporal_shift(x * a[:, :, None, None], t, 8))


def test_gradcheck():
    x, a, k, _ = inputs(1, 3, 3, 2, 2)
    args = tuple(v.requires_grad_() for v in (x, a, k))
    assert torch.autograd.gradcheck(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), args, fast_mode=True)


def test_bf16_within_1e2_of_float64():
    x, a, k, g = inputs(2, 4, 8, 3, 3, seed=5)
    ref, want = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 4), (x, a, k), g)
    xb = layout(x.bfloat16(), True)
    out, got = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 4), (xb, a.float(), k.float()), g.bfloat16())
    assert out.dtype == torch.bfloat16 and got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32
    assert rel(out, ref) < 1e-2 and all(rel(m, r) < 1e-2 for m, r in zip(got, want))


def test_gradients_are_bitwise_repeatable():
    x, a, k, g = inputs(2, 3, 6, 3, 4, dtype=torch.float32, seed=7)
    with small_tiles(4, 4):  # partial sums from several programs per channel
        first = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), (x, a, k), g)[1]
        second = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), (x, a, k), g)[1]
    assert all(torch.equal(p, q) for p, q in zip(first, second))


def test_bad_arguments_name_what_is_wrong():
    x = torch.randn(6, 4, 2, 2)
    with pytest.raises(ValueError, match="multiple of T=4"):
        excite_tim(x, None, torch.zeros(4, 3), 4)
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        excite_tim(x, None, torch.zeros(5, 3), 3)
    with pytest.raises(ValueError, match="not both"):
        excite_tim(x, None, torch.zeros(4, 3), 3, 1)
