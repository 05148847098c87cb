"""``tdrl::excite_tim`` (PEM's excitation fused with TIM/TSM) against the straightforward references:
float64 to 1e-12 (output and every gradient), gradcheck, bf16 against float64, both memory formats,
T in {2, 3, 8, 16}, sizes that are not tile multiples, the TSM shift and TIM at its TSM
initialisation exactly, bitwise-repeatable gradients; on the CPU (Triton's interpreter) and CUDA."""

from __future__ import annotations

import contextlib

import pytest
import torch
from kernel_helpers import DEVICES, layout, rel, small_tiles

from tdrl.model.reference import conv1d_tim, shift_tsm
from tdrl.model.temporal_shift import temporal_shift
from tdrl.model.tim import tsm_kernel

excite_tim = pytest.importorskip("tdrl.model.kernels.excite_tim").excite_tim


def reference(x, a, k, frames):
    """Excitation as a broadcast product, then TIM as the reference's depthwise Conv1d."""
    u = x * a[:, :, None, None] if a is not None else x
    return conv1d_tim(k, u, frames) if k is not None else u


def inputs(n, t, c, h, w, device, dtype=torch.float64, seed=0):
    """``x`` (N*T, C, H, W), an excitation ``a`` (N*T, C) in [0.5, 1.5), a kernel ``k`` (C, 3), an output gradient."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * t, c, h, w, generator=g, dtype=dtype)
    a = torch.rand(n * t, c, generator=g, dtype=dtype) + 0.5
    k = torch.randn(c, 3, generator=g, dtype=dtype)
    out_grad = torch.randn(n * t, c, h, w, generator=g, dtype=dtype)
    return x.to(device), a.to(device), k.to(device), out_grad.to(device)


def grads(fn, tensors, out_grad):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves, out_grad)


# T, C, H, W and tiles: C and H*W are never multiples of the tiles; the small tiles split both.
CASES = [(2, 5, 3, 5, None), (3, 6, 2, 7, (4, 8)), (8, 3, 3, 3, None), (16, 5, 2, 3, (4, 4))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t,c,h,w,tile", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_float64_output_and_gradients_match_conv1d_reference(device, t, c, h, w, tile, channels_last):
    x, a, k, g = inputs(2 if t < 8 else 1, t, c, h, w, device, seed=t)
    x, g = layout(x, channels_last), layout(g, not channels_last)  # the gradient in the other format
    with small_tiles(*tile) if tile else contextlib.nullcontext():
        out, got = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, t), (x, a, k), g)
    ref, want = grads(lambda x_, a_, k_: reference(x_, a_, k_, t), (x, a, k), g)
    assert rel(out, ref) < 1e-12
    for name, mine, theirs in zip("xak", got, want):
        assert rel(mine, theirs) < 1e-12, name
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last  # x's memory format
    assert got[0].is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("device", DEVICES)
def test_excitation_alone_and_temporal_conv_alone(device):
    x, a, k, g = inputs(2, 3, 4, 2, 3, device)
    out, got = grads(lambda x_, a_: excite_tim(x_, a_, None, 3), (x, a), g)
    ref, want = grads(lambda x_, a_: reference(x_, a_, None, 3), (x, a), g)
    assert rel(out, ref) < 1e-12 and all(rel(m, r) < 1e-12 for m, r in zip(got, want))
    out, got = grads(lambda x_, k_: excite_tim(x_, None, k_, 3), (x, k), g)
    ref, want = grads(lambda x_, k_: reference(x_, None, k_, 3), (x, k), g)
    assert rel(out, ref) < 1e-12 and all(rel(m, r) < 1e-12 for m, r in zip(got, want))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_tsm_shift_and_tim_at_its_init_equal_the_shift_exactly(device, channels_last):
    t, c = 4, 17  # fold 2: channels 0-1 read t+1, 2-3 read t-1
    x = layout(torch.randn(2 * t, c, 3, 2), channels_last).to(device)
    g = torch.randn(2 * t, c, 3, 2).to(device)
    for k, fold in ((None, c // 8), (tsm_kernel(c, 8).to(device), -1)):
        out, (gx,) = grads(lambda x_: excite_tim(x_, None, k, t, fold), (x,), g)
        assert torch.equal(out, temporal_shift(x, t, 8)) and torch.equal(out, shift_tsm(x, t, 8))
        assert torch.equal(gx, grads(lambda x_: temporal_shift(x_, t, 8), (x,), g)[1][0])
    # the excitation before the shift is the shift of the excited frames, exactly
    a = torch.rand(2 * t, c).to(device)
    assert torch.equal(excite_tim(x, a, None, t, c // 8), temporal_shift(x * a[:, :, None, None], t, 8))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    x, a, k, _ = inputs(1, 3, 3, 2, 2, device)
    args = tuple(v.requires_grad_() for v in (x, a, k))
    assert torch.autograd.gradcheck(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), args, fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_within_1e2_of_float64(device):
    x, a, k, g = inputs(2, 4, 8, 3, 3, device, seed=5)
    ref, want = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 4), (x, a, k), g)
    xb = layout(x.bfloat16(), True)
    out, got = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 4), (xb, a.float(), k.float()), g.bfloat16())
    assert out.dtype == torch.bfloat16 and got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32
    assert rel(out, ref) < 1e-2 and all(rel(m, r) < 1e-2 for m, r in zip(got, want))


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_bitwise_repeatable(device):
    x, a, k, g = inputs(2, 3, 6, 3, 4, device, dtype=torch.float32, seed=7)
    with small_tiles(4, 4):  # partial sums from several programs per channel
        first = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), (x, a, k), g)[1]
        second = grads(lambda x_, a_, k_: excite_tim(x_, a_, k_, 3), (x, a, k), g)[1]
    assert all(torch.equal(p, q) for p, q in zip(first, second))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_arguments_name_what_is_wrong(device):
    x = torch.randn(6, 4, 2, 2, device=device)
    with pytest.raises(ValueError, match="multiple of T=4"):
        excite_tim(x, None, torch.zeros(4, 3, device=device), 4)
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        excite_tim(x, None, torch.zeros(5, 3, device=device), 3)
    with pytest.raises(ValueError, match="not both"):
        excite_tim(x, None, torch.zeros(4, 3, device=device), 3, 1)
