"""What one training step asks of the host and of memory: operators dispatched and activations kept.

:func:`measure_step` runs one forward + backward of CE + lambda * TD and counts

- ``ops``: every operator call a ``TorchDispatchMode`` sees (aten ops; tdrl's custom operators once
  each), forward and backward: the host-side cost of an eager step;
- ``ops_inner``: the same with the aten ops inside tdrl's operators counted too (but not the tensor
  copies of Triton's interpreter while a kernel runs, which a GPU does not make), and
  ``launches``, the Triton kernel launches;
- ``saved_bytes``: distinct storages saved for backward (``saved_tensors_hooks``) that are not
  parameters, buffers or the input;
- ``live_bytes``: distinct storages the forward created that are still alive when it returns (all
  the backward will use, however it is held: checkpoints and recomputation recipes escape the hooks
  above, and so does whatever is saved inside the recipes' own hooks), without parameters, buffers
  and the input. This is the figure to read for memory; ``saved_bytes`` shows what autograd saves
  outside tdrl's recomputation.

Used by ``benchmarks/op_count.py`` and by the tests that keep recomputation honest.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch
from torch._library.custom_ops import OPDEFS
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass(frozen=True)
class StepStats:
    ops_forward: int
    ops_backward: int
    ops_inner: int
    launches: int
    saved_bytes: int
    live_bytes: int
    loss: torch.Tensor
    grads: dict[str, torch.Tensor]

    @property
    def ops(self) -> int:
        return self.ops_forward + self.ops_backward


def _in_launch() -> bool:
    try:
        from tdrl.model.kernels.launch import IN_LAUNCH  # Triton's launch counter: only when the kernels ran
    except ImportError:  # no Triton here: nothing launches
        return False
    return IN_LAUNCH[0]


def _launches() -> int:
    try:
        from tdrl.model.kernels.launch import LAUNCHES  # Triton's launch counter: only when the kernels ran
    except ImportError:
        return 0
    return LAUNCHES[0]


class _Count(TorchDispatchMode):
    """Counts operator calls and remembers a weak reference to every output's storage."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.inner = self.depth = 0
        self.outputs: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.depth == 0:
            self.ops += 1
        if not _in_launch():
            self.inner += 1
        body = OPDEFS.get(func._schema.name) if func.namespace == "tdrl" else None
        if body is not None:  # run tdrl's operators' Python bodies with the mode on, to count inside
            self.depth += 1
            try:
                with self:
                    out = body._init_fn(*args, **kwargs)
            finally:
                self.depth -= 1
        else:
            out = func(*args, **kwargs)
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                self.outputs[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
        return out


def measure_step(model: torch.nn.Module, clips: torch.Tensor, td_lambda: float = 2e-4) -> StepStats:
    """One training step of ``model`` (a :class:`~tdrl.model.network.TDRLNet`) on ``clips``
    ``(N, T, 3, H, W)`` with labels 0, measured as the module docstring says."""
    model.train()
    keep = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), clips)}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in keep:
            saved[s.data_ptr()] = s.nbytes()
        return t

    labels = torch.zeros(len(clips), dtype=torch.long, device=clips.device)
    launches = _launches()
    fwd, bwd = _Count(), _Count()
    with fwd, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        scores, td = model(clips)
        loss = torch.nn.functional.cross_entropy(scores, labels) + td_lambda * td
    # Garbage in reference cycles is not what the backward holds: Triton's interpreter leaves each launch's
    # argument storages in a cycle (a recursive closure) until the cyclic collector runs.
    gc.collect()
    live = sum(n for ptr, (ref, n) in fwd.outputs.items() if ptr not in keep and not ref.expired())
    with bwd:
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return StepStats(fwd.ops, bwd.ops, fwd.inner + bwd.inner, _launches() - launches, sum(saved.values()), live,
                     loss.detach(), grads)
