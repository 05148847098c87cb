"""A torchvision residual block with TDRL's branch: enhancement -> temporal module -> ResConv.

The wrapper adopts the block's own submodules under their own names (``conv1``, ``bn1``, ...,
``downsample``), so a torchvision state dict still addresses them; the new modules appear as
``enhance`` and ``temporal``. The shortcut is untouched. The forward returns the block output and
the block's TD term (``None`` when the block is not regularised), so the network can sum the terms
without hooks or module state.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from tdrl.model.td_loss import temporal_diversity


class TemporalBlock(nn.Module):
    def __init__(self, block: nn.Module, *, frames: int, enhance: nn.Module | None,
                 temporal: nn.Module | None, enhance_before: bool = True, td_channels: int = 0,
                 td_before: bool = False) -> None:
        super().__init__()
        if not isinstance(block, (BasicBlock, Bottleneck)):
            raise TypeError(f"expected a torchvision BasicBlock or Bottleneck, got {type(block).__name__}")
        self.bottleneck = isinstance(block, Bottleneck)
        for name, child in block.named_children():
            self.add_module(name, child)
        if not hasattr(self, "downsample"):
            self.downsample = None
        self.frames = frames
        self.enhance = enhance
        self.temporal = temporal
        self.enhance_before = enhance_before
        self.td_channels = td_channels
        self.td_before = td_before

    def _branch(self, u: torch.Tensor) -> torch.Tensor:
        """The block's own convolutions (ResConv)."""
        out = self.relu(self.bn1(self.conv1(u)))
        if self.bottleneck:
            out = self.relu(self.bn2(self.conv2(out)))
            return self.bn3(self.conv3(out))
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x``: frames folded ``(N*T, C, H, W)``; returns ``(out, td_term or None)``."""
        identity = x if self.downsample is None else self.downsample(x)
        u = x
        if self.enhance is not None and self.enhance_before:
            u = self.enhance(u)
        z_before = u  # the temporal module's input
        if self.temporal is not None:
            u = self.temporal(u)
        td = None
        if self.td_channels > 0:
            td = temporal_diversity(z_before if self.td_before else u, self.frames, self.td_channels)
        if self.enhance is not None and not self.enhance_before:
            u = self.enhance(u)
        out = self._branch(u)
        return self.relu(out + identity), td
