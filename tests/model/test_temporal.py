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


# The shift and the temporal conv have hand-written backwards: checked against autograd through the
# loop / Conv1d references, against finite differences (gradcheck, float64), in both memory formats.

@pytest.mark.parametrize("channels_last", [False, True])
def test_shift_gradient_matches_loop_reference(channels_last):
    torch.manual_seed(2)
    x = torch.randn(2 * 4, 16, 3, 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(8, 16, 3, 2)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    (temporal_shift(x1, 4, 8) * g).sum().backward()
    (shift_reference(x2, 4, 8) * g).sum().backward()
    assert torch.equal(x1.grad, x2.grad)
    # the gradient of the first fold at the last frame, and of the second fold at frame 0, is zero
    assert x1.grad.view(2, 4, 16, 3, 2)[:, 0, :2].abs().sum() == 0 and x1.grad.view(2, 4, 16, 3, 2)[:, -1, 2:4].abs().sum() == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_tim_gradients_match_conv1d_in_both_layouts_and_precisions(channels_last):
    torch.manual_seed(3)
    x = torch.randn(3 * 4, 8, 5, 3)
    w = torch.randn(8, 3)
    g = torch.randn(12, 8, 5, 3)
    if channels_last:
        x, g = (v.contiguous(memory_format=torch.channels_last) for v in (x, g))
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    (conv1d_reference(x2, w2, 4) * g).sum().backward()
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    (temporal_conv3(x1, w1, 4) * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5) and torch.allclose(w1.grad, w2.grad, atol=1e-4)
    assert w1.grad.dtype == torch.float32
    # bf16 activations (autocast's conv outputs) with a float32 weight: the weight's gradient is float32,
    # summed in float32, close to the exact one
    xb = x.bfloat16().requires_grad_()
    wb = w.clone().requires_grad_()
    (temporal_conv3(xb, wb, 4).float() * g).sum().backward()
    assert xb.grad.dtype == torch.bfloat16 and wb.grad.dtype == torch.float32
    assert torch.allclose(wb.grad, w2.grad, rtol=2e-2, atol=0.2)


def test_temporal_ops_pass_gradcheck():
    torch.manual_seed(4)
    x = torch.randn(2 * 3, 8, 2, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: temporal_shift(v, 3, 4), (x,))
    assert torch.autograd.gradcheck(lambda v, k: temporal_conv3(v, k, 3), (x, w))
    # only the weight needs a gradient (a frozen input): the input's gradient is not computed
    w.grad = None
    temporal_conv3(x.detach(), w, 3).sum().backward()
    assert w.grad is not None and w.grad.shape == (8, 3)
