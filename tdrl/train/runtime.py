"""Where and how a network runs: the device, the autocast precision and the memory format, resolved in
one place for training workers, ``tdrl eval`` and the figures.

``auto`` means: bf16 autocast and channels_last on a GPU, fp32 and the default layout on a CPU (bf16
autocast on a CPU is slower than fp32 there, and channels_last buys nothing without tensor cores).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager

import torch


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" or "bf16" (never "auto")
    channels_last: bool

    def autocast(self) -> ContextManager:
        return autocast(self.device, self.precision)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on the device, in the memory format (in place; returned for chaining)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model


def resolve_runtime(device: torch.device | str = "auto", precision: str = "auto",
                    channels_last: bool | None = None) -> Runtime:
    """``device`` "auto" = the first GPU if there is one; ``precision`` "auto" and ``channels_last``
    None follow the device (see the module docstring)."""
    if isinstance(device, str):
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    on_gpu = device.type == "cuda"
    return Runtime(device=device,
                   precision=("bf16" if on_gpu else "fp32") if precision == "auto" else precision,
                   channels_last=on_gpu if channels_last is None else channels_last)


def autocast(device: torch.device, precision: str) -> ContextManager:
    """bf16 autocast on request; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
