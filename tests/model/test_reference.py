"""The fast network against the self-contained straightforward one (tdrl.model.reference), for every
enhancement, temporal module, position and memory initialisation, values not shapes.

The straightforward network composes each block itself from ``model.cfg`` (PEM/MEM loop, Conv1d
TIM, concatenating TSM, T x T cosine TD), so it is an independent composition of the non-default
positions: ``model.enhance_position=after`` runs PEM on TM's output and ``model.td_position=before``
takes the TD term on TM's input. A hand composition of one block pins the two positions once more
without the reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet
from tdrl.model.reference import straightforward

TINY = dict(width=0.25, reduction=4, num_classes=5, frames=3, dropout=0.0, td_ratio=0.5)


def randomised(**kw) -> TDRLNet:
    """A tiny network in eval mode whose new modules have random weights (not the identity-like init)."""
    torch.manual_seed(0)
    model = TDRLNet(ModelConfig(**{**TINY, **kw})).eval()
    for name, p in model.named_parameters():
        if ".temporal." in name or ".enhance." in name:
            torch.nn.init.normal_(p, std=0.3)
    return model


def run(model: torch.nn.Module, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    clips = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(clips)


CASES = [
    dict(enhance="pem", temporal="tim"),  # the defaults: PEM before TIM, TD after
    dict(enhance="pem", temporal="tim", enhance_position="after"),
    dict(enhance="pem", temporal="tim", td_position="before"),
    dict(enhance="pem", temporal="tim", enhance_position="after", td_position="before"),
    dict(enhance="pem", temporal="tsm", enhance_position="after", td_position="before"),
    dict(enhance="pem", temporal="tim", mem_init="first"),
    dict(enhance="pem", temporal="tim", mem_init="zeros"),
    dict(enhance="mem", temporal="tim", enhance_position="after"),
    dict(enhance="mem", temporal="tsm"),
    dict(enhance="none", temporal="tsm", td_position="before", td_ratio=0.25),
    dict(enhance="none", temporal="none", td_ratio=1.0),
    dict(enhance="pem", temporal="tim", td_blocks=("layer1.0", "layer4.-1")),
]


# Every case on ResNet-18 (BasicBlock); the position cases once more on ResNet-50 (Bottleneck).
GRID = [("resnet18", c) for c in CASES] + [("resnet50", c) for c in CASES[1:5]]


@pytest.mark.parametrize("backbone,case", GRID, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={x}" for k, x in v.items()))
def test_fast_network_equals_straightforward(case, backbone):
    model = randomised(backbone=backbone, **case)
    fast, fast_td = run(model)
    slow, slow_td = run(straightforward(model))
    assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-4)
    assert torch.allclose(fast_td, slow_td, atol=1e-5, rtol=1e-5)
    assert fast_td.item() > 0  # the TD blocks were found: the comparison covered the TD term


@pytest.mark.parametrize("field,values", [("enhance_position", ("before", "after")),
                                          ("td_position", ("before", "after")),
                                          ("mem_init", ("last", "first", "zeros"))])
def test_each_choice_changes_the_function(field, values):
    """The equality above only means something if the choices lead to different numbers on the same
    weights; otherwise a position silently treated as the default would pass it."""
    outs = [run(randomised(**{field: v})) for v in values]
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            scores_differ = not torch.allclose(outs[i][0], outs[j][0], atol=1e-4)
            td_differs = abs(outs[i][1].item() - outs[j][1].item()) > 1e-3
            assert scores_differ or td_differs, (field, values[i], values[j])


def _pairwise_td(z: torch.Tensor, frames: int, channels: int) -> float:
    """Eq. 7 by explicit loops over clips, channels and ordered frame pairs."""
    n = z.shape[0] // frames
    total = 0.0
    for b in range(n):
        for c in range(channels):
            maps = [z[b * frames + t, c].flatten() for t in range(frames)]
            pairs = [F.cosine_similarity(maps[i], maps[j], dim=0, eps=1e-8).item()
                     for i in range(frames) for j in range(frames) if i != j]
            total += sum(pairs) / len(pairs)
    return total / n


def test_block_positions_by_hand():
    """One BasicBlock with enhance_position=after and td_position=before, composed by hand from its
    own modules: x -> TM -> PEM -> ResConv (+ x), and the TD term of TM's *input* x."""
    model = randomised(backbone="resnet18", enhance="pem", temporal="tim", enhance_position="after",
                       td_position="before", td_blocks=("layer1.0",))
    block = model.layer1[0]
    x = torch.randn(2 * 3, block.conv1.in_channels, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out, td = block(x)
        u = block.enhance(block.temporal(x))  # PEM after TM
        branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(u)))))
        expected = F.relu(branch + x)  # layer1.0 of ResNet-18 has no downsample
        before = F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(block.temporal(block.enhance(x))))))) + x)
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, before, atol=1e-3)  # the other order is really another function
    channels = round(0.5 * x.shape[1])
    assert td.item() == pytest.approx(_pairwise_td(x, 3, channels), rel=1e-5)
    assert td.item() != pytest.approx(_pairwise_td(block.temporal(x).detach(), 3, channels), rel=1e-3)


@pytest.mark.parametrize("target,attr,case", [
    ("tdrl.model.pem", "initial_memory", dict(enhance="pem", temporal="tim")),
    ("tdrl.model.temporal_shift", "temporal_shift", dict(enhance="none", temporal="tsm")),
    ("tdrl.model.block", "temporal_diversity", dict(enhance="none", temporal="tim")),
    ("tdrl.model.mem", "excite", dict(enhance="mem", temporal="none")),
])
def test_reference_does_not_share_the_fast_helpers(monkeypatch, target, attr, case):
    """Break one fast-path helper: the fast network changes, the straightforward one must not, so
    a bug in a shared helper can never pass the comparison above."""
    import importlib

    model = randomised(backbone="resnet18", **case)
    slow_before = run(straightforward(model))
    module = importlib.import_module(target)
    real = getattr(module, attr)

    def broken(*args, **kwargs):
        return real(*args, **kwargs) * 0.5

    monkeypatch.setattr(module, attr, broken)
    fast_broken = run(model)
    slow_after = run(straightforward(model))
    assert torch.equal(slow_after[0], slow_before[0]) and torch.equal(slow_after[1], slow_before[1])
    assert not (torch.allclose(fast_broken[0], slow_after[0], atol=1e-5)
                and torch.allclose(fast_broken[1], slow_after[1], atol=1e-5))
