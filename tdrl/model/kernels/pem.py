"""PEM's enhancement vectors as one operator: ``tdrl::pem_enhance``.

From the block input ``x`` ``(N*T, C, H, W)`` and PEM's parameters, the enhancement
``a = sigmoid(W_a m_t + b_a)`` ``(N*T, C)`` of paper eqs. 4-6: the frame pooling (one read of ``x``),
PEM's two reductions as one matmul over all frames, the whole gate recurrence in one Triton launch
(:mod:`tdrl.model.kernels.gate`), and W_a as one matmul. The backward is one operator too: the
recurrence backwards in one launch, every weight's gradient as one matmul over all clips and
frames, and the input's gradient as the pooling's broadcast (an expanded view: it costs no pass of
its own until autograd adds it to the excitation's gradient).

Eager PEM is ~25 small operations per block forward and ~50 backward (a Python loop over T, four
``nn.Linear`` calls and their backward); at batch sizes that keep a GPU busy those launches, not the
arithmetic, set its time. Here the host sees two operators. Everything runs in float32 (float64 for
float64 input), autocast or not: the vectors are small, and a bf16 gate would round the recurrence.
"""

from __future__ import annotations

import torch

from tdrl.model.kernels.gate import MEMORY_INITS, gate_backward, gate_forward
from tdrl.model.kernels.launch import acc_dtype, cast, check_tensors

Tensor = torch.Tensor


def _check(x: Tensor, w1: Tensor, w2: Tensor, wg: Tensor, wa: Tensor, frames: int, init: str) -> None:
    check_tensors(x, w1, w2, wg, wa)
    if init not in MEMORY_INITS:
        raise ValueError(f"pem_enhance: unknown memory initialisation {init!r}; choose one of {', '.join(MEMORY_INITS)}")
    if x.dim() != 4 or x.shape[0] % frames or frames < 2:
        raise ValueError(f"pem_enhance expects frames folded (N*T, C, H, W) with T={frames} >= 2, got {tuple(x.shape)}")
    c, cr = x.shape[1], w1.shape[0]
    if w1.shape != (cr, c) or w2.shape != (cr, c) or wg.shape != (cr, 2 * cr) or wa.shape != (c, cr):
        raise ValueError(f"pem_enhance: weights must be f1/f2 (C_r, C), w_g (C_r, 2 C_r), w_a (C, C_r) for C={c}; got "
                         f"{tuple(w1.shape)}, {tuple(w2.shape)}, {tuple(wg.shape)}, {tuple(wa.shape)}")


