"""Progressive Enhancement Module (paper Sec. 3.2, eqs. 4-6).

For each frame t: d_t = f2(x_{t+1}) - f1(x_t) (d_T = ones), a memory
m_t = (1 - gamma_t) * m_{t-1} + gamma_t * d_t with gamma_t = sigmoid(W_g [m_{t-1} ; d_t]), and the
enhancement a_t = sigmoid(W_a m_t) that scales frame t's channels: U_t = X_t * a_t.

gamma_t is a vector gate (one value per reduced channel), the natural reading of W_g: 2C_r -> C_r
(spec.md). Only the gate recurrence is sequential: the reductions f1/f2, W_g's d-half and W_a run
on all frames at once, so the loop over T touches vectors of C_r values.

Initialisation: PyTorch's defaults, so a_t starts near 0.5. PEM acts on the residual branch only,
and that branch starts with conv1 -> BatchNorm, which in training cancels a (near) uniform channel
scale, so the ImageNet-pretrained branch sees the same normalised input as without PEM while every
PEM parameter gets a gradient from the first step (a zero-initialised W_a would block them).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tdrl.config.base import literal_values
from tdrl.config.model import ModelConfig
from tdrl.model.difference import FrameDifference, excite

MEMORY_INITS = literal_values(ModelConfig, "mem_init")  # ("last", "first", "zeros")


def initial_memory(d: torch.Tensor, mode: str) -> torch.Tensor:
    """m_0 from the differences ``d`` ``(N, T-1, C_r)``: d_{T-1}, d_1 or zeros."""
    if mode == "last":
        return d[:, -1]
    if mode == "first":
        return d[:, 0]
    if mode == "zeros":
        return torch.zeros_like(d[:, 0])
    raise ValueError(f"unknown memory initialisation {mode!r}; choose one of {', '.join(MEMORY_INITS)}")


class ProgressiveEnhancement(nn.Module):
    """PEM on ``(N*T, C, H, W)``; returns the enhanced features in the same layout."""

    def __init__(self, channels: int, frames: int, reduction: int = 16, mem_init: str = "last") -> None:
        super().__init__()
        if mem_init not in MEMORY_INITS:
            raise ValueError(f"unknown memory initialisation {mem_init!r}; choose one of {', '.join(MEMORY_INITS)}")
        self.frames = frames
        self.mem_init = mem_init
        self.diff = FrameDifference(channels, frames, reduction)
        cr = self.diff.reduced
        self.w_g = nn.Linear(2 * cr, cr)  # gate on [m_{t-1} ; d_t]
        self.w_a = nn.Linear(cr, channels)  # memory -> channel enhancement

    def enhancement(self, x: torch.Tensor) -> torch.Tensor:
        """The enhancement vectors a ``(N, T, C)`` for features ``x`` ``(N*T, C, H, W)``."""
        d = self.diff(x)  # (N, T-1, C_r)
        d = torch.cat([d, torch.ones_like(d[:, :1])], dim=1)  # d_T = 1: (N, T, C_r)
        cr = d.shape[-1]
        w_m, w_d = self.w_g.weight[:, :cr], self.w_g.weight[:, cr:]
        gate_d = nn.functional.linear(d, w_d, self.w_g.bias)  # the d-half of W_g for all t at once
        m = initial_memory(d[:, :-1], self.mem_init)  # (N, C_r)
        memories = []
        for t in range(self.frames):
            gamma = torch.sigmoid(gate_d[:, t] + nn.functional.linear(m, w_m))
            m = m + gamma * (d[:, t] - m)  # == (1 - gamma) * m + gamma * d_t
            memories.append(m)
        return torch.sigmoid(self.w_a(torch.stack(memories, dim=1)))  # (N, T, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return excite(x, self.enhancement(x))

    def enhancement_triton(self, x: torch.Tensor) -> torch.Tensor:
        """The enhancement vectors as ``(N*T, C)``, on the Triton path (``model.kernels``): pooling, the
        reductions, the whole gate recurrence and W_a as one operator (:mod:`tdrl.model.kernels.pem`)."""
        from tdrl.model.kernels.pem import enhancement  # Triton: on the Triton path only

        return enhancement(x, self)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, mem_init={self.mem_init!r}"
