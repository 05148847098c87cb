"""The network's configuration: backbone, temporal module, enhancement, TD loss and head.

Defaults are spec.md's TDRL: ResNet-50, 8 frames, TIM with PEM before it (memory initialised with
d_{T-1}), TD loss on half the channels after TM in the last block of stages 2-4, lambda 2e-4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tdrl.config.base import ConfigError, check_declared, check_int, check_range

Backbone = Literal["resnet18", "resnet34", "resnet50", "resnet101"]  # tdrl.model.resnet.ARCHS builds each
BLOCK_RE = re.compile(r"^layer([1-4])\.(-?\d+)$")
ARCH = True  # metadata "arch": the field changes the parameters; a checkpoint must match it


def parse_block(name: str) -> tuple[str, int]:
    """A block name ``layerK.I`` -> ``("layerK", I)``: K in 1-4, I a block index (negative counts
    from the end, as in Python). The one parser of block names (TD-loss blocks, figure options)."""
    m = BLOCK_RE.match(name.strip()) if isinstance(name, str) else None
    if not m:
        raise ConfigError(f"block {name!r}: write blocks as layerK.I with K in 1-4 and I a block index "
                          f"(negative counts from the end), e.g. layer1.0 or layer4.-1")
    return f"layer{m.group(1)}", int(m.group(2))


@dataclass(frozen=True)
class ModelConfig:
    SECTION: ClassVar[str] = "model"

    backbone: Backbone = field(default="resnet50", metadata={"help": "torchvision ResNet depth", "arch": ARCH})
    width: float = field(default=1.0, metadata={"help": "channel width multiplier (1.0 = torchvision; "
                                                        "0.25 for CPU-scale runs)", "arch": ARCH})
    num_classes: int = field(default=174, metadata={"help": "number of classes", "arch": ARCH})
    frames: int = field(default=8, metadata={"help": "frames per clip T (fixed at construction)", "arch": ARCH})
    temporal: Literal["tim", "tsm", "none"] = field(default="tim", metadata={"help": "temporal module",
                                                                             "arch": ARCH})
    shift_div: int = field(default=8, metadata={"help": "TSM/TIM-init: 1/shift_div of channels shift each way",
                                                "arch": ARCH})
    enhance: Literal["pem", "mem", "none"] = field(default="pem", metadata={"help": "enhancement module",
                                                                            "arch": ARCH})
    enhance_position: Literal["before", "after"] = field(default="before", metadata={
        "help": "enhancement before/after TM", "arch": ARCH})
    mem_init: Literal["last", "first", "zeros"] = field(default="last", metadata={
        "help": "PEM memory initialisation: last=d_{T-1}, first=d_1, zeros", "arch": ARCH})
    reduction: int = field(default=16, metadata={"help": "PEM/MEM channel reduction r", "arch": ARCH})
    td_ratio: float = field(default=0.5, metadata={"help": "fraction of channels in the TD loss, [0, 1]"})
    td_position: Literal["before", "after"] = field(default="after", metadata={"help": "TD loss on TM input/output"})
    td_blocks: tuple[str, ...] = field(default=("layer2.-1", "layer3.-1", "layer4.-1"),
                                       metadata={"help": "comma-separated blocks with the TD loss, e.g. layer4.-1"})
    td_lambda: float = field(default=2e-4, metadata={"help": "weight of the TD term in the loss"})
    dropout: float = field(default=0.5, metadata={"help": "dropout before the classifier"})
    pretrained: str | None = field(default=None, metadata={
        "help": "ImageNet weights: 'imagenet' (torchvision's cache) or a .pth path; none for random init"})
    kernels: Literal["auto", "eager", "triton"] = field(default="auto", metadata={
        "help": "how PEM, TIM/TSM and the TD loss run: triton = fused Triton kernels (CUDA; on CPU tensors only "
                "under TRITON_INTERPRET=1, slowly, for tests), eager = PyTorch ops, auto = triton on CUDA, eager "
                "elsewhere. Changes rounding, not the function"})
    recompute: bool = field(default=False, metadata={
        "help": "recompute PEM, TIM/TSM and the TD term in the backward instead of keeping their outputs: "
                "TSN's activation memory for a second pass over each block input; results unchanged"})

    def __post_init__(self) -> None:
        s = self.SECTION
        check_declared(self)
        check_range(f"{s}.width", self.width, 0.0, 4.0, low_open=True)
        check_int(f"{s}.reduction", self.reduction, 1)  # before the division below
        stem = int(64 * self.width)
        if stem < 1 or (self.enhance != "none" and stem // self.reduction < 1):
            raise ConfigError(f"{s}.width={self.width} leaves {stem} stem channels, fewer than "
                              f"{s}.reduction={self.reduction}; raise the width or lower the reduction")
        check_int(f"{s}.num_classes", self.num_classes, 1)
        check_int(f"{s}.frames", self.frames, 2, why="temporal modules need at least two frames")
        check_int(f"{s}.shift_div", self.shift_div, 2)
        check_range(f"{s}.td_ratio", self.td_ratio, 0.0, 1.0)
        if not isinstance(self.td_blocks, tuple):
            raise ConfigError(f"{s}.td_blocks={self.td_blocks!r} must be a tuple of names like 'layer4.-1'")
        for name in self.td_blocks:
            try:
                parse_block(name)
            except ConfigError as exc:
                raise ConfigError(f"{s}.td_blocks: {exc}") from None
        check_range(f"{s}.td_lambda", self.td_lambda, 0.0)
        check_range(f"{s}.dropout", self.dropout, 0.0, 1.0, high_open=True)
        if self.pretrained is not None and self.width != 1.0:
            raise ConfigError(f"{s}.pretrained={self.pretrained!r} needs {s}.width=1.0: ImageNet weights exist "
                              f"only for torchvision's widths")

    @property
    def td_on(self) -> bool:
        """Whether any TD term is computed (ratio 0 or no blocks means none)."""
        return self.td_ratio > 0 and len(self.td_blocks) > 0

    @property
    def td_trains(self) -> bool:
        """Whether the TD loss changes training: a TD term is computed (:attr:`td_on`) and weighs in the
        loss (``td_lambda > 0``). With lambda 0 the term is computed and logged but the network trains
        bit for bit as without it: runs share it (tdrl.study.sharing), plans and figures treat it as off."""
        return self.td_on and self.td_lambda > 0

