"""Temporal Interaction Module (TEINet): a channel-wise temporal convolution, kernel 3.

out[t, c] = w[c, 0] * x[t-1, c] + w[c, 1] * x[t, c] + w[c, 2] * x[t+1, c], zero outside the clip,
no bias: the same function as a depthwise ``Conv1d(C, C, 3, padding=1, groups=C)`` over time,
computed as a weighted sum of three shifted views of ``(N, T, C, H, W)``. That avoids the two
permute copies a Conv1d needs and keeps a channels_last input channels_last.

The weights start as a TSM shift (see :mod:`tdrl.model.temporal_shift`), so training begins at the
TSM baseline and the module learns from there.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def tsm_kernel(channels: int, shift_div: int = 8) -> torch.Tensor:
    """The ``(C, 3)`` kernel that makes the temporal conv equal a TSM shift."""
    w = torch.zeros(channels, 3)
    fold = channels // shift_div
    w[:fold, 2] = 1.0  # read t+1
    w[fold:2 * fold, 0] = 1.0  # read t-1
    w[2 * fold:, 1] = 1.0  # identity
    return w


def conv3(x5: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """``out[t] = k0 * x[t-1] + k1 * x[t] + k2 * x[t+1]`` on ``(N, T, C, H, W)``, zero outside the clip;
    the ``k`` are per channel, ``(C, 1, 1)``. Without autograd (in-place updates of a fresh tensor)."""
    out = x5 * k1  # keeps x5's strides: channels_last in, channels_last out
    out[:, 1:].addcmul_(x5[:, :-1], k0)  # addcmul: no temporary for the product
    out[:, :-1].addcmul_(x5[:, 1:], k2)
    return out


def _channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum(a * b)`` per channel of ``(N, T', C, H, W)`` tensors: ``(C,)``, accumulated in float32, or in
    float64 for float64 tensors (a float32 sum was off by ~1e-7 relative from Conv1d's gradient there).
    float32, bf16 and fp16 tensors keep the float32 sum, bit for bit as before."""
    return (a * b).sum(dim=(0, 1, 3, 4), dtype=torch.float64 if a.dtype == torch.float64 else torch.float32)


class _Conv3(torch.autograd.Function):
    """The temporal conv with a hand-written backward: the input's gradient is the same conv with the
    kernel reversed in time, the kernel's gradient three per-channel dot products (float32 sums,
    float64 for float64 tensors).
    Autograd of the in-place slice updates cloned the whole gradient once per update instead."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
        nt, c, h, w = x.shape
        x5 = x.view(nt // frames, frames, c, h, w)  # (N, T, C, H, W); same strides, so channels_last stays
        k = weight.to(x.dtype).view(c, 3, 1, 1)
        ctx.save_for_backward(x, weight)
        ctx.frames = frames
        return conv3(x5, k[:, 0], k[:, 1], k[:, 2]).view(nt, c, h, w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        nt, c, h, w = x.shape
        x5 = x.view(nt // ctx.frames, ctx.frames, c, h, w)
        g5 = g.view(nt // ctx.frames, ctx.frames, c, h, w)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            k = weight.to(g.dtype).view(c, 3, 1, 1)
            # d out[t] / d x[s]: k1 at t = s, k0 at t = s + 1, k2 at t = s - 1: the conv with k2, k1, k0.
            gx = conv3(g5, k[:, 2], k[:, 1], k[:, 0]).view(nt, c, h, w)
        if ctx.needs_input_grad[1]:
            gw = torch.stack([_channel_dot(g5[:, 1:], x5[:, :-1]), _channel_dot(g5, x5),
                              _channel_dot(g5[:, :-1], x5[:, 1:])], dim=1).to(weight.dtype)  # (C, 3)
        return gx, gw, None


def temporal_conv3(x: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
    """Channel-wise temporal conv of ``x`` ``(N*T, C, H, W)`` with ``weight`` ``(C, 3)``; same layout out."""
    return _Conv3.apply(x, weight, frames)


class TemporalInteraction(nn.Module):
    """Learnable channel-wise temporal conv, initialised as a TSM shift. Weight: ``(C, 3)``."""

    def __init__(self, channels: int, frames: int, shift_div: int = 8) -> None:
        super().__init__()
        self.frames = frames
        self.weight = nn.Parameter(tsm_kernel(channels, shift_div))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_conv3(x, self.weight, self.frames)

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}, frames={self.frames}"
