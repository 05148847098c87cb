"""PEM's (or MEM's) channel excitation fused with TIM's temporal conv: ``tdrl::excite_tim``.

``z[t] = k0 * a[t-1] * x[t-1] + k1 * a[t] * x[t] + k2 * a[t+1] * x[t+1]`` per channel, zero outside the
clip, on frames folded ``(N*T, C, H, W)`` in any memory format; ``a`` ``(N*T, C)`` is the excitation,
``k`` ``(C, 3)`` the temporal kernel (TIM's weight, or TSM's fixed shift kernel). Either may be absent:
without ``k`` this is the excitation alone, without ``a`` the temporal conv alone.

Forward: one program per (clip, channel tile, spatial tile) walks the clip's frames with a window of
three frames in registers, so each element of ``x`` is read once and each of ``z`` written once
(eager PEM + TIM read or write the block input ~10 times forward).

Backward (one kernel): with ``v = a * x`` and ``gv[t] = k2 * g[t-1] + k1 * g[t] + k0 * g[t+1]`` (the conv
with the kernel reversed in time), ``gx = a * gv`` is written once, in ``x``'s memory format, while
the same pass forms per-program partial sums of ``ga[t] = sum_hw gv[t] * x[t]`` and of
``gk_j = sum_t sum_hw g[t] * v[t+j-1]``; a second stage (``torch.sum`` over the programs' partials, in
a fixed order) finishes them. No atomics: two runs give bitwise-equal gradients.

Arithmetic runs in float32 (float64 for float64 tensors); ``a`` and ``k`` are not rounded to the
activations' dtype first (eager TIM rounds its kernel to bf16 under autocast).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tdrl.model.kernels.launch import acc_dtype, acc_type, cast, check_tensors, launch, spatial_strides, tiles


@triton.jit
def _frame(ptr, a_ptr, f, f_ok, off, c, cmask, mask, stride_f, C, HAS_A: tl.constexpr, ACC: tl.constexpr):
    """Frame ``f`` of a ``(BLOCK_C, BLOCK_HW)`` tile as ``ACC``, scaled by ``a[f]`` when given; zeros
    where ``f_ok`` is false (outside the clip)."""
    v = tl.load(ptr + f.to(tl.int64) * stride_f + off, mask=mask & f_ok, other=0.0).to(ACC)
    if HAS_A:
        v = v * tl.load(a_ptr + f * C + c, mask=cmask & f_ok, other=0.0).to(ACC)[:, None]
    return v


@triton.jit
def _kernel(k_ptr, c, cmask, fold, K_MODE: tl.constexpr, ACC: tl.constexpr):
    """The three temporal taps per channel, ``(BLOCK_C, 1)`` each: loaded from ``k`` ``(C, 3)`` (K_MODE 1),
    or TSM's shift (K_MODE 2: the first ``fold`` channels read t+1, the next ``fold`` read t-1)."""
    if K_MODE == 2:
        k0 = ((c >= fold) & (c < 2 * fold)).to(ACC)
        k1 = (c >= 2 * fold).to(ACC)
        k2 = (c < fold).to(ACC)
    else:
        k0 = tl.load(k_ptr + c * 3, mask=cmask, other=0.0).to(ACC)
        k1 = tl.load(k_ptr + c * 3 + 1, mask=cmask, other=0.0).to(ACC)
        k2 = tl.load(k_ptr + c * 3 + 2, mask=cmask, other=0.0).to(ACC)
    return k0[:, None], k1[:, None], k2[:, None]


