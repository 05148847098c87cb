"""``tdrl model-info``: parameters and GMACs per clip of a network configuration.

MACs are counted by ``torch.utils.flop_counter`` (convolutions and matrix products, as the paper
counts them: its "33G" for an 8-frame ResNet-50 are multiply-accumulates, FLOPs = 2 x MACs).
Element-wise work (TSM/TIM shifts, PEM's gating, ReLU, BN) is not counted, as is customary.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from tdrl.config.base import add_arguments as add_config_arguments
from tdrl.config.base import ConfigError, from_dict, given_arguments, to_dict
from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet


def count(cfg: ModelConfig, size: int = 224) -> dict[str, float]:
    """``{"params", "gmacs", ...}`` for one clip ``(1, T, 3, size, size)`` of ``cfg``."""
    model = TDRLNet(cfg).eval()
    clip = torch.zeros(1, cfg.frames, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(clip)
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for n, p in model.named_parameters() if ".enhance." not in n and ".temporal." not in n)
    return {"params": params, "params_new_modules": params - backbone,
            "gmacs": counter.get_total_flops() / 2 / 1e9, "frames": cfg.frames, "size": size}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser.add_argument_group("model"), ModelConfig)
    parser.add_argument("--size", type=int, default=224, help="input height and width (default: 224)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    cfg = from_dict(ModelConfig, given_arguments(args, ModelConfig), section="model")
    if args.size < 32:
        raise ConfigError(f"--size {args.size} is too small; ResNets need at least 32")
    info = count(cfg, args.size)
    if args.json:
        print(json.dumps({**info, "config": to_dict(cfg)}))
    else:
        print(f"{cfg.backbone} x{cfg.width} T={cfg.frames} temporal={cfg.temporal} enhance={cfg.enhance} "
              f"({cfg.enhance_position}) td_ratio={cfg.td_ratio} at {args.size}x{args.size}")
        print(f"  parameters: {info['params'] / 1e6:.2f} M ({info['params_new_modules'] / 1e6:.2f} M in PEM/MEM/TIM)")
        print(f"  GMACs per clip: {info['gmacs']:.2f}  (GFLOPs = 2 x GMACs = {2 * info['gmacs']:.2f})")
    return 0
