"""The TDRL network: a torchvision ResNet whose every block is a :class:`TemporalBlock`, and a TSN head.

Input clips ``(N, T, 3, H, W)`` are folded to frames ``(N*T, 3, H, W)`` for the backbone; temporal
modules unfold them with ``view(N, T, ...)``. The head pools each frame, applies dropout and the
classifier, and averages the frame scores over T (TSN consensus). ``forward`` returns the class
scores ``(N, K)`` and the TD regularisation term summed over regularised blocks (a scalar; 0 when
the TD loss is off). The training loop adds ``lambda * term`` to the cross-entropy.

With ``temporal="none"``, ``enhance="none"`` and ``td_ratio=0`` this is exactly TSN on the same
backbone.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn

from tdrl.config.base import ConfigError
from tdrl.config.model import ModelConfig, parse_block
from tdrl.model.block import TemporalBlock
from tdrl.model.mem import MotionEnhancement
from tdrl.model.pem import ProgressiveEnhancement
from tdrl.model.resnet import ResNet
from tdrl.model.td_loss import td_channels
from tdrl.model.temporal_shift import TemporalShift
from tdrl.model.tim import TemporalInteraction
from tdrl.model.weights import load_imagenet

# Parameters that take weight decay under the "weights" policy: the kernels of these modules.
_DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, TemporalInteraction)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)

STAGES = ("layer1", "layer2", "layer3", "layer4")


def block_position(layers: Mapping[str, Sequence[nn.Module]], name: str, network: str = "") -> tuple[str, int]:
    """``layerK.I`` -> ``("layerK", i)`` with ``0 <= i < len(layers["layerK"])``; a ConfigError names
    the indices the stage has (of ``network``, e.g. the backbone's name)."""
    stage, i = parse_block(name)
    n = len(layers[stage])
    if not -n <= i < n:
        where = f" of {network}" if network else ""
        raise ConfigError(f"block {name!r}: {stage}{where} has {n} blocks (indices {-n}..{n - 1})")
    return stage, i % n


def _td_block_set(cfg: ModelConfig, layers: dict[str, nn.Sequential]) -> set[tuple[str, int]]:
    try:
        return {block_position(layers, name, cfg.backbone) for name in cfg.td_blocks}
    except ConfigError as exc:
        raise ConfigError(f"model.td_blocks: {exc}") from None


class TDRLNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frames = cfg.frames
        base = ResNet(cfg.backbone, cfg.width, num_classes=cfg.num_classes)
        self.conv1, self.bn1, self.relu, self.maxpool = base.conv1, base.bn1, base.relu, base.maxpool
        layers = {s: getattr(base, s) for s in STAGES}
        td_set = _td_block_set(cfg, layers) if cfg.td_on else set()
        for stage in STAGES:
            blocks = [self._wrap(cfg, block, (stage, i) in td_set) for i, block in enumerate(layers[stage])]
            setattr(self, stage, nn.Sequential(*blocks))
        self.avgpool = base.avgpool
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = base.fc
        self.num_features = base.num_features

    @staticmethod
    def _wrap(cfg: ModelConfig, block: nn.Module, td: bool) -> TemporalBlock:
        channels = block.conv1.in_channels
        enhance: nn.Module | None = None
        if cfg.enhance == "pem":
            enhance = ProgressiveEnhancement(channels, cfg.frames, cfg.reduction, cfg.mem_init)
        elif cfg.enhance == "mem":
            enhance = MotionEnhancement(channels, cfg.frames, cfg.reduction)
        temporal: nn.Module | None = None
        if cfg.temporal == "tim":
            temporal = TemporalInteraction(channels, cfg.frames, cfg.shift_div)
        elif cfg.temporal == "tsm":
            temporal = TemporalShift(cfg.frames, cfg.shift_div)
        return TemporalBlock(block, frames=cfg.frames, enhance=enhance, temporal=temporal,
                             enhance_before=cfg.enhance_position == "before",
                             td_channels=td_channels(cfg.td_ratio, channels) if td else 0,
                             td_before=cfg.td_position == "before", kernels=cfg.kernels,
                             recompute=cfg.recompute)

    def param_groups(self, weight_decay: float, policy: str = "weights") -> list[dict]:
        """SGD parameter groups for ``train.decay_policy`` (spec.md, Training recipe, "Parameter groups").

        ``weights`` (the TSM code base's policy, which TEINet and TDRL build on): decay on convolution
        and linear weights, TIM's temporal kernel included; none on normalisation weights and biases
        or on any bias. ``all``: the plain reading of "weight decay 1e-4", every parameter decayed.
        Every parameter lands in exactly one group; a parameter of a module type not listed here
        raises, so a new module cannot silently fall into the wrong group.
        """
        if policy == "all":
            return [{"params": list(self.parameters()), "weight_decay": weight_decay, "group": "all"}]
        if policy != "weights":
            raise ValueError(f"train.decay_policy={policy!r}: choose 'weights' or 'all'")
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for mod_name, module in self.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if isinstance(module, _NORMS) or p_name == "bias":
                    no_decay.append(p)
                elif isinstance(module, _DECAYED) and p_name == "weight":
                    decay.append(p)
                else:
                    raise ValueError(f"parameter {mod_name}.{p_name} ({type(module).__name__}) has no weight-decay "
                                     f"rule; add its module type to tdrl.model.network's policy")
        return [{"params": decay, "weight_decay": weight_decay, "group": "decay"},
                {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"}]

    def features(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features ``(N*T, C', h, w)`` of clips ``(N, T, 3, H, W)`` and the TD term."""
        n, t = clips.shape[:2]
        if t != self.frames:
            raise ValueError(f"the network was built for {self.frames} frames per clip, got clips of shape "
                             f"{tuple(clips.shape)} (N, T, C, H, W)")
        x = clips.flatten(0, 1)  # (N*T, 3, H, W)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        td = x.new_zeros((), dtype=torch.float32)
        for stage in STAGES:
            for block in getattr(self, stage):
                x, term = block(x)
                if term is not None:
                    td = td + term
        return x, td

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips ``(N, T, 3, H, W)`` -> (scores ``(N, K)``, TD term ``()``)."""
        n = clips.shape[0]
        x, td = self.features(clips)
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (N*T, C')
        scores = self.fc(x).view(n, self.frames, -1).mean(dim=1)  # TSN consensus over T
        return scores, td


def build_model(cfg: ModelConfig) -> TDRLNet:
    """The network for ``cfg``, with ImageNet weights loaded when ``cfg.pretrained`` is set."""
    model = TDRLNet(cfg)
    if cfg.pretrained:
        load_imagenet(model, cfg.pretrained, cfg.backbone)
    return model
