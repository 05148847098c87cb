"""The network on the Triton path (``model.kernels=triton``, Triton's interpreter on the CPU) and with
``model.recompute``: equal to the eager network (float32, relative 1e-4 on the loss and every
gradient), to the straightforward reference in float64, bitwise-repeatable gradients, a
recomputation that leaves the forward and the gradients bitwise unchanged and keeps only TSN's
activations, and a network torch.compile traces in one graph."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from kernel_helpers import needs_interpreter, rel

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet
from tdrl.model.reference import loop_mem, straightforward

TINY = dict(backbone="resnet18", width=0.125, reduction=4, num_classes=5, frames=3, dropout=0.0)
CASES = [  # the ablations' paths through the blocks (tests/model/test_reference.py's grid)
    dict(enhance_position="after"), dict(td_position="before"), dict(enhance_position="after", td_position="before"),
    dict(temporal="tsm", enhance_position="after", td_position="before"), dict(mem_init="first"),
    dict(mem_init="zeros"), dict(enhance="mem", enhance_position="after"), dict(enhance="mem", temporal="tsm"),
    dict(enhance="none", temporal="tsm", td_position="before", td_ratio=0.25),
    dict(enhance="none", temporal="none", td_ratio=1.0), dict(td_blocks=("layer1.0", "layer4.-1")),
]


def randomised(cfg: ModelConfig, dtype=torch.float32) -> TDRLNet:
    torch.manual_seed(0)
    model = TDRLNet(cfg).to(dtype)
    for name, p in model.named_parameters():
        if ".temporal." in name or ".enhance." in name:  # away from the init: every term matters
            torch.nn.init.normal_(p, std=0.3)
    return model


def step(net: torch.nn.Module, owner: TDRLNet, dtype=torch.float32, clips: int = 1):
    """Loss, TD term and every parameter's gradient of one step on fixed clips (N, T, C, H, W); the
    TD term weighs 0.1 so that its gradient matters next to the cross-entropy's."""
    owner.zero_grad(set_to_none=True)
    x = torch.randn(clips, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=dtype)
    scores, td = net(x)
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 3][:clips])) + 0.1 * td
    loss.backward()
    return loss.detach(), td.detach(), {n: p.grad.clone() for n, p in owner.named_parameters() if p.grad is not None}


def assert_close(a, b, tol):
    assert rel(a[0], b[0]) < tol and rel(a[1], b[1]) < tol
    assert a[2].keys() == b[2].keys()
    worst = {n: rel(a[2][n], b[2][n]) for n in b[2]}
    assert max(worst.values()) < tol, max(worst.items(), key=lambda kv: kv[1])


def assert_equal(a, b):
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[2].keys() == b[2].keys() and all(torch.equal(a[2][n], g) for n, g in b[2].items())


@needs_interpreter
def test_triton_equals_eager_in_float32():
    cfg = ModelConfig(**TINY)  # PEM before TIM, TD after TM on three blocks: the defaults
    eager = step(m := randomised(dataclasses.replace(cfg, kernels="eager")), m, clips=2)
    triton = step(m := randomised(dataclasses.replace(cfg, kernels="triton")), m, clips=2)
    assert len(triton[2]) == len(list(m.parameters()))
    assert_close(triton, eager, 1e-4)


@needs_interpreter
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_path_equals_the_straightforward_network_in_float64(case):
    model = randomised(ModelConfig(**TINY, kernels="triton", **case), torch.float64)
    assert_close(step(model, model, torch.float64, 2), step(straightforward(model), model, torch.float64, 2), 1e-10)


@needs_interpreter
def test_mem_on_the_triton_path_matches_the_frame_loop():
    model = randomised(ModelConfig(**TINY, enhance="mem", kernels="triton"), torch.float64)
    mem = model.layer1[0].enhance
    x = torch.randn(6, mem.w_a.out_features, 3, 2, dtype=torch.float64)
    from tdrl.model.kernels.excite_tim import excite_tim

    assert rel(excite_tim(x, mem.enhancement_triton(x), None, 3), loop_mem(mem, x, 3)) < 1e-12


@needs_interpreter
@pytest.mark.slow
def test_triton_gradients_are_bitwise_repeatable():
    cfg = ModelConfig(**TINY, kernels="triton")
    assert_equal(step(m := randomised(cfg), m, clips=2), step(m := randomised(cfg), m, clips=2))


def _block_step(block: torch.nn.Module, x: torch.Tensor):
    block.zero_grad(set_to_none=True)
    xs = x.clone().requires_grad_()
    out, td = block(xs)
    (out.square().mean() + 0.1 * td).backward()
    return out.detach(), td.detach(), {"x": xs.grad, **{n: p.grad for n, p in block.named_parameters()}}


@needs_interpreter
@pytest.mark.parametrize("case", [{}, dict(enhance_position="after", td_position="before")], ids=["default", "after"])
def test_recompute_on_the_triton_path_is_bitwise_the_same(case):
    """One block with the TD term: the forward, the input's and every parameter's gradient, bitwise."""
    model = randomised(ModelConfig(**TINY, kernels="triton", td_blocks=("layer2.0",), **case))
    block = model.layer2[0]
    x = torch.randn(3, block.conv1.in_channels, 4, 4)
    plain = _block_step(block, x)
    block.recompute = True
    assert_equal(_block_step(block, x), plain)


@pytest.mark.slow
@needs_interpreter
def test_recompute_on_the_triton_path_is_bitwise_the_same_network():
    cfg = ModelConfig(**TINY, kernels="triton")
    assert_equal(step(m := randomised(dataclasses.replace(cfg, recompute=True)), m, clips=2),
                 step(m := randomised(cfg), m, clips=2))


def test_recompute_with_eager_kernels_is_bitwise_the_same():
    cfg = ModelConfig(**TINY, kernels="eager")
    assert_equal(step(m := randomised(dataclasses.replace(cfg, recompute=True)), m, clips=2),
                 step(m := randomised(cfg), m, clips=2))
    clips = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():  # evaluation never checkpoints
        assert torch.equal(randomised(cfg).eval()(clips)[0],
                           randomised(dataclasses.replace(cfg, recompute=True)).eval()(clips)[0])


def test_recompute_keeps_tsn_activations_only():
    """Bytes of the storages a training forward leaves alive (what its backward holds), eager kernels."""
    from tdrl.model.step_stats import measure_step

    base = ModelConfig(backbone="resnet50", width=0.0625, reduction=4, frames=4, num_classes=5, kernels="eager")
    clips = torch.randn(1, 4, 3, 32, 32)
    tsn = measure_step(TDRLNet(dataclasses.replace(base, temporal="none", enhance="none", td_ratio=0.0)), clips)
    tdrl = measure_step(TDRLNet(base), clips)
    recomputed = measure_step(TDRLNet(dataclasses.replace(base, recompute=True)), clips)
    assert tdrl.live_bytes > 1.3 * tsn.live_bytes  # what recomputation is for
    assert recomputed.live_bytes <= 1.10 * tsn.live_bytes


@needs_interpreter
def test_compile_traces_the_triton_network_in_one_graph():
    """torch.compile sees tdrl's kernels as operators: no graph break around them."""
    model = randomised(ModelConfig(**TINY, kernels="triton"))
    explained = torch._dynamo.explain(lambda x: model(x))(torch.randn(1, 3, 3, 32, 32))
    assert explained.graph_break_count == 0 and explained.graph_count == 1
