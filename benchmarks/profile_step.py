"""Where a training step's time goes: torch.profiler tables of TDRL-R50 and TSN-R50, same process.

One SGD step (forward, CE + lambda * TD, backward, step) as in ``benchmarks/throughput.py`` (bf16
autocast, channels_last on CUDA), profiled after warm-up; the file gets, per network, the operators
sorted by their own device time, then the same grouped by input shapes, and the totals, so the
extra time of TDRL over TSN can be read operator by operator and block by block. ``--json`` also
writes the per-operator figures.

    python benchmarks/profile_step.py --out profile_tdrl_8f.txt [--frames 8] [--batch 32] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))  # throughput.py beside this file
from throughput import make, sgd_step  # noqa: E402


def profile_row(row: str, args: argparse.Namespace, device: torch.device) -> tuple[str, dict]:
    torch.manual_seed(0)
    model = make(row, args.frames, device, channels_last=device.type == "cuda").train()
    x = torch.randn(args.batch, args.frames, 3, args.size, args.size, device=device)  # (N, T, C, H, W)
    if device.type == "cuda":  # channels_last of the folded frames (N*T, C, H, W)
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view_as(x)
    y = torch.randint(0, 174, (args.batch,), device=device)
    train_step, _ = sgd_step(model, device.type == "cuda", device)

    def step() -> None:
        train_step(x, y)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts, record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    table = averages.table(sort_by=key, row_limit=args.rows)
    shapes = prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=args.rows)
    head = f"## {row}: {args.batch} clips x {args.frames} frames x {args.size}^2, {args.steps} steps"
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"  # microseconds
    ops = sorted(({"op": e.key, "calls": e.count, "self_device_ms": getattr(e, attr) / 1e3 / args.steps}
                  for e in averages), key=lambda o: -o["self_device_ms"])
    summary = {"row": row, "steps": args.steps, "self_device_ms_per_step": sum(o["self_device_ms"] for o in ops),
               "ops": ops[:args.rows]}
    return f"{head}\n{table}\n### by input shape\n{shapes}\n", summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--networks", default="tdrl,tsn")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=40, help="operators listed per network")
    parser.add_argument("--out", required=True)
    parser.add_argument("--json", default=None, help="also write per-operator self device time per step here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = [profile_row(r, args, device) for r in args.networks.split(",")]
    text = "".join(t for t, _ in rows)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "rows": [s for _, s in rows]}, indent=2))
    print(text[-3000:])


if __name__ == "__main__":
    main()
