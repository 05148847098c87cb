"""``tdrl::td_loss`` (the TD loss in one pass over Z) against the T x T cosine matrix of
tdrl/model/reference.py: float64 to 1e-12 (value and gradient, all-zero maps included), T in
{2, 3, 8, 16}, both memory formats, fewer regularised channels than C, gradcheck, bf16 against
float64, repeatable gradients; on the CPU (Triton's interpreter) and CUDA."""

from __future__ import annotations

import pytest
import torch
from kernel_helpers import DEVICES, layout, rel, small_tiles

from tdrl.model.reference import cosine_td
from tdrl.model.td_loss import temporal_diversity as td_eager

td = pytest.importorskip("tdrl.model.kernels.td")


def value_and_grad(fn, z):
    zs = z.detach().clone().requires_grad_()
    out = fn(zs)
    (g,) = torch.autograd.grad(out, zs)
    return out.detach(), g


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("frames,n,channels_last", [(2, 3, False), (3, 2, True), (8, 1, False), (16, 1, True)])
def test_float64_matches_cosine_matrix(device, frames, n, channels_last):
    torch.manual_seed(frames)
    z = torch.randn(n * frames, 7, 3, 5, dtype=torch.float64)
    z[0, 1] = 0.0  # an all-zero map: cosine 0, finite gradient
    z = layout(z, channels_last).to(device)
    with small_tiles(4, 8):  # 5 regularised channels over two channel tiles, 15 positions over two tiles
        out, got = value_and_grad(lambda v: td.temporal_diversity(v, frames, 5), z)
    ref, want = value_and_grad(lambda v: cosine_td(v, frames, 5), z)
    assert out.dtype == torch.float64 and rel(out, ref) < 1e-12
    assert rel(got, want) < 1e-12
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert got[:, 5:].abs().max() == 0  # channels beyond the regularised ones get no gradient


@pytest.mark.parametrize("device", DEVICES)
def test_agrees_with_the_eager_loss_in_float32(device):
    torch.manual_seed(1)
    z = torch.randn(8, 6, 4, 4, device=device)
    out, got = value_and_grad(lambda v: td.temporal_diversity(v, 4, 3), z)
    ref, want = value_and_grad(lambda v: td_eager(v, 4, 3), z)
    assert out.dtype == torch.float32 and rel(out, ref) < 1e-5 and rel(got, want) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    torch.manual_seed(2)
    z = torch.randn(6, 3, 2, 2, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: td.temporal_diversity(v, 3, 2), (z,), fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_within_1e2_of_float64(device):
    torch.manual_seed(3)
    z = torch.randn(8, 8, 3, 3, dtype=torch.float64, device=device)
    ref, want = value_and_grad(lambda v: td.temporal_diversity(v, 4, 4), z)
    out, got = value_and_grad(lambda v: td.temporal_diversity(v, 4, 4), layout(z.bfloat16(), True))
    assert out.dtype == torch.float32 and got.dtype == torch.bfloat16  # summed in float32, no float32 copy
    assert rel(out, ref) < 1e-2 and rel(got, want) < 1e-2


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_bitwise_repeatable(device):
    torch.manual_seed(4)
    z = torch.randn(6, 5, 3, 3, device=device)
    with small_tiles(2, 4):
        first = value_and_grad(lambda v: td.temporal_diversity(v, 3, 4), z)
        second = value_and_grad(lambda v: td.temporal_diversity(v, 3, 4), z)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
