"""PEM and MEM against step-by-step references of the paper's equations 4-6."""

import pytest
import torch

from tdrl.model.mem import MotionEnhancement
from tdrl.model.pem import ProgressiveEnhancement


def pem_reference(pem: ProgressiveEnhancement, x: torch.Tensor) -> torch.Tensor:
    """Eqs. 4-6 one clip and one frame at a time, with the paper's names."""
    t_len = pem.frames
    n = x.shape[0] // t_len
    out = torch.empty_like(x)
    f1, f2, w_g, w_a = pem.diff.f1, pem.diff.f2, pem.w_g, pem.w_a
    for b in range(n):
        frames = [x[b * t_len + t] for t in range(t_len)]
        xs = [f.mean(dim=(1, 2)) for f in frames]  # GAP: x_t, length C
        d = [f2(xs[t + 1]) - f1(xs[t]) for t in range(t_len - 1)]  # eq. 4
        d.append(torch.ones_like(d[0]))  # d_T = 1
        if pem.mem_init == "last":
            m = d[t_len - 2]  # d_{T-1}
        elif pem.mem_init == "first":
            m = d[0]
        else:
            m = torch.zeros_like(d[0])
        for t in range(t_len):
            gamma = torch.sigmoid(w_g(torch.cat([m, d[t]])))  # eq. 5
            m = (1 - gamma) * m + gamma * d[t]
            a = torch.sigmoid(w_a(m))  # eq. 6
            out[b * t_len + t] = frames[t] * a[:, None, None]
    return out


def mem_reference(mem: MotionEnhancement, x: torch.Tensor) -> torch.Tensor:
    t_len = mem.frames
    out = x.clone()
    for b in range(x.shape[0] // t_len):
        xs = [x[b * t_len + t].mean(dim=(1, 2)) for t in range(t_len)]
        for t in range(t_len - 1):
            a = torch.sigmoid(mem.w_a(mem.diff.f2(xs[t + 1]) - mem.diff.f1(xs[t])))
            out[b * t_len + t] = x[b * t_len + t] * a[:, None, None]
    return out


@pytest.mark.parametrize("mem_init", ["last", "first", "zeros"])
@pytest.mark.parametrize("t", [2, 5])
def test_pem_matches_equations(mem_init, t):
    torch.manual_seed(t)
    pem = ProgressiveEnhancement(channels=32, frames=t, reduction=4, mem_init=mem_init)
    for p in pem.parameters():  # move away from the init so every term matters
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(3 * t, 32, 4, 5)
    with torch.no_grad():
        assert torch.allclose(pem(x), pem_reference(pem, x), atol=1e-5, rtol=1e-5)


def test_memory_init_changes_output():
    torch.manual_seed(0)
    x = torch.randn(8, 16, 3, 3)
    outs = []
    for init in ("last", "first", "zeros"):
        torch.manual_seed(1)
        pem = ProgressiveEnhancement(16, 4, 4, init)
        for p in pem.parameters():
            torch.nn.init.normal_(p, std=0.5)
        outs.append(pem(x))
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_pem_keeps_channels_last():
    pem = ProgressiveEnhancement(16, 4, 4)
    x = torch.randn(8, 16, 5, 5).contiguous(memory_format=torch.channels_last)
    y = pem(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, pem(x.contiguous()), atol=1e-6)


def test_mem_matches_equations():
    torch.manual_seed(3)
    mem = MotionEnhancement(channels=24, frames=4, reduction=4)
    for p in mem.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(8, 24, 3, 4)
    with torch.no_grad():
        y = mem(x)
        assert torch.allclose(y, mem_reference(mem, x), atol=1e-5)
        assert torch.equal(y[3], x[3]) and torch.equal(y[7], x[7])  # a_T = 1
