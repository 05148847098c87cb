"""Training-step throughput of TDRL-R50 beside plain ResNet-50 (TSN) in the same process.

Each row is one network trained with SGD (forward, backward, step) on random clips
``(N, T, 3, S, S)``; on CUDA with bf16 autocast and channels_last, eager and torch.compile. Rows:
``tsn`` (torchvision ResNet-50 over N*T frames), ``tsm``/``tim`` (temporal module only), ``tdrl``
(spec defaults: PEM + TIM + TD loss, ``model.kernels=auto``: the Triton kernels on CUDA),
``tdrl-recompute`` (the same with ``model.recompute=true``), ``tdrl-eager`` (``model.kernels=eager``:
PyTorch's ops, the path before the kernels) and ``straightforward`` (the same TDRL computed by
:mod:`tdrl.model.reference`, the spec's 120 clips/s yardstick). Before timing, the fast TDRL and the
straightforward one are checked to agree on the same weights (bf16 tolerance on the GPU).
Prints clips/s, peak memory and TDRL/TSN ratios per mode and frame count; ``--json`` writes them.

    python benchmarks/throughput.py --json bench_h100.json              # GPU, paper settings
    python benchmarks/throughput.py --device cpu --batch 2 --size 64 --steps 2 --modes eager   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet
from tdrl.model.reference import straightforward

ROWS = {
    "tsn": dict(temporal="none", enhance="none", td_ratio=0.0),
    "tsm": dict(temporal="tsm", enhance="none", td_ratio=0.0),
    "tim": dict(temporal="tim", enhance="none", td_ratio=0.0),
    "tdrl": dict(),
    "tdrl-recompute": dict(recompute=True),
    "tdrl-eager": dict(kernels="eager"),
    "straightforward": dict(),
}


def make(row: str, frames: int, device: torch.device, channels_last: bool, backbone: str = "resnet50",
         width: float = 1.0) -> torch.nn.Module:
    cfg = dataclasses.replace(ModelConfig(frames=frames, backbone=backbone, width=width), **ROWS[row])
    model = TDRLNet(cfg)
    if row == "straightforward":
        model = straightforward(model)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def check_equivalence(frames: int, args: argparse.Namespace, device: torch.device) -> float:
    """Max relative difference of scores between the fast and straightforward TDRL on one batch."""
    torch.manual_seed(0)
    fast = make("tdrl", frames, device, args.channels_last, args.backbone, args.width).eval()
    for name, p in fast.named_parameters():
        if ".temporal." in name or ".enhance." in name:
            torch.nn.init.normal_(p, std=0.1)
    slow = straightforward(fast)
    x = torch.randn(2, frames, 3, args.size, args.size, device=device)
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
        a, ta = fast(x)
        b, tb = slow(x)
    rel = ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
    tol = 2e-2 if args.bf16 else 1e-5
    if rel > tol or abs(ta.item() - tb.item()) > tol * max(1.0, abs(tb.item())):
        raise SystemExit(f"fast and straightforward TDRL disagree: scores rel {rel:.2e}, td {ta.item()} vs {tb.item()}")
    return rel


def sgd_step(model: torch.nn.Module, bf16: bool, device: torch.device):
    """The benchmarked training step: forward, CE + lambda * TD, backward, SGD step (as the loop)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    lam = ModelConfig().td_lambda

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            scores, td = model(x)
            loss = torch.nn.functional.cross_entropy(scores.float(), y) + lam * td
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step, opt


def run_row(row: str, frames: int, mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = make(row, frames, device, args.channels_last, args.backbone, args.width).train()
    step, opt = sgd_step(model, args.bf16, device)

    fn = torch.compile(step, backend=args.compile_backend) if mode == "compile" else step
    x = torch.randn(args.batch, frames, 3, args.size, args.size, device=device)  # (N, T, C, H, W)
    if args.channels_last:
        # channels_last of the folded frames (N*T, C, H, W) is this 5-D stride order.
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view_as(x)
    y = torch.randint(0, 174, (args.batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        fn(x, y)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        fn(x, y)
    sync()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"row": row, "frames": frames, "mode": mode, "clips_per_s": args.batch * args.steps / seconds,
            "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", default="8,16", help="comma-separated frame counts")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--backbone", default="resnet50", help="smaller ones for a CPU smoke run")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--compile-backend", default="inductor", help="aot_eager for a quick CPU smoke run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for cuda)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    args.bf16 = device.type == "cuda" if args.bf16 is None else args.bf16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    frames_list = [int(f) for f in args.frames.split(",")]
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "batch": args.batch, "size": args.size, "bf16": args.bf16,
               "channels_last": args.channels_last, "rows": [], "equivalence_rel_diff": {}}
    for frames in frames_list:
        results["equivalence_rel_diff"][frames] = check_equivalence(frames, args, device)
    print(f"{results['device']}: {args.batch} clips x T x {args.size}^2, bf16={args.bf16}, "
          f"channels_last={args.channels_last}")
    for frames in frames_list:
        for mode in args.modes.split(","):
            base = None
            for row in args.rows.split(","):
                r = run_row(row, frames, mode, args, device)
                base = r["clips_per_s"] if row == "tsn" else base
                r["ratio_vs_tsn"] = r["clips_per_s"] / base if base else float("nan")
                results["rows"].append(r)
                print(f"  T={frames:2d} {mode:7s} {row:15s} {r['clips_per_s']:8.1f} clips/s  "
                      f"peak {r['peak_gib']:6.2f} GiB  ratio vs TSN {r['ratio_vs_tsn']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
