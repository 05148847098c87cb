"""Temporal Shift Module (Lin et al., ICCV 2019): a parameter-free exchange of channels in time.

Of the C channels, the first C/shift_div read frame t+1, the next C/shift_div read frame t-1 (zero
at the clip ends), the rest stay. Implemented on the 5-D view of the folded batch, so a
channels_last tensor is never permuted or copied into another layout.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def temporal_shift(x: torch.Tensor, frames: int, shift_div: int = 8) -> torch.Tensor:
    """Shift ``x`` of layout ``(N*T, C, H, W)`` in time; returns the same layout."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // frames, frames, c, h, w)  # (N, T, C, H, W)
    fold = c // shift_div
    out = torch.zeros_like(x5)
    out[:, :-1, :fold] = x5[:, 1:, :fold]  # read the next frame
    out[:, 1:, fold:2 * fold] = x5[:, :-1, fold:2 * fold]  # read the previous frame
    out[:, :, 2 * fold:] = x5[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


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
