"""The straightforward TDRL forward pass, the yardstick for the fast paths.

This is what a first implementation looks like (spec.md's "straightforward TDRL"): PEM and MEM run
their linear maps inside a Python loop over frames, TIM is a depthwise ``Conv1d`` after permuting
``(N*T, C, H, W)`` to ``(N*H*W, C, T)`` and back, TSM concatenates shifted slices, and the TD loss
forms the T x T cosine matrix of every regularised channel.

It is self-contained on purpose: it imports nothing from the fast modules (no helper of
``pem.py``, ``temporal_shift.py``, ``td_loss.py`` or ``block.py``), reads the network's choices
(positions, memory initialisation, TD blocks and ratio) from ``model.cfg`` rather than from the
wrapped blocks, and composes each block itself. Only the parameter tensors are shared, so
``straightforward(model)`` is the same function computed independently: a bug in a shared helper or
in the block wiring makes the two disagree. The benchmark times both and checks they agree before
timing; the tests compare them on random inputs for every configuration.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

STAGES = ("layer1", "layer2", "layer3", "layer4")
EPS = 1e-8  # spec.md: eps in the norm, so all-zero maps give a cosine of 0


def _pooled(x5: torch.Tensor, t: int) -> torch.Tensor:
    """x_t: the global average pool of frame ``t`` of ``(N, T, C, H, W)``, shape ``(N, C)``."""
    return x5[:, t].mean(dim=(2, 3))


def _reduce(seq: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """f1 or f2 of the paper: a linear map C -> C/r followed by ReLU, from the module's own weights."""
    lin = seq[0]
    return F.relu(F.linear(v, lin.weight, lin.bias))


