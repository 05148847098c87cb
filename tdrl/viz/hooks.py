"""Reading what a block's sub-module received and returned during one forward pass.

Forward hooks rather than re-implementing the block: the figures then show exactly the tensors the
network computed (wherever the enhancement sits, before or after TM), and stay right if the block's
forward changes. Blocks are named like the TD-loss option, ``layerK.I`` (negative I counts from
the end), e.g. ``layer1.0`` (paper Fig. 3) or ``layer2.-1`` (Fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from tdrl.model.block import TemporalBlock
from tdrl.model.network import STAGES, TDRLNet, block_position


def resolve_block(model: TDRLNet, name: str) -> tuple[str, TemporalBlock]:
    """``layerK.I`` -> (canonical ``layerK.i`` with i >= 0, the block); errors list what exists."""
    stage, i = block_position({s: getattr(model, s) for s in STAGES}, name)
    return f"{stage}.{i}", getattr(model, stage)[i]


@dataclass
class Captured:
    """The input and output of one module call; layouts are the module's, e.g. ``(N*T, C, H, W)``."""

    input: torch.Tensor | None = None
    output: torch.Tensor | None = None


def run_capturing(model: nn.Module, clips: torch.Tensor, modules: dict[str, nn.Module]) -> dict[str, Captured]:
    """Run ``model(clips)`` once without gradients and return each named module's first input and output.

    Hooks are removed even if the forward fails, so the model is left as it was.
    """
    got = {name: Captured() for name in modules}
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if got[name].input is None:  # a module called twice keeps its first call
                got[name].input = args[0].detach()
                got[name].output = output.detach()
        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(clips)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, c in got.items() if c.input is None]
    if missing:
        raise RuntimeError(f"module(s) {', '.join(missing)} were not called in the forward pass")
    return got
