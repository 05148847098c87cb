"""The Temporal Diversity loss (paper eq. 7) in one pass over Z: ``tdrl::td_loss``.

For each clip n and regularised channel c, with z_t the frame-t map (length H*W):
``P = sum_{i != j} cos(z_i, z_j) = sum_{i != j} r_i r_j G_ij`` where ``G = Z Z^T`` is the T x T Gram
matrix of the maps and ``r_i = 1 / max(||z_i||, eps)`` (``||z_i||^2 = G_ii``, so all-zero maps give 0).
The forward kernel (one program per clip and channel tile) accumulates G over spatial tiles, so Z
is read once, in its own dtype and layout (no float32 copy of the block), and writes P / (N T (T-1))
per (clip, channel) plus two per-frame coefficients for the backward; the loss is a fixed-order sum
of those partials.

Backward, with ``S = sum_j r_j z_j``: ``dP/dz_i = 2 r_i S + c_i z_i`` where
``c_i = -2 r_i^2 - 2 A_i / ||z_i||^3`` (``A_i = sum_{j != i} r_j G_ij``; the second term vanishes where the
norm is clamped to eps). One kernel reads Z once and writes the gradient once, for every channel
(zeros beyond the regularised ones), in Z's memory format.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tdrl.model.kernels.launch import (acc_dtype, acc_type, check_tensors, interpreting, launch, spatial_strides,
                                      tiles)

EPS = 1e-8  # as tdrl.model.td_loss: the norm is clamped to eps


@triton.jit
def _td_fwd(z_ptr, p_ptr, r_ptr, cc_ptr, T, K, H, W, s_f, s_c, s_h, s_w, denominator,
            EPS_: tl.constexpr, ACC: tl.constexpr, TP: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n = tl.program_id(0)
    t = tl.arange(0, TP)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    tmask = t < T
    cmask = c < K
    frame = (n * T + t).to(tl.int64) * s_f
    gram = tl.zeros([TP, TP, BLOCK_C], dtype=ACC)
    for start in range(0, H * W, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        h, w = hw // W, hw % W
        off = frame[:, None, None] + (c * s_c)[None, :, None] + (h * s_h + w * s_w)[None, None, :]
        mask = tmask[:, None, None] & cmask[None, :, None] & (hw < H * W)[None, None, :]
        z = tl.load(z_ptr + off, mask=mask, other=0.0).to(ACC)  # (TP, BLOCK_C, BLOCK_HW)
        gram += tl.sum(z[:, None, :, :] * z[None, :, :, :], axis=3)
    i = tl.arange(0, TP)[:, None, None]
    j = tl.arange(0, TP)[None, :, None]
    sq = tl.sum(tl.where(i == j, gram, 0.0), axis=1)  # ||z_t||^2: (TP, BLOCK_C)
    norm = tl.sqrt(sq)
    eps = tl.full([], EPS_, ACC)  # exactly 1e-8 in float64 (a plain float argument would be float32)
    r = 1.0 / tl.maximum(norm, eps)
    off_diag = (i != j) & (i < T) & (j < T)
    rg = tl.where(off_diag, gram * r[None, :, :], 0.0)  # r_j G_ij
    a = tl.sum(rg, axis=1)  # A_i: (TP, BLOCK_C)
    pair = tl.sum(a * r, axis=0)  # sum_{i != j} r_i r_j G_ij: (BLOCK_C,)
    safe = tl.maximum(norm, eps)
    cc = -2.0 * r * r - tl.where(norm > eps, 2.0 * a / (safe * safe * safe), 0.0)
    tl.store(p_ptr + n * K + c, pair / denominator, mask=cmask)  # this pair sum's share of the mean
    rows = (n * T + t)[:, None] * K + c[None, :]
    m2 = tmask[:, None] & cmask[None, :]
    tl.store(r_ptr + rows, r, mask=m2)
    tl.store(cc_ptr + rows, cc, mask=m2)


@triton.jit
def _td_bwd(z_ptr, r_ptr, cc_ptr, g_ptr, denominator, gz_ptr, T, C, K, H, W, s_f, s_c, s_h, s_w, d_f, d_c, d_h, d_w,
            ACC: tl.constexpr, TP: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n = tl.program_id(0)
    t = tl.arange(0, TP)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    tmask = t < T
    regularised = c < K
    h, w = hw // W, hw % W
    frame = (n * T + t).to(tl.int64)
    mask = tmask[:, None, None] & (c < C)[None, :, None] & (hw < H * W)[None, None, :]
    zmask = mask & regularised[None, :, None]
    off = frame[:, None, None] * s_f + (c * s_c)[None, :, None] + (h * s_h + w * s_w)[None, None, :]
    z = tl.load(z_ptr + off, mask=zmask, other=0.0).to(ACC)  # (TP, BLOCK_C, BLOCK_HW)
    rows = (n * T + t)[:, None] * K + c[None, :]
    m2 = tmask[:, None] & regularised[None, :]
    r = tl.load(r_ptr + rows, mask=m2, other=0.0)
    cc = tl.load(cc_ptr + rows, mask=m2, other=0.0)
    s = tl.sum(r[:, :, None] * z, axis=0)  # S = sum_j r_j z_j: (BLOCK_C, BLOCK_HW)
    scale = tl.load(g_ptr).to(ACC) / denominator  # d loss / d P: the incoming gradient over N T (T-1)
    gz = scale * (2.0 * r[:, :, None] * s[None, :, :] + cc[:, :, None] * z)  # zero beyond K (z, r, cc are)
    doff = frame[:, None, None] * d_f + (c * d_c)[None, :, None] + (h * d_h + w * d_w)[None, None, :]
    tl.store(gz_ptr + doff, gz.to(gz_ptr.dtype.element_ty), mask=mask)


def _check(z: torch.Tensor, frames: int, channels: int) -> None:
    check_tensors(z)
    if z.dim() != 4 or z.shape[0] % frames or frames < 2:
        raise ValueError(f"td_loss expects frames folded (N*T, C, H, W) with T={frames} >= 2, got {tuple(z.shape)}")
    if not 0 < channels <= z.shape[1]:
        raise ValueError(f"td_loss: channels={channels} must be in 1..{z.shape[1]}")


def _frame_tile(frames: int) -> int:
    return triton.next_power_of_2(frames)


def _td_tiles(z: torch.Tensor, channels: int, frames: int) -> tuple[int, int]:
    """Tiles for the (T, C, HW) blocks the TD kernels hold: the pairwise products make the forward's
    register footprint T^2 * BLOCK_C * BLOCK_HW, so the 2-D tile shrinks with T."""
    bc, bhw = tiles(z, channels)
    if z.device.type == "cuda" and not interpreting():
        budget = max(1, 4096 // (_frame_tile(frames) ** 2))  # channels x positions per tile
        while bc * bhw > budget and (bc > 1 or bhw > 1):
            if bhw >= bc and bhw > 1:
                bhw //= 2
            else:
                bc //= 2
    return bc, bhw


@torch.library.custom_op("tdrl::td_loss", mutates_args=())
def td_loss(z: torch.Tensor, frames: int, channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, r, c)``: the TD term of ``z`` ``(N*T, C, H, W)`` over its first ``channels`` channels (a
    scalar, float32, float64 for float64 input) and the per-(clip, frame, channel) coefficients the
    backward reads."""
    _check(z, frames, channels)
    nt, _, h, w = z.shape
    n = nt // frames
    acc_t = acc_dtype(z.dtype)
    pairs = torch.empty((n, channels), dtype=acc_t, device=z.device)
    r = torch.empty((nt, channels), dtype=acc_t, device=z.device)
    cc = torch.empty_like(r)
    bc, bhw = _td_tiles(z, channels, frames)
    launch(_td_fwd, (n, triton.cdiv(channels, bc)), z, pairs, r, cc, frames, channels, h, w, *spatial_strides(z),
           n * frames * (frames - 1), EPS_=EPS, ACC=acc_type(z.dtype), TP=_frame_tile(frames), BLOCK_C=bc, BLOCK_HW=bhw)
    return pairs.sum(), r, cc


