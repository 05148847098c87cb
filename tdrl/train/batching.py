"""The global batch on any number of workers: what each rank trains on in each optimiser step.

The recipe is stated for ``G = train.global_batch`` clips per step (``batch_size x`` the configured
workers, MAX of an elastic range ``MIN-MAX``); the lr, its schedule and the number of steps per epoch
follow from G alone. An elastic run that lost nodes trains on ``n <`` MAX workers and must still
take steps of G clips, so here every step is one global batch, whatever ``n``:

* the epoch's order is ``torch.randperm(N)`` seeded with ``seed + epoch`` (as ``DistributedSampler``
  draws it), cut into ``N // G`` global batches (the remainder is dropped, as before);
* global batch ``s`` goes to the ranks as its clips ``r, r + n, r + 2n, ...`` for rank ``r`` (shares
  differ by at most one clip when ``n`` does not divide G);
* each rank splits its share into ``k_r = ceil(share / batch_size)`` micro-batches of nearly equal
  size and accumulates their gradients (DDP's ``no_sync`` on all but the last), then steps;
* each micro-batch's mean loss is weighted by ``clips x n / G`` (:func:`loss_weight`). DDP averages
  the ranks' gradients (divides by ``n``), so the step's gradient is the mean over the G clips, as
  with MAX workers.

Why accumulation, not a larger per-worker batch: GPU memory is sized for ``batch_size`` clips per
worker, so a run that lost half its spot nodes must not double what each GPU holds; and BatchNorm
then still normalises over at most ``batch_size`` clips. What differs on fewer workers: BatchNorm
sees micro-batches (``share / k_r`` clips, e.g. 8 of 8 on MAX workers, 8 of 16 on half of them;
slightly fewer when ``n`` does not divide G) and updates its running statistics on each of them, so
``k_r`` times per optimiser step (an average over ~10 / k_r steps at momentum 0.1, not ~10); and
floating-point sums run in another order (docs/training.md, "BatchNorm on fewer workers").

With ``n`` = MAX (every fixed-size run) each rank takes one micro-batch of ``batch_size`` clips per
step, exactly the clips ``DistributedSampler(shuffle=True, drop_last=True)`` with a
``DataLoader(batch_size, drop_last=True)`` gave, with weight 1: fixed runs train as before.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


def rank_share(global_batch: int, rank: int, world: int) -> int:
    """Clips of one global batch that ``rank`` of ``world`` trains on."""
    return len(range(rank, global_batch, world))


def micro_steps(global_batch: int, micro_batch: int, rank: int, world: int) -> int:
    """Micro-batches ``rank`` runs per optimiser step (at most ``micro_batch`` clips each)."""
    return max(1, math.ceil(rank_share(global_batch, rank, world) / micro_batch))


def loss_weight(clips: int, world: int, global_batch: int) -> float:
    """The factor on a micro-batch's mean loss so that, after DDP averages over ``world`` ranks, the
    step's gradient is the mean over the ``global_batch`` clips."""
    return clips * world / global_batch


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` in ``parts`` consecutive pieces whose lengths differ by at most one (longer first)."""
    q, r = divmod(len(items), parts)
    out, i = [], 0
    for p in range(parts):
        n = q + (1 if p < r else 0)
        out.append(items[i:i + n])
        i += n
    return out


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's micro-batches (lists of dataset indices), :func:`micro_steps` per optimiser step,
    for ``len(dataset) // global_batch`` steps per epoch (see the module docstring). Call
    :meth:`set_epoch` every epoch, as with ``DistributedSampler``."""

    def __init__(self, size: int, global_batch: int, micro_batch: int, rank: int, world: int, seed: int = 0) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        if world > global_batch:
            raise ValueError(f"{world} workers cannot share a global batch of {global_batch} clips")
        self.size, self.global_batch, self.micro_batch = size, global_batch, micro_batch
        self.rank, self.world, self.seed, self.epoch = rank, world, seed, 0
        self.steps = size // global_batch
        self.micro_steps = micro_steps(global_batch, micro_batch, rank, world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps * self.micro_steps

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        for s in range(self.steps):
            share = order[s * self.global_batch:(s + 1) * self.global_batch][self.rank::self.world]
            yield from _split(share, self.micro_steps)
