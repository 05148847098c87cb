"""CPU forward+backward time per clip: TDRL beside plain torchvision ResNet (TSN) in the same run.

Two sizes: the CPU-scale configuration the smoke preset trains (ResNet-18 at width 0.25) and the
paper's ResNet-50 (spec defaults). For each, the TSN baseline is the same backbone with no temporal
module, no enhancement and no TD loss, i.e. torchvision's ResNet over the N*T frames.

    python benchmarks/model_cpu.py [--threads 2] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet

CASES = {
    # name: (config, clips per step, input size)
    "small": (ModelConfig(backbone="resnet18", width=0.25, frames=8, num_classes=10), 8, 112),
    "resnet50": (ModelConfig(), 2, 224),
}


def tsn_of(cfg: ModelConfig) -> ModelConfig:
    return dataclasses.replace(cfg, temporal="none", enhance="none", td_ratio=0.0)


def time_step(cfg: ModelConfig, clips: int, size: int, repeats: int) -> float:
    """Median seconds per clip of one forward+backward (CE + lambda * TD) on random clips."""
    torch.manual_seed(0)
    model = TDRLNet(cfg).train()
    x = torch.randn(clips, cfg.frames, 3, size, size)  # (N, T, C, H, W)
    y = torch.randint(0, cfg.num_classes, (clips,))
    times = []
    for i in range(repeats + 1):  # the first step warms up allocator and kernels
        t0 = time.perf_counter()
        scores, td = model(x)
        loss = torch.nn.functional.cross_entropy(scores, y) + cfg.td_lambda * td
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] / clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "torch": torch.__version__, "cases": {}}
    print(f"forward+backward per clip on CPU, {args.threads} threads, median of {args.repeats}")
    for name in args.cases.split(","):
        cfg, clips, size = CASES[name]
        tdrl = time_step(cfg, clips, size, args.repeats)
        tsn = time_step(tsn_of(cfg), clips, size, args.repeats)
        row = {"backbone": cfg.backbone, "width": cfg.width, "frames": cfg.frames, "size": size, "clips": clips,
               "tdrl_ms_per_clip": 1e3 * tdrl, "tsn_ms_per_clip": 1e3 * tsn, "tdrl_over_tsn_time": tdrl / tsn}
        results["cases"][name] = row
        print(f"  {name:9s} {cfg.backbone} x{cfg.width} T={cfg.frames} {size}px: TDRL {1e3 * tdrl:8.1f} ms/clip  "
              f"TSN {1e3 * tsn:8.1f} ms/clip  time ratio TDRL/TSN {tdrl / tsn:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
