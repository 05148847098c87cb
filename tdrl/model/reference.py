"""Straightforward implementations of PEM and TIM, the yardstick for the fast paths.

These are what a first implementation looks like (spec.md's "straightforward TDRL"): PEM runs its
linear maps inside a Python loop over frames, TIM is a depthwise ``Conv1d`` after permuting
``(N*T, C, H, W)`` to ``(N*H*W, C, T)`` and back. They share the fast modules' parameters, so
``straightforward(model)`` turns a TDRL network into the same function computed the slow way: the
benchmark times both and checks they agree before timing, and the tests compare them on random inputs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from tdrl.model.pem import ProgressiveEnhancement, initial_memory
from tdrl.model.tim import TemporalInteraction


class LoopPEM(nn.Module):
    """PEM frame by frame with the paper's names; parameters are the wrapped module's."""

    def __init__(self, pem: ProgressiveEnhancement) -> None:
        super().__init__()
        self.pem = pem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, t_len = self.pem, self.pem.frames
        nt, c = x.shape[:2]
        x5 = x.view(nt // t_len, t_len, *x.shape[1:])  # (N, T, C, H, W)
        pooled = [x5[:, t].mean(dim=(2, 3)) for t in range(t_len)]  # x_t: (N, C)
        d = [p.diff.f2(pooled[t + 1]) - p.diff.f1(pooled[t]) for t in range(t_len - 1)]
        d.append(torch.ones_like(d[0]))
        m = initial_memory(torch.stack(d[:-1], 1), p.mem_init)
        frames = []
        for t in range(t_len):
            gamma = torch.sigmoid(p.w_g(torch.cat([m, d[t]], dim=1)))
            m = (1 - gamma) * m + gamma * d[t]
            a = torch.sigmoid(p.w_a(m))  # (N, C)
            frames.append(x5[:, t] * a[:, :, None, None].to(x.dtype))
        return torch.stack(frames, 1).reshape(x.shape)


class Conv1dTIM(nn.Module):
    """TIM as a depthwise Conv1d over time after a permute; parameters are the wrapped module's."""

    def __init__(self, tim: TemporalInteraction) -> None:
        super().__init__()
        self.tim = tim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        t_len = self.tim.frames
        seq = x.view(nt // t_len, t_len, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, t_len)  # (N*H*W, C, T)
        out = F.conv1d(seq, self.tim.weight.to(x.dtype).view(c, 1, 3), padding=1, groups=c)
        return out.view(nt // t_len, h, w, c, t_len).permute(0, 4, 3, 1, 2).reshape(nt, c, h, w)


def straightforward(model: nn.Module) -> nn.Module:
    """``model`` with every PEM and TIM computed the straightforward way, sharing its parameters."""
    net = copy.copy(model)  # shallow copies all the way down: the same parameter tensors
    net._modules = dict(model._modules)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        blocks = []
        for block in getattr(net, stage):
            b = copy.copy(block)
            b._modules = dict(block._modules)
            if isinstance(b.enhance, ProgressiveEnhancement):
                b._modules["enhance"] = LoopPEM(b.enhance)
            if isinstance(b.temporal, TemporalInteraction):
                b._modules["temporal"] = Conv1dTIM(b.temporal)
            blocks.append(b)
        net._modules[stage] = nn.Sequential(*blocks)
    return net
