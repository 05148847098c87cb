"""``tdrl::pem_enhance`` (PEM's enhancement with the gate recurrence over T in one launch), applied by
the excitation kernel, against the frame-by-frame PEM of tdrl/model/reference.py: float64 to 1e-12
for every memory initialisation and T in {2, 3, 8, 16} (output, the input's and every PEM
parameter's gradient), gradcheck, bf16 against float64, repeatable gradients; on the CPU (Triton's
interpreter) and CUDA."""

from __future__ import annotations

import copy

import pytest
import torch
from kernel_helpers import DEVICES, layout, rel

from tdrl.model.pem import ProgressiveEnhancement
from tdrl.model.reference import loop_pem

pem_op = pytest.importorskip("tdrl.model.kernels.pem")
excite_tim = pytest.importorskip("tdrl.model.kernels.excite_tim").excite_tim


def randomised_pem(channels: int, frames: int, mem_init: str, device: str) -> ProgressiveEnhancement:
    torch.manual_seed(frames)
    pem = ProgressiveEnhancement(channels, frames, reduction=4, mem_init=mem_init).double()
    for p in pem.parameters():  # away from the init, so every term of the recurrence matters
        torch.nn.init.normal_(p, std=0.5)
    return pem.to(device)


def pem_triton(pem: ProgressiveEnhancement, x: torch.Tensor) -> torch.Tensor:
    """PEM's output U = X * a with a from the Triton path, applied by the excitation kernel."""
    return excite_tim(x, pem.enhancement_triton(x), None, pem.frames)


def output_and_grads(fn, pem, x, g):
    pem.zero_grad(set_to_none=True)
    xs = x.detach().clone().requires_grad_()
    out = fn(xs)
    out.backward(g)
    return out.detach(), [xs.grad] + [p.grad for p in pem.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("frames,n", [(2, 2), (3, 2), (8, 1), (16, 1)])
@pytest.mark.parametrize("mem_init", ["last", "first", "zeros"])
def test_float64_matches_the_frame_loop(device, frames, n, mem_init):
    pem = randomised_pem(12, frames, mem_init, device)  # C_r = 3: not a power of two
    x = layout(torch.randn(n * frames, 12, 2, 3, dtype=torch.float64), frames % 2 == 0).to(device)
    g = torch.randn(n * frames, 12, 2, 3, dtype=torch.float64).to(device)
    out, got = output_and_grads(lambda v: pem_triton(pem, v), pem, x, g)
    ref, want = output_and_grads(lambda v: loop_pem(pem, v, frames, mem_init), pem, x, g)
    assert rel(out, ref) < 1e-12
    for i, (mine, theirs) in enumerate(zip(got, want)):
        assert rel(mine, theirs) < 1e-12, i


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    pem = randomised_pem(8, 3, "last", device)  # C_r = 2
    x = torch.randn(6, 8, 2, 2, dtype=torch.float64, device=device)
    args = tuple(v.detach().clone().requires_grad_() for v in (x, *pem.parameters()))

    def enhance(x_, w1, b1, w2, b2, wg, bg, wa, ba):
        return pem_op.pem_enhance(x_, w1, b1, w2, b2, wg, bg, wa, ba, 3, "last")[0]

    assert [n for n, _ in pem.named_parameters()] == ["diff.f1.0.weight", "diff.f1.0.bias", "diff.f2.0.weight",
                                                       "diff.f2.0.bias", "w_g.weight", "w_g.bias", "w_a.weight",
                                                       "w_a.bias"]
    assert torch.autograd.gradcheck(enhance, args, fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_within_1e2_of_float64(device):
    pem = randomised_pem(16, 4, "last", device)
    x = torch.randn(8, 16, 3, 3, dtype=torch.float64, device=device)
    g = torch.randn_like(x)
    ref, want = output_and_grads(lambda v: pem_triton(pem, v), pem, x, g)
    pem_f = copy.deepcopy(pem).float()
    with torch.autocast(device, torch.bfloat16):  # bf16 activations, float32 parameters
        out, got = output_and_grads(lambda v: pem_triton(pem_f, v), pem_f, layout(x.bfloat16(), True), g.bfloat16())
    assert out.dtype == torch.bfloat16
    assert rel(out, ref) < 1e-2
    assert all(rel(m, r) < 1e-2 for m, r in zip(got, want))


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_bitwise_repeatable(device):
    pem = randomised_pem(12, 3, "last", device).float()
    x, g = torch.randn(6, 12, 2, 2, device=device), torch.randn(6, 12, 2, 2, device=device)
    first = output_and_grads(lambda v: pem_triton(pem, v), pem, x, g)[1]
    second = output_and_grads(lambda v: pem_triton(pem, v), pem, x, g)[1]
    assert all(torch.equal(p, q) for p, q in zip(first, second))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_memory_init_is_named(device):
    pem = ProgressiveEnhancement(8, 2, 4).to(device)
    pem.mem_init = "middle"
    with pytest.raises(ValueError, match="memory initialisation 'middle'"):
        pem.enhancement_triton(torch.randn(4, 8, 2, 2, device=device))
