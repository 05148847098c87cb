"""Temporal Shift Module (Lin et al., ICCV 2019): a parameter-free exchange of channels in time.

Of the C channels, the first C/shift_div read frame t+1, the next C/shift_div read frame t-1 (zero
at the clip ends), the rest stay. Implemented on the 5-D view of the folded batch, so a
channels_last tensor is never permuted or copied into another layout.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def shift_into(dst: torch.Tensor, src: torch.Tensor, fold: int, direction: int) -> torch.Tensor:
    """``dst`` ``(N, T, C, H, W)`` = ``src`` shifted in time, without autograd: with ``direction`` +1 the
    first ``fold`` channels read frame t+1 and the next ``fold`` read t-1 (TSM); -1 is its adjoint
    (the opposite shifts), which is the gradient. Zeros enter at the clip ends."""
    ahead, behind = (slice(0, fold), slice(fold, 2 * fold)) if direction > 0 else (slice(fold, 2 * fold), slice(0, fold))
    dst[:, :-1, ahead].copy_(src[:, 1:, ahead])
    dst[:, -1:, ahead].zero_()
    dst[:, 1:, behind].copy_(src[:, :-1, behind])
    dst[:, :1, behind].zero_()
    dst[:, :, 2 * fold:].copy_(src[:, :, 2 * fold:])
    return dst


class _Shift(torch.autograd.Function):
    """The shift with its adjoint as the backward: one read and one write of the tensor each way.
    (Slice assignments under autograd cost a zero fill forward and a clone of the whole gradient per
    assignment backward; on a GPU, where this is memory-bound, that made TSM cost as much as ResNet-50.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor, frames: int, fold: int) -> torch.Tensor:
        nt, c, h, w = x.shape
        x5 = x.view(nt // frames, frames, c, h, w)  # (N, T, C, H, W); same strides, so channels_last stays
        ctx.frames, ctx.fold = frames, fold
        return shift_into(torch.empty_like(x5), x5, fold, +1).view(nt, c, h, w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        nt, c, h, w = g.shape
        g5 = g.view(nt // ctx.frames, ctx.frames, c, h, w)
        return shift_into(torch.empty_like(g5), g5, ctx.fold, -1).view(nt, c, h, w), None, None


def temporal_shift(x: torch.Tensor, frames: int, shift_div: int = 8) -> torch.Tensor:
    """Shift ``x`` of layout ``(N*T, C, H, W)`` in time; returns the same layout (and memory format)."""
    return _Shift.apply(x, frames, x.shape[1] // shift_div)


class TemporalShift(nn.Module):
    """Module form of :func:`temporal_shift` (no parameters)."""

    def __init__(self, frames: int, shift_div: int = 8) -> None:
        super().__init__()
        self.frames = frames
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.frames, self.shift_div)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, shift_div={self.shift_div}"
