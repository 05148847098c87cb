"""The network on the Triton path (``model.kernels=triton``; Triton's interpreter on the CPU, compiled
kernels on CUDA) and with ``model.recompute``: equal to the eager network (float32, relative 1e-4 on
the loss and every gradient), to the straightforward reference in float64, bitwise-repeatable
gradients, a recomputation that leaves the forward and the gradients bitwise unchanged and keeps
only TSN's activations, a network torch.compile traces in one graph; on CUDA also peak memory and
an Inductor-compiled step."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from kernel_helpers import DEVICES, needs_cuda, needs_interpreter, rel

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


def randomised(cfg: ModelConfig, dtype=torch.float32, device: str = "cpu") -> TDRLNet:
    torch.manual_seed(0)
    model = TDRLNet(cfg).to(device, dtype)
    for name, p in model.named_parameters():
        if ".temporal." in name or ".enhance." in name:  # away from the init: every term matters
            torch.nn.init.normal_(p, std=0.3)
    return model


def step(net: torch.nn.Module, owner: TDRLNet, dtype=torch.float32, clips: int = 1):
    """Loss, TD term and every parameter's gradient of one step on fixed clips (N, T, C, H, W); the
    TD term weighs 0.1 so that its gradient matters next to the cross-entropy's."""
    owner.zero_grad(set_to_none=True)
    device = next(owner.parameters()).device
    x = torch.randn(clips, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    scores, td = net(x)
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 3][:clips], device=device)) + 0.1 * td
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


@pytest.fixture
def no_tf32():
    """float32 on CUDA means float32 (cuDNN and cuBLAS would otherwise use TF32 for convolutions)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("device", DEVICES)
def test_triton_equals_eager_in_float32(device, no_tf32):
    cfg = ModelConfig(**TINY)  # PEM before TIM, TD after TM on three blocks: the defaults
    eager = step(m := randomised(dataclasses.replace(cfg, kernels="eager"), device=device), m, clips=2)
    triton = step(m := randomised(dataclasses.replace(cfg, kernels="triton"), device=device), m, clips=2)
    assert len(triton[2]) == len(list(m.parameters()))
    assert_close(triton, eager, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_path_equals_the_straightforward_network_in_float64(case, device):
    model = randomised(ModelConfig(**TINY, kernels="triton", **case), torch.float64, device)
    assert_close(step(model, model, torch.float64, 2), step(straightforward(model), model, torch.float64, 2), 1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_mem_on_the_triton_path_matches_the_frame_loop(device):
    """MEM's enhancement with the frame-mean operator and the excitation kernel: value and gradients."""
    from tdrl.model.kernels.excite_tim import excite_tim

    model = randomised(ModelConfig(**TINY, enhance="mem", kernels="triton"), torch.float64, device)
    mem = model.layer1[0].enhance
    x = torch.randn(6, mem.w_a.out_features, 3, 2, dtype=torch.float64, device=device)
    g = torch.randn_like(x)
    results = []
    for fn in (lambda v: excite_tim(v, mem.enhancement_triton(v), None, 3), lambda v: loop_mem(mem, v, 3)):
        mem.zero_grad(set_to_none=True)
        xs = x.clone().requires_grad_()
        out = fn(xs)
        out.backward(g)
        results.append([out.detach(), xs.grad] + [p.grad for p in mem.parameters()])
    assert all(rel(a, b) < 1e-12 for a, b in zip(*results))


@pytest.mark.parametrize("device", [pytest.param("cpu", marks=[needs_interpreter, pytest.mark.slow]),
                                    pytest.param("cuda", marks=needs_cuda)])
def test_triton_gradients_are_bitwise_repeatable(device):
    cfg = ModelConfig(**TINY, kernels="triton")
    assert_equal(step(m := randomised(cfg, device=device), m, clips=2),
                 step(m := randomised(cfg, device=device), m, clips=2))


def _block_step(block: torch.nn.Module, x: torch.Tensor):
    block.zero_grad(set_to_none=True)
    xs = x.clone().requires_grad_()
    out, td = block(xs)
    (out.square().mean() + 0.1 * td).backward()
    return out.detach(), td.detach(), {"x": xs.grad, **{n: p.grad for n, p in block.named_parameters()}}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [{}, dict(enhance_position="after", td_position="before")], ids=["default", "after"])