def loop_pem(pem: nn.Module, x: torch.Tensor, frames: int, mem_init: str) -> torch.Tensor:
    """PEM (eqs. 4-6) frame by frame with the paper's names; ``mem_init`` from the configuration."""
    nt = x.shape[0]
    x5 = x.view(nt // frames, frames, *x.shape[1:])  # (N, T, C, H, W)
    xs = [_pooled(x5, t) for t in range(frames)]
    d = [_reduce(pem.diff.f2, xs[t + 1]) - _reduce(pem.diff.f1, xs[t]) for t in range(frames - 1)]  # eq. 4
    d.append(torch.ones_like(d[0]))  # d_T = 1
    if mem_init == "last":
        m = d[frames - 2]  # d_{T-1}
    elif mem_init == "first":
        m = d[0]  # d_1
    elif mem_init == "zeros":
        m = torch.zeros_like(d[0])
    else:
        raise ValueError(f"unknown memory initialisation {mem_init!r}")
    out = []
    for t in range(frames):
        gamma = torch.sigmoid(F.linear(torch.cat([m, d[t]], dim=1), pem.w_g.weight, pem.w_g.bias))  # eq. 5
        m = (1 - gamma) * m + gamma * d[t]
        a = torch.sigmoid(F.linear(m, pem.w_a.weight, pem.w_a.bias))  # eq. 6, (N, C)
        out.append(x5[:, t] * a[:, :, None, None].to(x.dtype))
    return torch.stack(out, 1).reshape(x.shape)


def loop_mem(mem: nn.Module, x: torch.Tensor, frames: int) -> torch.Tensor:
    """TEINet's MEM frame by frame: a_t = sigmoid(W(f2(x_{t+1}) - f1(x_t))), a_T = 1."""
    nt = x.shape[0]
    x5 = x.view(nt // frames, frames, *x.shape[1:])
    out = []
    for t in range(frames - 1):
        d = _reduce(mem.diff.f2, _pooled(x5, t + 1)) - _reduce(mem.diff.f1, _pooled(x5, t))
        a = torch.sigmoid(F.linear(d, mem.w_a.weight, mem.w_a.bias))
        out.append(x5[:, t] * a[:, :, None, None].to(x.dtype))
    out.append(x5[:, frames - 1])
    return torch.stack(out, 1).reshape(x.shape)


def conv1d_tim(weight: torch.Tensor, x: torch.Tensor, frames: int) -> torch.Tensor:
    """TIM as a depthwise Conv1d over time after a permute; ``weight`` is TIM's ``(C, 3)`` kernel."""
    nt, c, h, w = x.shape
    seq = x.view(nt // frames, frames, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, frames)  # (N*H*W, C, T)
    out = F.conv1d(seq, weight.to(x.dtype).view(c, 1, 3), padding=1, groups=c)
    return out.view(nt // frames, h, w, c, frames).permute(0, 4, 3, 1, 2).reshape(nt, c, h, w)


def shift_tsm(x: torch.Tensor, frames: int, shift_div: int) -> torch.Tensor:
    """TSM by concatenation: the first C/div channels read t+1, the next C/div read t-1, zero-padded."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // frames, frames, c, h, w)
    fold = c // shift_div
    pad = x5.new_zeros(x5.shape[0], 1, fold, h, w)
    ahead = torch.cat([x5[:, 1:, :fold], pad], dim=1)
    behind = torch.cat([pad, x5[:, :-1, fold:2 * fold]], dim=1)
    return torch.cat([ahead, behind, x5[:, :, 2 * fold:]], dim=2).reshape(nt, c, h, w)


def cosine_td(z: torch.Tensor, frames: int, channels: int) -> torch.Tensor:
    """Eq. 7 with the T x T cosine matrix: off-diagonal mean per channel, summed over channels, mean over clips."""
    nt, c, h, w = z.shape
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32  # float64 stays: the kernels' oracle
    zc = z.view(nt // frames, frames, c, h * w)[:, :, :channels].to(dtype).transpose(1, 2)  # (N, K, T, HW)
    u = zc / zc.norm(dim=-1, keepdim=True).clamp_min(EPS)
    cos = u @ u.transpose(-1, -2)  # (N, K, T, T)
    off = ~torch.eye(frames, dtype=torch.bool, device=z.device)
    return (cos[..., off].sum(-1) / (frames * (frames - 1))).sum(-1).mean()


def _res_conv(block: nn.Module, u: torch.Tensor) -> torch.Tensor:
    """The block's own convolutions: 1x1-3x3-1x1 (Bottleneck) or 3x3-3x3 (BasicBlock)."""
    out = F.relu(block.bn1(block.conv1(u)))
    if getattr(block, "conv3", None) is not None:
        out = F.relu(block.bn2(block.conv2(out)))
        return block.bn3(block.conv3(out))
    return block.bn2(block.conv2(out))


class StraightforwardTDRL(nn.Module):
    """A TDRL network computed the straightforward way; its parameters are the wrapped network's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = model
        cfg = model.cfg
        self.cfg = cfg
        self.td_at: set[tuple[str, int]] = set()
        if cfg.td_ratio > 0:
            for name in cfg.td_blocks:
                stage, _, idx = name.partition(".")
                self.td_at.add((stage, int(idx) % len(getattr(model, stage))))

    def _block(self, block: nn.Module, x: torch.Tensor, td_on: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg, t_len = self.cfg, self.cfg.frames

        def enhance(v: torch.Tensor) -> torch.Tensor:
            if cfg.enhance == "pem":
                return loop_pem(block.enhance, v, t_len, cfg.mem_init)
            if cfg.enhance == "mem":
                return loop_mem(block.enhance, v, t_len)
            return v

        u = enhance(x) if cfg.enhance_position == "before" else x
        tm_in = u
        if cfg.temporal == "tim":
            u = conv1d_tim(block.temporal.weight, u, t_len)
        elif cfg.temporal == "tsm":
            u = shift_tsm(u, t_len, cfg.shift_div)
        td = None
        if td_on:
            channels = int(cfg.td_ratio * x.shape[1] + 0.5)  # round(ratio * C), halves up
            td = cosine_td(tm_in if cfg.td_position == "before" else u, t_len, channels)
        if cfg.enhance_position == "after":
            u = enhance(u)
        identity = x if block.downsample is None else block.downsample(x)
        return F.relu(_res_conv(block, u) + identity), td

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net, n, t_len = self.net, clips.shape[0], self.cfg.frames
        x = net.maxpool(F.relu(net.bn1(net.conv1(clips.flatten(0, 1)))))
        td = x.new_zeros((), dtype=torch.float32)
        for stage in STAGES:
            for i, block in enumerate(getattr(net, stage)):
                x, term = self._block(block, x, (stage, i) in self.td_at)
                if term is not None:
                    td = td + term
        x = net.dropout(torch.flatten(net.avgpool(x), 1))
        return net.fc(x).view(n, t_len, -1).mean(dim=1), td


def straightforward(model: nn.Module) -> nn.Module:
    """``model`` (a :class:`~tdrl.model.network.TDRLNet`) computed the straightforward way, sharing
    its parameters (training the result trains ``model``)."""
    return StraightforwardTDRL(model)