@torch.library.custom_op("tdrl::pem_enhance", mutates_args=())
def pem_enhance(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, wg: Tensor, bg: Tensor, wa: Tensor,
                ba: Tensor, frames: int, init: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(a, pooled, q, state)``: the enhancement ``(N*T, C)`` and what the backward reads (pooled frames
    ``(N*T, C)``, the reductions' pre-activations ``(N*T, 2 C_r)``, the recurrence's state ``(N*T, 4 C_r)``),
    all float32 (float64 for float64 ``x``)."""
    _check(x, w1, w2, wg, wa, frames, init)
    acc = acc_dtype(x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        pooled = x.mean(dim=(2, 3), dtype=acc)  # (N*T, C): x_t of eq. 4
        q = torch.addmm(cast(torch.cat([b1, b2]), acc), pooled, cast(torch.cat([w1, w2]), acc).t())  # f1 | f2, pre-ReLU
        state = gate_forward(q, cast(wg, acc).contiguous(), cast(bg, acc).contiguous(), frames, init)
        cr = w1.shape[0]
        a = torch.sigmoid(torch.addmm(cast(ba, acc), state[:, 3 * cr:], cast(wa, acc).t()))  # eq. 6
    return a, pooled, q, state


@pem_enhance.register_fake
def _(x, w1, b1, w2, b2, wg, bg, wa, ba, frames, init):
    acc = acc_dtype(x.dtype)
    nt, c = x.shape[:2]
    cr = w1.shape[0]
    return (x.new_empty((nt, c), dtype=acc), x.new_empty((nt, c), dtype=acc), x.new_empty((nt, 2 * cr), dtype=acc),
            x.new_empty((nt, 4 * cr), dtype=acc))


@torch.library.custom_op("tdrl::pem_enhance_backward", mutates_args=())
def pem_enhance_backward(ga: Tensor, a: Tensor, pooled: Tensor, q: Tensor, state: Tensor, w1: Tensor, w2: Tensor,
                         wg: Tensor, wa: Tensor, frames: int, init: str, x_shape: list[int],
                         x_dtype: torch.dtype) -> list[Tensor]:
    """``[gx, g w1, g b1, g w2, g b2, g wg, g bg, g wa, g ba]`` from ``ga``, the enhancement's gradient;
    ``gx`` (for ``x`` of ``x_shape`` and ``x_dtype``) is the pooling's gradient broadcast over space (a
    stride-0 view)."""
    nt, c, h, w = x_shape
    cr = w1.shape[0]
    acc = a.dtype
    with torch.autocast(a.device.type, enabled=False):
        gl = torch.ops.aten.sigmoid_backward(cast(ga, acc), a)  # through the sigmoid: (N*T, C)
        gm = gl @ cast(wa, acc)  # (N*T, C_r)
        gq, gs = gate_backward(gm, q, cast(wg, acc).contiguous(), state, frames, init)
        # the pooled frames' gradient (N*T, C), with the mean's 1 / (H W) as the product's alpha
        gpooled = torch.addmm(a, gq, cast(torch.cat([w1, w2]), acc), beta=0, alpha=1 / (h * w))
        gx = cast(gpooled, x_dtype).view(nt, c, 1, 1).expand(nt, c, h, w)
        grads = [gx,
                 gq[:, :cr].t() @ pooled, gq[:, :cr].sum(0), gq[:, cr:].t() @ pooled, gq[:, cr:].sum(0),
                 gs.t() @ state[:, cr:3 * cr], gs.sum(0),  # [m_{t-1} | d_t] meet W_g's two halves
                 gl.t() @ state[:, 3 * cr:], gl.sum(0)]
    params = (w1, w1, w2, w2, wg, wg, wa, wa)  # each gradient in its parameter's dtype
    return grads[:1] + [cast(g, p.dtype) for g, p in zip(grads[1:], params)]


@pem_enhance_backward.register_fake
def _(ga, a, pooled, q, state, w1, w2, wg, wa, frames, init, x_shape, x_dtype):
    nt, c, h, w = x_shape
    cr = w1.shape[0]
    gx = a.new_empty((nt, c, 1, 1), dtype=x_dtype).expand(nt, c, h, w)
    return [gx, torch.empty_like(w1), w1.new_empty(cr), torch.empty_like(w2), w2.new_empty(cr), torch.empty_like(wg),
            wg.new_empty(cr), torch.empty_like(wa), wa.new_empty(c)]


def _setup(ctx, inputs, output) -> None:
    x, w1, b1, w2, b2, wg, bg, wa, ba, frames, init = inputs
    a, pooled, q, state = output
    ctx.save_for_backward(a, pooled, q, state, w1, w2, wg, wa)
    ctx.mark_non_differentiable(pooled, q, state)
    ctx.set_materialize_grads(False)
    ctx.frames, ctx.init = frames, init
    ctx.x_shape, ctx.x_dtype = list(x.shape), x.dtype


def _backward(ctx, ga, *unused):
    if ga is None:
        return (None,) * 11
    a, pooled, q, state, w1, w2, wg, wa = ctx.saved_tensors
    grads = pem_enhance_backward(ga, a, pooled, q, state, w1, w2, wg, wa, ctx.frames, ctx.init, ctx.x_shape,
                                 ctx.x_dtype)
    return (*grads, None, None)


pem_enhance.register_autograd(_backward, setup_context=_setup)


def enhancement(x: Tensor, pem: torch.nn.Module) -> Tensor:
    """The enhancement ``(N*T, C)`` of :class:`tdrl.model.pem.ProgressiveEnhancement` ``pem`` for ``x``."""
    f1, f2 = pem.diff.f1[0], pem.diff.f2[0]
    return pem_enhance(x, f1.weight, f1.bias, f2.weight, f2.bias, pem.w_g.weight, pem.w_g.bias, pem.w_a.weight,
                       pem.w_a.bias, pem.frames, pem.mem_init)[0]
