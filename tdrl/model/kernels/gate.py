"""PEM's gate recurrence over T as one kernel: ``tdrl::pem_gate``.

Inputs are the pre-activations of PEM's two reductions on every frame, ``q1 = W_1 x + b_1`` and
``q2 = W_2 x + b_2`` ``(N*T, C_r)`` (one batched matmul each, outside), and the gate's linear map
``w`` ``(C_r, 2 C_r)`` = [W_m | W_d] with bias ``b``. One program per clip runs the whole recurrence
(paper eqs. 4-5) in registers:

    d_t = relu(q2[t+1]) - relu(q1[t]) for t < T-1,  d_{T-1} = 1
    m_0 = d_{T-2} ("last"), d_0 ("first") or 0 ("zeros")
    gamma_t = sigmoid(W_m m_{t-1} + W_d d_t + b),   m_t = m_{t-1} + gamma_t (d_t - m_{t-1})

and writes the memories ``(N*T, C_r)``: one launch instead of ~6 small ones per frame. It also writes
``aux`` = [gamma_t | m_{t-1} | d_t] ``(N*T, 3 C_r)`` for the backward, a reverse-time loop (one
program per clip again) that returns the gradients of ``q1``, ``q2`` and of the gate's
pre-activation ``s``; the weight and bias gradients are then one matmul and one sum over all
clips and frames (``s^T [m | d]``, ``sum s``), so no program accumulates across clips: deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tdrl.model.kernels.launch import acc_dtype, acc_type, check_tensors, launched

MEMORY_INITS = {"last": 0, "first": 1, "zeros": 2}


@triton.jit
def _difference(q1_ptr, q2_ptr, f0, t, T, CR, j, jmask, ACC: tl.constexpr):
    """d_t along ``j``: relu(q2[t+1]) - relu(q1[t]) for t < T-1, ones for the last frame."""
    last = t >= T - 1
    q2 = tl.load(q2_ptr + (f0 + t + 1) * CR + j, mask=jmask & (t < T - 1), other=0.0).to(ACC)
    q1 = tl.load(q1_ptr + (f0 + t) * CR + j, mask=jmask & (t < T - 1), other=0.0).to(ACC)
    d = tl.maximum(q2, 0.0) - tl.maximum(q1, 0.0)
    return tl.where(last, 1.0, d)


@triton.jit
def _pem_gate_fwd(q1_ptr, q2_ptr, w_ptr, b_ptr, mem_ptr, aux_ptr, T, CR, INIT: tl.constexpr,
                  ACC: tl.constexpr, BLOCK: tl.constexpr):
    n = tl.program_id(0)
    f0 = n * T
    i = tl.arange(0, BLOCK)  # output units (rows of W)
    j = tl.arange(0, BLOCK)  # input units (columns)
    imask = i < CR
    jmask = j < CR
    wmask = imask[:, None] & jmask[None, :]
    w_m = tl.load(w_ptr + i[:, None] * (2 * CR) + j[None, :], mask=wmask, other=0.0).to(ACC)
    w_d = tl.load(w_ptr + i[:, None] * (2 * CR) + CR + j[None, :], mask=wmask, other=0.0).to(ACC)
    bias = tl.load(b_ptr + i, mask=imask, other=0.0).to(ACC)
    if INIT == 0:
        m = _difference(q1_ptr, q2_ptr, f0, T - 2, T, CR, j, jmask, ACC)
    elif INIT == 1:
        m = _difference(q1_ptr, q2_ptr, f0, 0, T, CR, j, jmask, ACC)
    else:
        m = tl.zeros([BLOCK], dtype=ACC)
    m = tl.where(jmask, m, 0.0)
    for t in range(T):
        d = tl.where(jmask, _difference(q1_ptr, q2_ptr, f0, t, T, CR, j, jmask, ACC), 0.0)
        s = tl.sum(w_m * m[None, :], axis=1) + tl.sum(w_d * d[None, :], axis=1) + bias
        gamma = tl.sigmoid(s)
        row = (f0 + t) * (3 * CR)
        tl.store(aux_ptr + row + i, gamma, mask=imask)
        tl.store(aux_ptr + row + CR + j, m, mask=jmask)
        tl.store(aux_ptr + row + 2 * CR + j, d, mask=jmask)
        m = m + gamma * (d - m)
        m = tl.where(imask, m, 0.0)
        tl.store(mem_ptr + (f0 + t) * CR + i, m.to(mem_ptr.dtype.element_ty), mask=imask)


@triton.jit
def _pem_gate_bwd(gmem_ptr, q1_ptr, q2_ptr, w_ptr, aux_ptr, gq1_ptr, gq2_ptr, gs_ptr, T, CR,
                  INIT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    n = tl.program_id(0)
    f0 = n * T
    i = tl.arange(0, BLOCK)
    j = tl.arange(0, BLOCK)
    imask = i < CR
    jmask = j < CR
    wmask = imask[:, None] & jmask[None, :]
    w_m = tl.load(w_ptr + i[:, None] * (2 * CR) + j[None, :], mask=wmask, other=0.0).to(ACC)
    w_d = tl.load(w_ptr + i[:, None] * (2 * CR) + CR + j[None, :], mask=wmask, other=0.0).to(ACC)
    # frame index whose difference also seeded the memory (its gradient gets g(m_0) at the end)
    if INIT == 0:
        seed = T - 2
    elif INIT == 1:
        seed = 0
    else:
        seed = -1
    gm = tl.zeros([BLOCK], dtype=ACC)
    gd_seed = tl.zeros([BLOCK], dtype=ACC)
    zero = tl.zeros([BLOCK], dtype=ACC)
    tl.store(gq2_ptr + f0 * CR + j, zero.to(gq2_ptr.dtype.element_ty), mask=jmask)  # q2[0] is never read
    tl.store(gq1_ptr + (f0 + T - 1) * CR + j, zero.to(gq1_ptr.dtype.element_ty), mask=jmask)  # nor q1[T-1]
    for tt in range(T):
        t = T - 1 - tt
        row = (f0 + t) * (3 * CR)
        gm += tl.load(gmem_ptr + (f0 + t) * CR + i, mask=imask, other=0.0).to(ACC)
        gamma = tl.load(aux_ptr + row + i, mask=imask, other=0.0).to(ACC)
        m_prev = tl.load(aux_ptr + row + CR + i, mask=imask, other=0.0).to(ACC)
        d = tl.load(aux_ptr + row + 2 * CR + i, mask=imask, other=0.0).to(ACC)
        gs = gm * (d - m_prev) * gamma * (1.0 - gamma)
        tl.store(gs_ptr + (f0 + t) * CR + i, gs, mask=imask)
        # back through s = W_m m_{t-1} + W_d d_t + b and m_t = m_{t-1} + gamma (d_t - m_{t-1})
        gd = tl.sum(w_d * gs[:, None], axis=0) + gm * gamma
        gm = tl.sum(w_m * gs[:, None], axis=0) + gm * (1.0 - gamma)
        gd = tl.where(jmask, gd, 0.0)
        gm = tl.where(jmask, gm, 0.0)
        if t < T - 1:
            keep = t == seed
            gd_seed = tl.where(keep, gd, gd_seed)
            q2 = tl.load(q2_ptr + (f0 + t + 1) * CR + j, mask=jmask, other=0.0).to(ACC)
            q1 = tl.load(q1_ptr + (f0 + t) * CR + j, mask=jmask, other=0.0).to(ACC)
            smask = jmask & (t != seed)  # the seed frame's gradient is written once, after the loop
            tl.store(gq2_ptr + (f0 + t + 1) * CR + j, tl.where(q2 > 0, gd, 0.0).to(gq2_ptr.dtype.element_ty),
                     mask=smask)
            tl.store(gq1_ptr + (f0 + t) * CR + j, tl.where(q1 > 0, -gd, 0.0).to(gq1_ptr.dtype.element_ty),
                     mask=smask)
    if INIT != 2:
        gd = gd_seed + gm  # gm is now the gradient of m_0 = d_seed
        q2 = tl.load(q2_ptr + (f0 + seed + 1) * CR + j, mask=jmask, other=0.0).to(ACC)
        q1 = tl.load(q1_ptr + (f0 + seed) * CR + j, mask=jmask, other=0.0).to(ACC)
        tl.store(gq2_ptr + (f0 + seed + 1) * CR + j, tl.where(q2 > 0, gd, 0.0).to(gq2_ptr.dtype.element_ty),
                 mask=jmask)
        tl.store(gq1_ptr + (f0 + seed) * CR + j, tl.where(q1 > 0, -gd, 0.0).to(gq1_ptr.dtype.element_ty),
                 mask=jmask)


def _check(q1: torch.Tensor, q2: torch.Tensor, w: torch.Tensor, b: torch.Tensor, frames: int, init: str) -> int:
    check_tensors(q1, q2, w, b)
    if init not in MEMORY_INITS:
        raise ValueError(f"pem_gate: unknown memory initialisation {init!r}; choose one of {', '.join(MEMORY_INITS)}")
    nt, cr = q1.shape
    if q2.shape != q1.shape or w.shape != (cr, 2 * cr) or b.shape != (cr,) or nt % frames or frames < 2:
        raise ValueError(f"pem_gate: q1/q2 (N*T, C_r), w (C_r, 2 C_r), b (C_r,) with T={frames} >= 2; got "
                         f"{tuple(q1.shape)}, {tuple(q2.shape)}, {tuple(w.shape)}, {tuple(b.shape)}")
    return MEMORY_INITS[init]


@torch.library.custom_op("tdrl::pem_gate", mutates_args=())
def pem_gate(q1: torch.Tensor, q2: torch.Tensor, w: torch.Tensor, b: torch.Tensor, frames: int,
             init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(memories (N*T, C_r) in q1's dtype, aux (N*T, 3 C_r))`` for ``init`` in last/first/zeros."""
    mode = _check(q1, q2, w, b, frames, init)
    nt, cr = q1.shape
    q1, q2, w, b = q1.contiguous(), q2.contiguous(), w.contiguous(), b.contiguous()
    mem = torch.empty_like(q1)
    aux = torch.empty((nt, 3 * cr), dtype=acc_dtype(q1.dtype), device=q1.device)
    launched()
    _pem_gate_fwd[(nt // frames,)](q1, q2, w, b, mem, aux, frames, cr, INIT=mode, ACC=acc_type(q1.dtype),
                                   BLOCK=triton.next_power_of_2(cr))
    return mem, aux


@pem_gate.register_fake
def _(q1, q2, w, b, frames, init):
    nt, cr = q1.shape
    return torch.empty_like(q1), q1.new_empty((nt, 3 * cr), dtype=acc_dtype(q1.dtype))


@torch.library.custom_op("tdrl::pem_gate_backward", mutates_args=())
def pem_gate_backward(gmem: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, w: torch.Tensor, aux: torch.Tensor,
                      frames: int, init: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(g q1, g q2, g s)``: the gate pre-activation's gradient ``s`` gives the weight's and bias's."""
    nt, cr = q1.shape
    mode = _check(q1, q2, w, w.new_empty(cr), frames, init)
    gmem, q1, q2, w = gmem.contiguous(), q1.contiguous(), q2.contiguous(), w.contiguous()
    gq1, gq2 = torch.empty_like(q1), torch.empty_like(q2)
    gs = torch.empty((nt, cr), dtype=aux.dtype, device=aux.device)
    launched()
    _pem_gate_bwd[(nt // frames,)](gmem, q1, q2, w, aux, gq1, gq2, gs, frames, cr, INIT=mode,
                                   ACC=acc_type(q1.dtype), BLOCK=triton.next_power_of_2(cr))
    return gq1, gq2, gs


@pem_gate_backward.register_fake
def _(gmem, q1, q2, w, aux, frames, init):
    return torch.empty_like(q1), torch.empty_like(q2), aux.new_empty((q1.shape[0], q1.shape[1]))


def _setup(ctx, inputs, output) -> None:
    q1, q2, w, b, frames, init = inputs
    ctx.save_for_backward(q1, q2, w, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.frames, ctx.init = frames, init


def _backward(ctx, gmem, gaux):
    q1, q2, w, aux = ctx.saved_tensors
    cr = q1.shape[1]
    gq1, gq2, gs = pem_gate_backward(gmem, q1, q2, w, aux, ctx.frames, ctx.init)
    gw = (gs.t() @ aux[:, cr:]).to(w.dtype)  # (C_r, 2 C_r): sum over clips and frames of s (x) [m_{t-1} ; d_t]
    gb = gs.sum(0).to(w.dtype)
    return gq1, gq2, gw, gb, None, None


pem_gate.register_autograd(_backward, setup_context=_setup)
