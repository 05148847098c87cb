"""The global batch on any number of workers (tdrl.train.batching): the same clips per step whatever the
worker count, DistributedSampler's batches at full size, micro-batches within batch_size, and a
step's gradient equal to the global batch's mean gradient after DDP's averaging."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from tdrl.train.batching import GlobalBatchSampler, loss_weight, micro_steps, rank_share


def _steps(size: int, global_batch: int, micro: int, world: int, epoch: int, seed: int = 0):
    """Per optimiser step: the micro-batches of every rank, ``[[rank0 micro-batches], [rank1 ...], ...]``."""
    per_rank = []
    for r in range(world):
        s = GlobalBatchSampler(size, global_batch, micro, r, world, seed=seed)
        s.set_epoch(epoch)
        mbs = list(s)
        assert len(mbs) == len(s) == s.steps * s.micro_steps
        per_rank.append([mbs[i:i + s.micro_steps] for i in range(0, len(mbs), s.micro_steps)])
    return [list(step) for step in zip(*per_rank)]


@pytest.mark.parametrize("size,batch,world,epoch", [(96, 8, 1, 0), (96, 4, 2, 3), (100, 3, 4, 1), (37, 2, 3, 5)])
def test_full_size_is_what_distributed_sampler_gave(size, batch, world, epoch):
    for rank in range(world):
        ref = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True, seed=7, drop_last=True)
        ref.set_epoch(epoch)
        expected = [b.tolist() for b in DataLoader(range(size), batch_size=batch, sampler=ref, drop_last=True)]
        ours = GlobalBatchSampler(size, batch * world, batch, rank, world, seed=7)
        ours.set_epoch(epoch)
        assert ours.micro_steps == 1 and list(ours) == expected


@pytest.mark.parametrize("max_workers,batch", [(4, 8), (3, 2), (2, 1)])
def test_every_worker_count_trains_the_same_global_batches(max_workers, batch):
    size, g = 101, batch * max_workers
    reference = [sorted(i for mb in step[0] for i in mb) for step in _steps(size, g, batch, 1, epoch=2)]
    assert len(reference) == size // g and all(len(b) == g for b in reference)
    for world in range(1, max_workers + 1):
        steps = _steps(size, g, batch, world, epoch=2)
        assert len(steps) == size // g  # same steps per epoch: the lr schedule's clock is unchanged
        for s, ranks in enumerate(steps):
            clips = [i for rank in ranks for mb in rank for i in mb]
            assert sorted(clips) == reference[s] and len(set(clips)) == g  # each clip once, same set
            assert all(0 < len(mb) <= batch for rank in ranks for mb in rank)  # never above batch_size
    # another epoch, another order
    assert _steps(size, g, batch, 1, epoch=3)[0] != _steps(size, g, batch, 1, epoch=2)[0]


def test_shares_and_micro_steps_by_hand():
    # 32 clips on 3 workers: shares 11, 11, 10; with batch_size 8: 2 micro-batches each
    assert [rank_share(32, r, 3) for r in range(3)] == [11, 11, 10]
    assert [micro_steps(32, 8, r, 3) for r in range(3)] == [2, 2, 2]
    # on one worker: 4 micro-batches of 8; on four: 1 of 8
    assert micro_steps(32, 8, 0, 1) == 4 and micro_steps(32, 8, 3, 4) == 1
    s = GlobalBatchSampler(64, 32, 8, 2, 3)
    assert [len(mb) for mb in s][:2] == [5, 5]  # rank 2's 10 clips in 2 micro-batches
    assert loss_weight(8, 4, 32) == 1.0 and loss_weight(5, 3, 32) == pytest.approx(15 / 32)
    with pytest.raises(ValueError, match="cannot share"):
        GlobalBatchSampler(64, 4, 2, 0, 5)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_accumulated_gradient_is_the_global_batch_mean(world):
    """Each rank accumulates weighted micro-batch gradients, DDP averages over ranks: the result is the
    gradient of the mean loss over the global batch, as on the configured 4 workers."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    net = torch.nn.Linear(5, 3)
    g, batch = 16, 4  # batch_size 4 x MAX 4 workers
    steps = _steps(40, g, batch, world, epoch=0)

    def grad(loss: torch.Tensor) -> torch.Tensor:
        net.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    for ranks in steps:
        every = [i for rank in ranks for mb in rank for i in mb]
        expected = grad(torch.nn.functional.cross_entropy(net(x[every]), y[every]))
        per_rank = []
        for rank in ranks:
            acc = 0
            for mb in rank:
                loss = torch.nn.functional.cross_entropy(net(x[mb]), y[mb])
                acc = acc + grad(loss * loss_weight(len(mb), world, g))
            per_rank.append(acc)
        ddp = torch.stack(per_rank).mean(0)  # what DDP's all-reduce average gives
        assert torch.allclose(ddp, expected, atol=1e-6), (world, (ddp - expected).abs().max())
