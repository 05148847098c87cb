"""The training objective as the per-worker loop computes it: loss = CE + model.td_lambda x TD, in the
reported numbers and in the gradient the optimiser steps on.

The real loop runs in this process through Ray Train's local mode (``ScalingConfig(num_workers=0)``):
no Ray instance, no MLflow, two epochs of four steps on a 16-clip synthetic set. The loop's trainer
comes from :func:`tdrl.train.trainer.build_trainer`, so the test does not depend on the loop's internal
names beyond two seams it watches: the batch it moves to the device, and its optimiser's first step.

Every assertion compares quantities of the same run, never a trajectory with a constant: how far a
tiny net's TD term falls in a few epochs depends on float rounding (SIMD kernels, thread count, library
versions), while the gradient the loop computed and the gradient of CE + lambda x TD recomputed from the
same weights and batch differ only by rounding, about 1e-6 of their size on any CPU.
"""

from __future__ import annotations

import copy

import pytest

from train_helpers import train_in_process

LAMBDA = 0.5  # large, so the TD term weighs in the gradient; not 1, so a dropped lambda is seen


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory) -> str:
    """2 classes, 8 training and 2 validation clips each, 4 frames of 32 px."""
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth-micro")
    generate_synthetic(root, num_classes=2, train_per_class=8, val_per_class=2, frames=4, size=32, seed=0, workers=1)
    return str(root)


def _watch_first_step(monkeypatch) -> dict:
    """Record the loop's first training batch, and at its first optimiser step the network as it was
    stepped from (a copy) with the gradient the loop computed, by parameter name."""
    from tdrl.train import loop

    seen: dict = {}
    to_device, build_optimizer = loop.batch_to_device, loop.build_optimizer

    def record_batch(*args, **kwargs):
        clips, labels = to_device(*args, **kwargs)
        seen.setdefault("batch", (clips.detach().clone(), labels.detach().clone()))
        return clips, labels

    def record_step(net, t):
        optimizer, scheduler = build_optimizer(net, t)

        def before_step(optimizer, args, kwargs) -> None:
            if "grads" not in seen:
                seen["net"] = copy.deepcopy(net)
                seen["grads"] = {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}

        optimizer.register_step_pre_hook(before_step)
        return optimizer, scheduler

    monkeypatch.setattr(loop, "batch_to_device", record_batch)  # the name the loop calls (imported at its top)
    monkeypatch.setattr(loop, "build_optimizer", record_step)
    return seen


def test_loss_and_gradient_are_those_of_ce_plus_lambda_td(micro_data, tmp_path, monkeypatch):
    import torch
    import torch.nn.functional as F

    seen = _watch_first_step(monkeypatch)
    epochs = train_in_process(micro_data, tmp_path, **{"model.td_lambda": LAMBDA, "model.td_ratio": 0.5,
                                                        "train.epochs": 2})
    assert [m["epoch"] for m in epochs] == [0, 1]
    for m in epochs:
        # Per-batch loss = ce + lambda * td, so the clip-weighted epoch means obey the same identity.
        assert m["train_td"] > 1.0  # the term is there and large enough to tell + from - below
        assert m["train_loss"] == pytest.approx(m["train_ce"] + LAMBDA * m["train_td"], rel=1e-6, abs=1e-6)

    # The gradient of the first step, recomputed from the same weights and batch, term by term.
    net, (clips, labels) = seen["net"], seen["batch"]
    net.train()  # as the loop had it: batch statistics in BatchNorm (dropout is 0 in train_in_process)
    scores, td = net(clips)  # clips (N, T, C, H, W) -> scores (N, K), td ()
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    params = [p for _, p in named]

    def grads(value) -> list[torch.Tensor]:
        out = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(out, params)]

    g_ce, g_td = grads(F.cross_entropy(scores.float(), labels)), grads(td.float())
    expected = [c + LAMBDA * t for c, t in zip(g_ce, g_td)]

    def mismatched(candidate: list[torch.Tensor]) -> list[str]:
        """Tensors whose gradient differs from CE + lambda x TD's by more than rounding (1e-4 of its size;
        seen: at most 2e-6 with default, AVX2 and AVX-512 kernels)."""
        return [n for (n, _), c, e in zip(named, candidate, expected) if (c - e).norm() > 1e-4 * e.norm() + 1e-12]

    # The check tells the objective from each nearby wrong one (TD dropped or detached, lambda ignored,
    # TD subtracted, CE dropped): each differs in some tensor by half a term or more ...
    wrong = {"ce": g_ce, "ce + td": [c + t for c, t in zip(g_ce, g_td)],
             "ce - lambda td": [c - LAMBDA * t for c, t in zip(g_ce, g_td)], "lambda td": [LAMBDA * t for t in g_td]}
    assert all(mismatched(w) for w in wrong.values()), {k: len(mismatched(w)) for k, w in wrong.items()}
    # ... and the loop stepped on CE + lambda x TD, tensor by tensor.
    loop_grads = [seen["grads"].get(n, torch.zeros_like(p)) for n, p in named]
    assert not mismatched(loop_grads), mismatched(loop_grads)
