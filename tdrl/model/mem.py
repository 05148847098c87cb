"""Motion Enhancement Module (TEINet, Liu et al., AAAI 2020), the enhancement PEM is compared with.

a_t = sigmoid(W(f2(x_{t+1}) - f1(x_t))) for t < T and a_T = 1; U_t = X_t * a_t. Unlike PEM there
is no memory: each frame's enhancement sees only the next frame.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tdrl.model.difference import FrameDifference, excite


class MotionEnhancement(nn.Module):
    """MEM on ``(N*T, C, H, W)``; returns the enhanced features in the same layout."""

    def __init__(self, channels: int, frames: int, reduction: int = 16) -> None:
        super().__init__()
        self.frames = frames
        self.diff = FrameDifference(channels, frames, reduction)
        self.w_a = nn.Linear(self.diff.reduced, channels)

    def enhancement(self, x: torch.Tensor) -> torch.Tensor:
        """The enhancement vectors a ``(N, T, C)``; the last frame's is all ones."""
        return self._with_last(torch.sigmoid(self.w_a(self.diff(x))))  # (N, T-1, C) -> (N, T, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return excite(x, self.enhancement(x))

    def enhancement_triton(self, x: torch.Tensor) -> torch.Tensor:
        """The enhancement vectors as ``(N*T, C)`` for the Triton path (``model.kernels``): the same maps,
        with the pooling of :mod:`tdrl.model.kernels.pool`."""
        from tdrl.model.kernels.pool import frame_mean  # Triton: on the Triton path only

        nt, c = x.shape[:2]
        return self._with_last(torch.sigmoid(self.w_a(self.diff.from_pooled(frame_mean(x))))).reshape(nt, c)

    @staticmethod
    def _with_last(a: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
