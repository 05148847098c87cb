"""TSM and TIM against loop references; TIM at initialisation is exactly the TSM shift."""

import pytest
import torch
import torch.nn.functional as F

from tdrl.model.temporal_shift import temporal_shift
from tdrl.model.tim import TemporalInteraction, temporal_conv3, tsm_kernel


def shift_reference(x: torch.Tensor, t_len: int, div: int) -> torch.Tensor:
    n = x.shape[0] // t_len
    c = x.shape[1]
    fold = c // div
    out = torch.zeros_like(x)
    for b in range(n):
        for t in range(t_len):
            for ch in range(c):
                src = t + 1 if ch < fold else (t - 1 if ch < 2 * fold else t)
                if 0 <= src < t_len:
                    out[b * t_len + t, ch] = x[b * t_len + src, ch]
    return out


def conv1d_reference(x: torch.Tensor, weight: torch.Tensor, t_len: int) -> torch.Tensor:
    """TIM the straightforward way: permute to (N*H*W, C, T) and run a depthwise Conv1d."""
    nt, c, h, w = x.shape
    seq = x.view(nt // t_len, t_len, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, t_len)
    out = F.conv1d(seq, weight.view(c, 1, 3), padding=1, groups=c)
    return out.view(nt // t_len, h, w, c, t_len).permute(0, 4, 3, 1, 2).reshape(nt, c, h, w)


@pytest.mark.parametrize("t,c,div", [(4, 16, 8), (3, 10, 4), (8, 9, 8)])
def test_shift_matches_loop(t, c, div):
    x = torch.randn(2 * t, c, 3, 2)
    assert torch.equal(temporal_shift(x, t, div), shift_reference(x, t, div))


@pytest.mark.parametrize("t,c", [(4, 16), (8, 24), (2, 8)])
def test_tim_init_is_tsm_exactly(t, c):
    tim = TemporalInteraction(c, t, 8)
    x = torch.randn(3 * t, c, 4, 4)
    assert torch.equal(tim(x), temporal_shift(x, t, 8))


def test_tim_matches_conv1d_on_random_weights():
    torch.manual_seed(0)
    x = torch.randn(2 * 5, 12, 3, 4)
    w = torch.randn(12, 3)
    assert torch.allclose(temporal_conv3(x, w, 5), conv1d_reference(x, w, 5), atol=1e-5)


def test_tim_gradients_match_conv1d():
    torch.manual_seed(1)
    x1 = torch.randn(8, 6, 3, 3, requires_grad=True)
    w1 = torch.randn(6, 3, requires_grad=True)
    x2, w2 = x1.detach().clone().requires_grad_(), w1.detach().clone().requires_grad_()
    g = torch.randn(8, 6, 3, 3)
    (temporal_conv3(x1, w1, 4) * g).sum().backward()
    (conv1d_reference(x2, w2, 4) * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5) and torch.allclose(w1.grad, w2.grad, atol=1e-5)


def test_channels_last_stays_channels_last():
    x = torch.randn(8, 16, 5, 5).contiguous(memory_format=torch.channels_last)
    for y in (temporal_shift(x, 4), temporal_conv3(x, tsm_kernel(16), 4)):
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(y, temporal_shift(x.contiguous(), 4))