@triton.jit
def _excite_tim_fwd(x_ptr, a_ptr, k_ptr, z_ptr, T, C, H, W, fold,
                    sx_f, sx_c, sx_h, sx_w, sz_f, sz_c, sz_h, sz_w,
                    HAS_A: tl.constexpr, K_MODE: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    cmask = c < C
    mask = cmask[:, None] & (hw < H * W)[None, :]
    h, w = hw // W, hw % W
    ox = c[:, None] * sx_c + (h * sx_h + w * sx_w)[None, :]
    oz = c[:, None] * sz_c + (h * sz_h + w * sz_w)[None, :]
    if K_MODE != 0:
        k0, k1, k2 = _kernel(k_ptr, c, cmask, fold, K_MODE, ACC)
    f0 = n * T
    prev = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
    cur = _frame(x_ptr, a_ptr, f0, True, ox, c, cmask, mask, sx_f, C, HAS_A, ACC)
    for t in range(T):
        nxt = _frame(x_ptr, a_ptr, f0 + t + 1, t + 1 < T, ox, c, cmask, mask, sx_f, C, HAS_A, ACC)
        if K_MODE != 0:
            out = k0 * prev + k1 * cur + k2 * nxt  # eager TIM's order: (k1 x + k0 x[t-1]) + k2 x[t+1]
        else:
            out = cur
        tl.store(z_ptr + (f0 + t).to(tl.int64) * sz_f + oz, out.to(z_ptr.dtype.element_ty), mask=mask)
        prev = cur
        cur = nxt


@triton.jit
def _excite_tim_bwd(g_ptr, x_ptr, a_ptr, k_ptr, gx_ptr, ga_ptr, gk_ptr, T, C, H, W, fold,
                    sg_f, sg_c, sg_h, sg_w, sx_f, sx_c, sx_h, sx_w, sd_f, sd_c, sd_h, sd_w,
                    HAS_A: tl.constexpr, K_MODE: tl.constexpr, NEED_GK: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n = tl.program_id(0)
    pc = tl.program_id(1)
    ph = tl.program_id(2)
    c = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = ph * BLOCK_HW + tl.arange(0, BLOCK_HW)
    cmask = c < C
    mask = cmask[:, None] & (hw < H * W)[None, :]
    h, w = hw // W, hw % W
    og = c[:, None] * sg_c + (h * sg_h + w * sg_w)[None, :]
    ox = c[:, None] * sx_c + (h * sx_h + w * sx_w)[None, :]
    od = c[:, None] * sd_c + (h * sd_h + w * sd_w)[None, :]
    if K_MODE != 0:
        k0, k1, k2 = _kernel(k_ptr, c, cmask, fold, K_MODE, ACC)
    f0 = n * T
    nt = tl.num_programs(0) * T
    g_prev = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
    g_cur = _frame(g_ptr, a_ptr, f0, True, og, c, cmask, mask, sg_f, C, False, ACC)
    x_cur = _frame(x_ptr, a_ptr, f0, True, ox, c, cmask, mask, sx_f, C, False, ACC)
    v_prev = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
    v_cur = x_cur
    if HAS_A:
        a_cur = tl.load(a_ptr + f0 * C + c, mask=cmask, other=0.0).to(ACC)
        v_cur = x_cur * a_cur[:, None]
    if NEED_GK:
        gk0 = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
        gk1 = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
        gk2 = tl.zeros([BLOCK_C, BLOCK_HW], dtype=ACC)
    for t in range(T):
        ok = t + 1 < T
        g_next = _frame(g_ptr, a_ptr, f0 + t + 1, ok, og, c, cmask, mask, sg_f, C, False, ACC)
        x_next = _frame(x_ptr, a_ptr, f0 + t + 1, ok, ox, c, cmask, mask, sx_f, C, False, ACC)
        if HAS_A:
            a_next = tl.load(a_ptr + (f0 + t + 1) * C + c, mask=cmask & ok, other=0.0).to(ACC)
            v_next = x_next * a_next[:, None]
        else:
            v_next = x_next
        if K_MODE != 0:
            gv = k2 * g_prev + k1 * g_cur + k0 * g_next  # d z[s] / d v[t]: k0 at s = t+1, k2 at s = t-1
        else:
            gv = g_cur
        if HAS_A:
            gx = gv * a_cur[:, None]
            # partial sum over this program's spatial tile; rows (ph, frame), summed over ph afterwards
            tl.store(ga_ptr + (ph * nt + f0 + t) * C + c, tl.sum(gv * x_cur, axis=1), mask=cmask)
        else:
            gx = gv
        tl.store(gx_ptr + (f0 + t).to(tl.int64) * sd_f + od, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_GK:
            gk0 += g_cur * v_prev
            gk1 += g_cur * v_cur
            gk2 += g_cur * v_next
        g_prev = g_cur
        g_cur = g_next
        x_cur = x_next
        v_prev = v_cur
        v_cur = v_next
        if HAS_A:
            a_cur = a_next
    if NEED_GK:
        row = (n * tl.num_programs(2) + ph) * C * 3  # partial (N * spatial tiles, C, 3)
        tl.store(gk_ptr + row + c * 3, tl.sum(gk0, axis=1), mask=cmask)
        tl.store(gk_ptr + row + c * 3 + 1, tl.sum(gk1, axis=1), mask=cmask)
        tl.store(gk_ptr + row + c * 3 + 2, tl.sum(gk2, axis=1), mask=cmask)


def _check(x: torch.Tensor, a: torch.Tensor | None, k: torch.Tensor | None, frames: int, shift_fold: int) -> int:
    """Validates the arguments; returns the kernel mode (0 no temporal conv, 1 ``k``, 2 TSM shift)."""
    check_tensors(x, a, k)
    if x.dim() != 4 or x.shape[0] % frames:
        raise ValueError(f"excite_tim expects frames folded (N*T, C, H, W) with N*T a multiple of T={frames}, "
                         f"got {tuple(x.shape)}")
    c = x.shape[1]
    if a is not None and a.shape != (x.shape[0], c):
        raise ValueError(f"excite_tim: the excitation must be (N*T, C) = {(x.shape[0], c)}, got {tuple(a.shape)}")
    if k is not None and k.shape != (c, 3):
        raise ValueError(f"excite_tim: the temporal kernel must be (C, 3) = {(c, 3)}, got {tuple(k.shape)}")
    if k is not None and shift_fold >= 0:
        raise ValueError("excite_tim: give a temporal kernel or a TSM shift fold, not both")
    mode = 1 if k is not None else (2 if shift_fold >= 0 else 0)
    if a is None and mode == 0:
        raise ValueError("excite_tim needs an excitation, a temporal kernel or a shift")
    return mode


def _grid(x: torch.Tensor, frames: int) -> tuple[tuple[int, int, int], int, int]:
    bc, bhw = tiles(x, x.shape[1])
    return (x.shape[0] // frames, triton.cdiv(x.shape[1], bc), triton.cdiv(x.shape[2] * x.shape[3], bhw)), bc, bhw


@torch.library.custom_op("tdrl::excite_tim", mutates_args=())
def excite_tim(x: torch.Tensor, a: torch.Tensor | None, k: torch.Tensor | None, frames: int,
               shift_fold: int = -1) -> torch.Tensor:
    """``(N*T, C, H, W)`` -> the same shape and memory format: the temporal conv of ``a * x`` with kernel
    ``k`` ``(C, 3)``, or TSM's shift when ``shift_fold`` >= 0, or ``a * x`` alone (see the module docstring)."""
    mode = _check(x, a, k, frames, shift_fold)
    z = torch.empty_like(x)
    grid, bc, bhw = _grid(x, frames)
    a_ = a.contiguous() if a is not None else x  # a dummy pointer when absent (never read)
    k_ = k.contiguous() if k is not None else x
    launch(_excite_tim_fwd, grid, x, a_, k_, z, frames, x.shape[1], x.shape[2], x.shape[3], max(shift_fold, 0),
           *spatial_strides(x), *spatial_strides(z),
           HAS_A=a is not None, K_MODE=mode, ACC=acc_type(x.dtype), BLOCK_C=bc, BLOCK_HW=bhw)
    return z


@excite_tim.register_fake
def _(x, a, k, frames, shift_fold=-1):
    return torch.empty_like(x)


@torch.library.custom_op("tdrl::excite_tim_backward", mutates_args=())
def excite_tim_backward(g: torch.Tensor, x: torch.Tensor, a: torch.Tensor | None, k: torch.Tensor | None,
                        frames: int, shift_fold: int, need_gk: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gx, ga, gk)``; ``ga`` is empty without ``a``, ``gk`` empty unless ``need_gk`` (and ``k`` given)."""
    mode = _check(x, a, k, frames, shift_fold)
    if g.shape != x.shape:
        raise ValueError(f"excite_tim_backward: gradient {tuple(g.shape)} vs input {tuple(x.shape)}")
    nt, c, h, w = x.shape
    gx = torch.empty_like(x)
    grid, bc, bhw = _grid(x, frames)
    acc_t = acc_dtype(x.dtype)
    need_gk = need_gk and k is not None
    ga_part = torch.empty((grid[2], nt, c), dtype=acc_t, device=x.device) if a is not None else None
    gk_part = torch.empty((grid[0] * grid[2], c, 3), dtype=acc_t, device=x.device) if need_gk else None
    a_ = a.contiguous() if a is not None else x
    k_ = k.contiguous() if k is not None else x
    launch(_excite_tim_bwd, grid, g, x, a_, k_, gx, ga_part if a is not None else x, gk_part if need_gk else x,
           frames, c, h, w, max(shift_fold, 0), *spatial_strides(g), *spatial_strides(x), *spatial_strides(gx),
           HAS_A=a is not None, K_MODE=mode, NEED_GK=need_gk, ACC=acc_type(x.dtype), BLOCK_C=bc, BLOCK_HW=bhw)
    # second stage of the reductions: a fixed-order sum over the programs' partials
    ga = cast(ga_part.sum(0), a.dtype) if ga_part is not None else x.new_empty(0)
    gk = cast(gk_part.sum(0), k.dtype) if gk_part is not None else x.new_empty(0)
    return gx, ga, gk


@excite_tim_backward.register_fake
def _(g, x, a, k, frames, shift_fold, need_gk):
    ga = torch.empty_like(a) if a is not None else x.new_empty(0)
    gk = torch.empty_like(k) if need_gk and k is not None else x.new_empty(0)
    return torch.empty_like(x), ga, gk


def _setup(ctx, inputs, output) -> None:
    x, a, k, frames, shift_fold = inputs
    ctx.save_for_backward(x, a, k)
    ctx.frames, ctx.shift_fold = frames, shift_fold


def _backward(ctx, g):
    x, a, k = ctx.saved_tensors
    need_gk = k is not None and ctx.needs_input_grad[2]
    gx, ga, gk = excite_tim_backward(g, x, a, k, ctx.frames, ctx.shift_fold, need_gk)
    return gx, (ga if a is not None else None), (gk if need_gk else None), None, None


excite_tim.register_autograd(_backward, setup_context=_setup)
