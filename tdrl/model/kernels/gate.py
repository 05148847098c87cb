"""PEM's gate recurrence over T as one kernel (used by :mod:`tdrl.model.kernels.pem`).

Inputs are the pre-activations of PEM's two reductions on every frame, ``q = [W_1 x + b_1 | W_2 x + b_2]``
``(N*T, 2 C_r)`` (one matmul, outside), and the gate's linear map ``w`` ``(C_r, 2 C_r)`` = [W_m | W_d]
with bias ``b``. One program per clip runs the whole recurrence (paper eqs. 4-5) in registers:

    d_t = relu(q2[t+1]) - relu(q1[t]) for t < T-1,  d_{T-1} = 1
    m_0 = d_{T-2} ("last"), d_0 ("first") or 0 ("zeros")
    gamma_t = sigmoid(W_m m_{t-1} + W_d d_t + b),   m_t = m_{t-1} + gamma_t (d_t - m_{t-1})

one launch instead of ~6 small ones per frame, and writes ``state`` ``(N*T, 4 C_r)`` =
[gamma_t | m_{t-1} | d_t | m_t]. The backward is a reverse-time loop (one program per clip again)
that returns the gradients of ``q`` and of the gate's pre-activation ``s``; the weight and bias
gradients are then one matmul and one sum over all clips and frames (``s^T [m_{t-1} | d_t]``,
``sum s``), so no program accumulates across clips: deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tdrl.model.kernels.launch import acc_type, launch

MEMORY_INITS = {"last": 0, "first": 1, "zeros": 2}


@triton.jit
def _difference(q_ptr, f0, t, T, CR, j, jmask, ACC: tl.constexpr):
    """d_t along ``j``: relu(q2[t+1]) - relu(q1[t]) for t < T-1, ones for the last frame."""
    last = t >= T - 1
    q2 = tl.load(q_ptr + (f0 + t + 1) * (2 * CR) + CR + j, mask=jmask & (t < T - 1), other=0.0).to(ACC)
    q1 = tl.load(q_ptr + (f0 + t) * (2 * CR) + j, mask=jmask & (t < T - 1), other=0.0).to(ACC)
    d = tl.maximum(q2, 0.0) - tl.maximum(q1, 0.0)
    return tl.where(last, 1.0, d)


@triton.jit
def _gate_fwd(q_ptr, w_ptr, b_ptr, state_ptr, T, CR, INIT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
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
        m = _difference(q_ptr, f0, T - 2, T, CR, j, jmask, ACC)
    elif INIT == 1:
        m = _difference(q_ptr, f0, 0, T, CR, j, jmask, ACC)
    else:
        m = tl.zeros([BLOCK], dtype=ACC)
    m = tl.where(jmask, m, 0.0)
    for t in range(T):
        d = tl.where(jmask, _difference(q_ptr, f0, t, T, CR, j, jmask, ACC), 0.0)
        s = tl.sum(w_m * m[None, :], axis=1) + tl.sum(w_d * d[None, :], axis=1) + bias
        gamma = tl.sigmoid(s)
        row = (f0 + t) * (4 * CR)
        tl.store(state_ptr + row + i, gamma, mask=imask)
        tl.store(state_ptr + row + CR + j, m, mask=jmask)
        tl.store(state_ptr + row + 2 * CR + j, d, mask=jmask)
        m = m + gamma * (d - m)
        m = tl.where(imask, m, 0.0)
        tl.store(state_ptr + row + 3 * CR + i, m, mask=imask)


@triton.jit
def _gate_bwd(gmem_ptr, q_ptr, w_ptr, state_ptr, gq_ptr, gs_ptr, T, CR,
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
    tl.store(gq_ptr + f0 * (2 * CR) + CR + j, zero, mask=jmask)  # q2 of the first frame is never read
    tl.store(gq_ptr + (f0 + T - 1) * (2 * CR) + j, zero, mask=jmask)  # nor q1 of the last
    for tt in range(T):
        t = T - 1 - tt
        row = (f0 + t) * (4 * CR)
        gm += tl.load(gmem_ptr + (f0 + t) * CR + i, mask=imask, other=0.0).to(ACC)
        gamma = tl.load(state_ptr + row + i, mask=imask, other=0.0).to(ACC)
        m_prev = tl.load(state_ptr + row + CR + i, mask=imask, other=0.0).to(ACC)
        d = tl.load(state_ptr + row + 2 * CR + i, mask=imask, other=0.0).to(ACC)
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
            q2 = tl.load(q_ptr + (f0 + t + 1) * (2 * CR) + CR + j, mask=jmask, other=0.0).to(ACC)
            q1 = tl.load(q_ptr + (f0 + t) * (2 * CR) + j, mask=jmask, other=0.0).to(ACC)
            smask = jmask & (t != seed)  # the seed frame's gradient is written once, after the loop
            tl.store(gq_ptr + (f0 + t + 1) * (2 * CR) + CR + j, tl.where(q2 > 0, gd, 0.0), mask=smask)
            tl.store(gq_ptr + (f0 + t) * (2 * CR) + j, tl.where(q1 > 0, -gd, 0.0), mask=smask)
    if INIT != 2:
        gd = gd_seed + gm  # gm is now the gradient of m_0 = d_seed
        q2 = tl.load(q_ptr + (f0 + seed + 1) * (2 * CR) + CR + j, mask=jmask, other=0.0).to(ACC)
        q1 = tl.load(q_ptr + (f0 + seed) * (2 * CR) + j, mask=jmask, other=0.0).to(ACC)
        tl.store(gq_ptr + (f0 + seed + 1) * (2 * CR) + CR + j, tl.where(q2 > 0, gd, 0.0), mask=jmask)
        tl.store(gq_ptr + (f0 + seed) * (2 * CR) + j, tl.where(q1 > 0, -gd, 0.0), mask=jmask)


def gate_forward(q: torch.Tensor, w: torch.Tensor, b: torch.Tensor, frames: int, init: str) -> torch.Tensor:
    """``state`` ``(N*T, 4 C_r)`` = [gamma | m_{t-1} | d | m] in the dtype of ``q`` ``(N*T, 2 C_r)``
    (float32 or float64; contiguous, like ``w`` and ``b``)."""
    nt, cr = q.shape[0], q.shape[1] // 2
    state = torch.empty((nt, 4 * cr), dtype=q.dtype, device=q.device)
    launch(_gate_fwd, (nt // frames,), q, w, b, state, frames, cr, INIT=MEMORY_INITS[init], ACC=acc_type(q.dtype),
           BLOCK=triton.next_power_of_2(cr))
    return state


def gate_backward(gmem: torch.Tensor, q: torch.Tensor, w: torch.Tensor, state: torch.Tensor, frames: int,
                  init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g q (N*T, 2 C_r), g s (N*T, C_r))`` from the memories' gradient ``gmem`` ``(N*T, C_r)``."""
    nt, cr = q.shape[0], q.shape[1] // 2
    gq = torch.empty_like(q)
    gs = torch.empty((nt, cr), dtype=q.dtype, device=q.device)
    launch(_gate_bwd, (nt // frames,), gmem, q, w, state, gq, gs, frames, cr, INIT=MEMORY_INITS[init],
           ACC=acc_type(q.dtype), BLOCK=triton.next_power_of_2(cr))
    return gq, gs
