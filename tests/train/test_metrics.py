"""Top-k accuracy against a brute-force reference; multi-view averaging; ensembles."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.train.evaluate import ensemble, predict, topk_accuracy, topk_correct


def brute_force(scores: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """A label is in the top k if fewer than k classes score strictly higher (scores distinct here)."""
    hits = 0
    for row, label in zip(scores.tolist(), labels.tolist()):
        higher = sum(1 for s in row if s > row[label])
        hits += higher < k
    return hits


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), k_classes=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_topk_matches_brute_force(n, k_classes, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randperm(n * k_classes, generator=g).view(n, k_classes).float()  # distinct: no ties
    labels = torch.randint(0, k_classes, (n,), generator=g)
    got = topk_correct(scores, labels, (1, 2, 5))
    for k in (1, 2, 5):
        assert got[k] == brute_force(scores, labels, k)


def test_topk_accuracy_percent():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 0, 2])
    acc = topk_accuracy(scores, labels, (1, 2))
    assert acc == {"top1": 25.0, "top2": 50.0}


class _Fixed(torch.nn.Module):
    """Scores = per-clip mean pixel for class 0 and its negative for class 1."""

    def forward(self, clips):
        m = clips.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, -m], dim=1), clips.new_zeros(())


def test_multi_view_scores_are_averaged_over_views():
    clips = torch.stack([torch.full((3, 2, 3, 4, 4), v) for v in (1.0, -3.0)])  # (N=2, V=3, T, C, H, W)
    clips[0, 0] = -2.0  # views of video 0: -2, 1, 1 -> mean 0
    scores, labels, _ = predict(_Fixed(), [(clips, torch.tensor([0, 1]))], torch.device("cpu"))
    assert torch.allclose(scores, torch.tensor([[0.0, 0.0], [-3.0, 3.0]]))


def test_ensemble_averages_probabilities():
    a = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    e = ensemble([a, b])
    assert torch.allclose(e, (a.softmax(1) + b.softmax(1)) / 2)
    assert torch.allclose(e.sum(1), torch.ones(2))