@td_loss.register_fake
def _(z, frames, channels):
    acc_t = acc_dtype(z.dtype)
    return z.new_empty((), dtype=acc_t), z.new_empty((z.shape[0], channels), dtype=acc_t), \
        z.new_empty((z.shape[0], channels), dtype=acc_t)


@torch.library.custom_op("tdrl::td_loss_backward", mutates_args=())
def td_loss_backward(g: torch.Tensor, z: torch.Tensor, r: torch.Tensor, cc: torch.Tensor, frames: int,
                     channels: int) -> torch.Tensor:
    """The gradient of the TD term for ``z`` (same shape and memory format), ``g`` its incoming scalar."""
    _check(z, frames, channels)
    nt, c, h, w = z.shape
    n = nt // frames
    gz = torch.empty_like(z)
    bc, bhw = _td_tiles(z, c, frames)
    launch(_td_bwd, (n, triton.cdiv(c, bc), triton.cdiv(h * w, bhw)), z, r, cc, g, n * frames * (frames - 1), gz,
           frames, c, channels, h, w, *spatial_strides(z), *spatial_strides(gz),
           ACC=acc_type(z.dtype), TP=_frame_tile(frames), BLOCK_C=bc, BLOCK_HW=bhw)
    return gz


@td_loss_backward.register_fake
def _(g, z, r, cc, frames, channels):
    return torch.empty_like(z)


def _setup(ctx, inputs, output) -> None:
    z, frames, channels = inputs
    _, r, cc = output
    ctx.save_for_backward(z, r, cc)
    ctx.mark_non_differentiable(r, cc)
    ctx.set_materialize_grads(False)  # no zero tensors for r's and cc's (absent) gradients
    ctx.frames, ctx.channels = frames, channels


def _backward(ctx, g, gr, gcc):
    if g is None:  # the loss got no gradient (grads are not materialised as zeros)
        return None, None, None
    z, r, cc = ctx.saved_tensors
    return td_loss_backward(g, z, r, cc, ctx.frames, ctx.channels), None, None


td_loss.register_autograd(_backward, setup_context=_setup)


def temporal_diversity(z: torch.Tensor, frames: int, channels: int) -> torch.Tensor:
    """The TD term of ``z`` ``(N*T, C, H, W)`` (as :func:`tdrl.model.td_loss.temporal_diversity`)."""
    return td_loss(z, frames, channels)[0]
