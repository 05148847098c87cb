"""Temporal Diversity loss (paper eq. 7).

For each clip and each regularised channel c, the cosine similarity of the flattened maps z_i^c and
z_j^c over all ordered pairs i != j, averaged over the T(T-1) pairs, summed over channels, and
averaged over the clips of the batch.

The pair sum is computed without forming the T x T matrix: with u_t the unit-normalised maps,
sum_{i != j} <u_i, u_j> = ||sum_t u_t||^2 - sum_t ||u_t||^2, which is O(T*H*W) per channel instead
of O(T^2*H*W). Maps of all zeros normalise to zero (eps in the norm), contributing 0, never NaN.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-8


def td_channels(ratio: float, channels: int) -> int:
    """How many leading channels the loss covers: round(ratio * C), halves rounded up."""
    return int(math.floor(ratio * channels + 0.5))


def temporal_diversity(z: torch.Tensor, frames: int, channels: int) -> torch.Tensor:
    """TD term for ``z`` ``(N*T, C, H, W)`` over its first ``channels`` channels; a scalar.

    Computed in float32 whatever the autocast dtype (float64 for float64 ``z``): the pair sum is a
    difference of two numbers of order T^2 and T, which bf16 would round away.
    """
    nt, c, h, w = z.shape
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    if channels <= 0:
        return z.new_zeros((), dtype=dtype)
    zc = z.view(nt // frames, frames, c, h * w)[:, :, :channels].to(dtype)  # (N, T, C_mu, HW)
    u = zc / zc.norm(dim=-1, keepdim=True).clamp_min(EPS)
    total = u.sum(dim=1)  # (N, C_mu, HW)
    pair_sum = total.pow(2).sum(-1) - u.pow(2).sum(dim=(1, 3))  # (N, C_mu)
    return (pair_sum / (frames * (frames - 1))).sum(dim=1).mean()