def test_recompute_on_the_triton_path_is_bitwise_the_same(case, device):
    """One block with the TD term: the forward, the input's and every parameter's gradient, bitwise."""
    model = randomised(ModelConfig(**TINY, kernels="triton", td_blocks=("layer2.0",), **case), device=device)
    block = model.layer2[0]
    x = torch.randn(3, block.conv1.in_channels, 4, 4, device=device)
    plain = _block_step(block, x)
    block.recompute = True
    assert_equal(_block_step(block, x), plain)


class _OneBlock(torch.nn.Module):
    """A block as a network for :func:`measure_step`: clips (N, T, C, H, W) -> scores (N, C), TD term."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, clips: torch.Tensor):
        n, t = clips.shape[:2]
        out, td = self.block(clips.flatten(0, 1))
        return out.mean((2, 3)).view(n, t, -1).mean(1), td


@pytest.mark.parametrize("device", DEVICES)
def test_recompute_on_the_triton_path_keeps_no_block_sized_intermediate(device):
    """What one block's training forward leaves alive: with recompute, the Triton path keeps what the
    eager recomputation keeps plus PEM's per-channel vectors; without, one more block-sized tensor."""
    from tdrl.model.step_stats import measure_step

    def live(kernels: str, recompute: bool) -> int:
        torch.manual_seed(0)
        model = TDRLNet(ModelConfig(**TINY, kernels=kernels, recompute=recompute, td_blocks=("layer2.0",)))
        block = model.layer2[0].to(device)
        x = torch.randn(1, 3, block.conv1.in_channels, 16, 16, device=device)  # (N, T, C, H, W)
        return measure_step(_OneBlock(block), x).live_bytes

    block_input = 3 * 8 * 16 * 16 * 4  # bytes of the block input (N*T, C, H, W), float32
    eager = live("eager", True)
    assert live("triton", True) < eager + block_input // 8
    assert live("triton", False) >= eager + block_input


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


@pytest.mark.parametrize("device", DEVICES)
def test_compile_traces_the_triton_network_in_one_graph(device):
    """torch.compile sees tdrl's kernels as operators: no graph break around them."""
    model = randomised(ModelConfig(**TINY, kernels="triton"), device=device)
    explained = torch._dynamo.explain(lambda x: model(x))(torch.randn(1, 3, 3, 32, 32, device=device))
    assert explained.graph_break_count == 0 and explained.graph_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("kernels", [pytest.param("triton", marks=needs_interpreter), "eager"])
def test_recompute_under_compile_is_bitwise_the_same(kernels):
    """Inside torch.compile recomputation is the selective checkpoint (aot_eager: AOTAutograd's partition
    without Inductor's rounding): the loss and every gradient equal the uncompiled network's, bitwise."""
    cfg = ModelConfig(**TINY, kernels=kernels, recompute=True)
    compiled = randomised(cfg)
    assert_equal(step(torch.compile(compiled, backend="aot_eager"), compiled, clips=2),
                 step(m := randomised(cfg), m, clips=2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_recompute_peak_memory_and_inductor_step(no_tf32):
    """On CUDA: with recomputation the training step's peak memory stays within 15 % of TSN's (bf16,
    channels_last, R50 at width 0.5), and Inductor compiles the Triton network (AOTAutograd's cache
    not bypassed: no per-process recompilation) to the eager step's loss."""
    from torch._dynamo.utils import counters

    def peak(cfg: ModelConfig) -> float:
        torch.manual_seed(0)
        model = TDRLNet(cfg).cuda().to(memory_format=torch.channels_last)
        x = torch.randn(8, cfg.frames, 3, 112, 112, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast("cuda", torch.bfloat16):
            scores, td = model(x)
        (scores.float().logsumexp(1).mean() + 2e-4 * td).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    cfg = ModelConfig(width=0.5, num_classes=7, kernels="triton", recompute=True)
    tsn = peak(dataclasses.replace(cfg, temporal="none", enhance="none", td_ratio=0.0))
    assert peak(cfg) <= 1.15 * tsn

    model = randomised(ModelConfig(**TINY, kernels="triton"), device="cuda")
    clips = torch.randn(2, 3, 3, 32, 32, device="cuda")
    eager = model(clips)
    counters.clear()
    compiled = torch.compile(model)(clips)
    assert counters["aot_autograd"].get("autograd_cache_bypass", 0) == 0
    assert rel(compiled[0], eager[0]) < 1e-4 and rel(compiled[1], eager[1]) < 1e-4
