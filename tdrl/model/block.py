"""A torchvision residual block with TDRL's branch: enhancement -> temporal module -> ResConv.

The wrapper adopts the block's own submodules under their own names (``conv1``, ``bn1``, ...,
``downsample``), so a torchvision state dict still addresses them; the new modules appear as
``enhance`` and ``temporal``. The shortcut is untouched. The forward returns the block output and
the block's TD term (``None`` when the block is not regularised), so the network can sum the terms
without hooks or module state.

Two switches change how the branch's temporal part (enhancement, temporal module, TD term) is
computed, never what: ``kernels`` (``model.kernels``) picks PyTorch ops or tdrl's fused Triton
kernels (:mod:`tdrl.model.kernels`), and ``recompute`` (``model.recompute``) keeps only what TSN's
block keeps for the backward (the block input, the convolutions' outputs, plus PEM's few per-channel
vectors) and computes the block-sized intermediates again in the backward. On the Triton path that
is :class:`Recipes`: conv1 and the TD loss save the recipe of their input (one kernel call on the
block input) instead of the tensor, so the backward runs that one kernel again. Elsewhere (PyTorch
ops, or inside ``torch.compile``, whose partitioner honours it) it is a selective checkpoint of
enhance -> TM -> TD -> conv1 that keeps the convolution's output, so conv1 never runs twice.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts
from torchvision.models.resnet import BasicBlock, Bottleneck

from tdrl.model.td_loss import temporal_diversity
from tdrl.model.temporal_shift import TemporalShift
from tdrl.model.tim import TemporalInteraction

KERNELS = ("auto", "eager", "triton")


def _keep_convolutions(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    """Recomputation policy: a convolution's output is kept (BatchNorm keeps it anyway), the rest is
    computed again in the backward."""
    return CheckpointPolicy.MUST_SAVE if op is torch.ops.aten.convolution.default else CheckpointPolicy.PREFER_RECOMPUTE


_RECOMPUTE_CONTEXT = functools.partial(create_selective_checkpoint_contexts, _keep_convolutions)
_RECOMPUTE_CONTEXT.cache_hash = "tdrl.block.keep_convolutions.v1"  # lets AOTAutograd cache compiled graphs


class _Recipe:
    """How to make a tensor again: ``fn(*args)``, where an argument may itself be a recipe. Like a
    saved tensor, it refuses to run on a tensor argument modified in place since the forward."""

    def __init__(self, fn: Callable[..., torch.Tensor], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.versions = [a._version if isinstance(a, torch.Tensor) else None for a in args]

    def make(self) -> torch.Tensor:
        for a, v in zip(self.args, self.versions):
            if v is not None and a._version != v:
                raise RuntimeError("model.recompute: a tensor the backward recomputes from was modified in place "
                                   "after the forward")
        with torch.no_grad():
            return self.fn(*(a.make() if isinstance(a, _Recipe) else a for a in self.args))


class Recipes:
    """Saved-tensor hooks that keep a noted intermediate as its recipe instead of its values.

    ``note(fn, *args)`` runs ``fn`` and remembers that its output came from those arguments; when
    autograd saves that very tensor for a backward (``pack``), it stores the recipe, whose arguments
    are the block input, small vectors and parameters that stay alive anyway, and ``unpack`` makes
    the tensor again. Only the outputs noted during one block's forward are matched: they are held
    until that forward ends (so no other tensor can take their ``id`` meanwhile), then ``forget``
    drops them. Autograd keeps the pack hook, and so this object, as long as the graph lives: without
    ``forget`` every noted output would stay alive and nothing would be saved.
    """

    def __init__(self) -> None:
        self._made: dict[int, tuple[torch.Tensor, _Recipe]] = {}

    def note(self, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        out = fn(*args)
        self._made[id(out)] = (out, _Recipe(fn, tuple(self.pack(a) if isinstance(a, torch.Tensor) else a
                                                      for a in args)))
        return out

    def pack(self, t: torch.Tensor) -> Any:
        hit = self._made.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else t

    def forget(self) -> None:
        """Drop the noted outputs (the block's forward is over: nothing more is packed)."""
        self._made.clear()

    @staticmethod
    def unpack(saved: Any) -> torch.Tensor:
        return saved.make() if isinstance(saved, _Recipe) else saved

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


def use_triton(kernels: str, x: torch.Tensor) -> bool:
    """Whether ``model.kernels`` means the Triton kernels for tensor ``x``: triton, or auto on CUDA."""
    if kernels not in KERNELS:
        raise ValueError(f"model.kernels={kernels!r}: choose one of {', '.join(KERNELS)}")
    return kernels == "triton" or (kernels == "auto" and x.is_cuda)


class TemporalBlock(nn.Module):
    def __init__(self, block: nn.Module, *, frames: int, enhance: nn.Module | None,
                 temporal: nn.Module | None, enhance_before: bool = True, td_channels: int = 0,
                 td_before: bool = False, kernels: str = "auto", recompute: bool = False) -> None:
        super().__init__()
        if not isinstance(block, (BasicBlock, Bottleneck)):
            raise TypeError(f"expected a torchvision BasicBlock or Bottleneck, got {type(block).__name__}")
        if kernels not in KERNELS:
            raise ValueError(f"kernels={kernels!r}: choose one of {', '.join(KERNELS)}")
        self.bottleneck = isinstance(block, Bottleneck)
        for name, child in block.named_children():
            self.add_module(name, child)
        if not hasattr(self, "downsample"):
            self.downsample = None
        self.frames = frames
        self.enhance = enhance
        self.temporal = temporal
        self.enhance_before = enhance_before
        self.td_channels = td_channels
        self.td_before = td_before
        self.kernels = kernels
        self.recompute = recompute

    @property
    def has_temporal_part(self) -> bool:
        """Whether the branch does anything TSN's does not (TSN's blocks have nothing to recompute)."""
        return self.enhance is not None or self.temporal is not None or self.td_channels > 0

    def _temporal_eager(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The branch input (enhanced, temporally mixed) and the TD term, with PyTorch ops."""
        u = x
        if self.enhance is not None and self.enhance_before:
            u = self.enhance(u)
        z_before = u  # the temporal module's input
        if self.temporal is not None:
            u = self.temporal(u)
        td = None
        if self.td_channels > 0:
            td = temporal_diversity(z_before if self.td_before else u, self.frames, self.td_channels)
        if self.enhance is not None and not self.enhance_before:
            u = self.enhance(u)
        return u, td

    def _temporal_triton(self, x: torch.Tensor, recipes: Recipes | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_temporal_eager` on the Triton kernels. With the enhancement before TM (the default)
        the excitation and the temporal conv are one pass over ``x``; the ablations that need the
        intermediate tensor (TD before TM, enhancement after TM) take two. With ``recipes``, every
        block-sized intermediate is noted there (``model.recompute``)."""
        # Triton: imported on the Triton path only (seconds, and the eager CPU path must not need it)
        from tdrl.model.kernels.excite_tim import excite_tim as kernel
        from tdrl.model.kernels.td import temporal_diversity as td_kernel

        def excite_tim(*args: Any) -> torch.Tensor:
            return recipes.note(kernel, *args) if recipes is not None else kernel(*args)

        frames = self.frames
        k, fold = None, -1
        if isinstance(self.temporal, TemporalInteraction):
            k = self.temporal.weight
        elif isinstance(self.temporal, TemporalShift):
            fold = x.shape[1] // self.temporal.shift_div
        elif self.temporal is not None:
            raise TypeError(f"no Triton path for temporal module {type(self.temporal).__name__}")
        has_tm = k is not None or fold >= 0

        def temporal(v: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
            return excite_tim(v, a, k, frames, fold) if has_tm or a is not None else v

        def td(v: torch.Tensor) -> torch.Tensor | None:
            return td_kernel(v, frames, self.td_channels) if self.td_channels > 0 else None

        if self.enhance is not None and self.enhance_before:
            a = self.enhance.enhancement_triton(x)  # (N*T, C)
            if self.td_channels > 0 and self.td_before and has_tm:
                u = excite_tim(x, a, None, frames)  # the TD term needs TM's input itself
                return temporal(u), td(u)
            z = temporal(x, a)
            return z, td(z)
        z = temporal(x)
        term = td(x if self.td_before else z)
        if self.enhance is not None:  # after TM
            z = excite_tim(z, self.enhance.enhancement_triton(z), None, frames)
        return z, term

    def _head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The temporal part and the first convolution: what ``recompute`` checkpoints."""
        u, td = (self._temporal_triton if use_triton(self.kernels, x) else self._temporal_eager)(x)
        return self.conv1(u), td

    def _head_recomputed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_head` keeping TSN's activations for the backward (``model.recompute``)."""
        if use_triton(self.kernels, x) and not torch.compiler.is_compiling():
            recipes = Recipes()
            try:
                with recipes.hooks():
                    u, td = self._temporal_triton(x, recipes)
                    return self.conv1(u), td
            finally:
                recipes.forget()
        # respect_saved_tensors_hooks=False: what the checkpoint keeps stays out of outer hooks (as today)
        return checkpoint(self._head, x, use_reentrant=False, context_fn=_RECOMPUTE_CONTEXT,
                          respect_saved_tensors_hooks=False)

    def _tail(self, out: torch.Tensor) -> torch.Tensor:
        """The block's own convolutions after conv1 (the rest of ResConv)."""
        out = self.relu(self.bn1(out))
        if self.bottleneck:
            out = self.relu(self.bn2(self.conv2(out)))
            return self.bn3(self.conv3(out))
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x``: frames folded ``(N*T, C, H, W)``; returns ``(out, td_term or None)``."""
        identity = x if self.downsample is None else self.downsample(x)
        if self.recompute and self.has_temporal_part and torch.is_grad_enabled():
            out, td = self._head_recomputed(x)
        else:
            out, td = self._head(x)
        return self.relu(self._tail(out) + identity), td
