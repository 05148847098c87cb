"""Frame-difference vectors shared by PEM and MEM (paper eq. 4).

x_t is the global average pool of frame t's features (length C); f1 and f2 are 1x1 convs
(linear maps) C -> C/r with ReLU, and d_t = f2(x_{t+1}) - f1(x_t) for t = 1..T-1. Both maps run on
all frames in one batched call; there is no loop over time here.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FrameDifference(nn.Module):
    """``(N*T, C, H, W)`` features -> ``(N, T-1, C_r)`` differences of reduced frame descriptors."""

    def __init__(self, channels: int, frames: int, reduction: int = 16) -> None:
        super().__init__()
        self.frames = frames
        self.reduced = max(1, channels // reduction)
        self.f1 = nn.Sequential(nn.Linear(channels, self.reduced), nn.ReLU(inplace=True))
        self.f2 = nn.Sequential(nn.Linear(channels, self.reduced), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_pooled(x.mean(dim=(2, 3)))

    def from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """The differences from the frame descriptors ``(N*T, C)`` (global average pools)."""
        nt, c = pooled.shape
        pooled = pooled.view(nt // self.frames, self.frames, c)  # (N, T, C)
        return self.f2(pooled[:, 1:]) - self.f1(pooled[:, :-1])  # (N, T-1, C_r)


def excite(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Scale ``x`` ``(N*T, C, H, W)`` channel-wise by ``a`` ``(N, T, C)``."""
    nt, c = x.shape[:2]
    return x * a.reshape(nt, c, 1, 1).to(x.dtype)
