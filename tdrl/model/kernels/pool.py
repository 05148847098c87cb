"""Per-frame global average pooling for PEM and MEM: ``tdrl::frame_mean``.

The forward is ``x.mean((2, 3))``. The backward returns ``g / (H*W)`` broadcast to ``x``'s shape as an
expanded view (stride 0 in space), so autograd adds it straight into the block input's gradient; the
eager mean's backward materialises that broadcast as a new NCHW-contiguous tensor first, which the
GPU then adds into a channels_last buffer with a slow, non-vectorised kernel.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("tdrl::frame_mean", mutates_args=())
def frame_mean(x: torch.Tensor) -> torch.Tensor:
    """``(N*T, C, H, W)`` -> ``(N*T, C)``: the mean over space, in ``x``'s dtype."""
    if x.dim() != 4:
        raise ValueError(f"frame_mean expects frames (N*T, C, H, W), got {tuple(x.shape)}")
    return x.mean(dim=(2, 3))


@frame_mean.register_fake
def _(x):
    return x.new_empty(x.shape[:2])


def _setup(ctx, inputs, output) -> None:
    (x,) = inputs
    ctx.shape = x.shape


def _backward(ctx, g):
    nt, c, h, w = ctx.shape
    return (g / (h * w)).view(nt, c, 1, 1).expand(nt, c, h, w)


frame_mean.register_autograd(_backward, setup_context=_setup)
