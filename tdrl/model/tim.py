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


def temporal_conv3(x: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
    """Channel-wise temporal conv of ``x`` ``(N*T, C, H, W)`` with ``weight`` ``(C, 3)``."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // frames, frames, c, h, w)  # (N, T, C, H, W)
    k = weight.to(x.dtype).view(c, 3, 1, 1)
    out = x5 * k[:, 1]
    # In-place adds on slices of a fresh tensor: mul's backward needs its inputs, not its output.
    out[:, 1:].addcmul_(x5[:, :-1], k[:, 0])  # addcmul: no temporary for the product
    out[:, :-1].addcmul_(x5[:, 1:], k[:, 2])
    return out.view(nt, c, h, w)


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
