"""Microbenchmarks of tdrl's Triton kernels at the five ResNet-50 block-input shapes, beside the eager ops.

For each shape (block input ``(N*T, C, H, W)`` of R50 at 224 px: C = 64, 256, 512, 1024, 2048 at 56, 56,
28, 14, 7 px), bf16 channels_last on CUDA, one block's temporal part is timed forward and forward +
backward both ways: ``eager`` (PEM, TIM as PyTorch ops) and ``triton`` (``tdrl::pem_enhance`` +
``tdrl::excite_tim``), and the fused excitation + TIM kernel alone, whose achieved bandwidth is
printed: forward reads ``x`` and writes ``z`` (2 x the block's bytes), backward reads the gradient and
``x`` and writes ``x``'s gradient (3 x). The TD loss is timed at the three shapes where the paper
puts it. The GB/s figures are what the hardware did, against the H200's ~4.8 TB/s.

    python benchmarks/kernels.py --json kernels.json                  # GPU: 32 clips x 8 frames
    python benchmarks/kernels.py --device cpu --smoke --json k.json   # CPU wiring check (interpreter, tiny)
"""

from __future__ import annotations

import argparse
import json
import os
import time

SHAPES = [(64, 56), (256, 56), (512, 28), (1024, 14), (2048, 7)]  # (C, H = W) of R50's block inputs at 224 px
TD_SHAPES = {512, 1024, 2048}  # layer2.-1, layer3.-1, layer4.-1 take the TD term


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one repeat: checks the wiring on the CPU")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.device == "cpu" or args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before torch imports Triton
    import torch

    from tdrl.model.kernels.excite_tim import excite_tim, excite_tim_backward
    from tdrl.model.kernels.td import temporal_diversity as td_triton
    from tdrl.model.pem import ProgressiveEnhancement
    from tdrl.model.td_loss import temporal_diversity as td_eager
    from tdrl.model.tim import TemporalInteraction

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    clips, frames, repeats = args.clips, args.frames, args.repeats
    shapes = SHAPES
    if args.smoke:
        clips, frames, repeats = 1, min(frames, 4), 1
        shapes = [(c // 16, max(2, h // 14)) for c, h in SHAPES]

    def timed(fn) -> float:
        """Median milliseconds of ``fn()``."""
        fn()
        out = []
        for _ in range(repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                out.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                out.append(1e3 * (time.perf_counter() - t0))
        return sorted(out)[len(out) // 2]

    results = {"device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": str(dtype), "clips": clips,
               "frames": frames, "repeats": repeats, "smoke": args.smoke, "shapes": []}
    print(f"{results['device']}: {clips} clips x {frames} frames, {dtype}, channels_last; median of {repeats}")
    for c, h in shapes:
        torch.manual_seed(0)
        x = torch.randn(clips * frames, c, h, h, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn_like(x)
        pem = ProgressiveEnhancement(c, frames, reduction=min(16, c)).to(device)
        tim = TemporalInteraction(c, frames).to(device)
        gb = x.numel() * x.element_size() / 1e9

        def eager_fwd():
            return tim(pem(x))

        def triton_fwd():
            return excite_tim(x, pem.enhancement_triton(x), tim.weight, frames)

        row = {"channels": c, "size": h, "block_gb": gb}
        for name, fwd in (("eager", eager_fwd), ("triton", triton_fwd)):
            row[f"{name}_forward_ms"] = timed(lambda: fwd().detach())
            row[f"{name}_forward_backward_ms"] = timed(lambda: torch.autograd.grad(fwd(), [x, tim.weight], g))
        a = pem.enhancement_triton(x).detach()
        k = tim.weight.detach()
        row["excite_tim_forward_ms"] = timed(lambda: excite_tim(x.detach(), a, k, frames))
        row["excite_tim_backward_ms"] = timed(lambda: excite_tim_backward(g, x.detach(), a, k, frames, -1, True))
        row["excite_tim_forward_gb_s"] = 2 * gb / (row["excite_tim_forward_ms"] / 1e3)
        row["excite_tim_backward_gb_s"] = 3 * gb / (row["excite_tim_backward_ms"] / 1e3)
        if (c * 16 if args.smoke else c) in TD_SHAPES:
            z = excite_tim(x.detach(), a, k, frames).requires_grad_()
            half = c // 2
            for name, td in (("eager", td_eager), ("triton", td_triton)):
                row[f"td_{name}_forward_backward_ms"] = timed(lambda: torch.autograd.grad(td(z, frames, half), z))
        results["shapes"].append(row)
        print(f"  C={c:4d} {h:2d}px  block {gb:6.3f} GB  eager {row['eager_forward_backward_ms']:8.3f} ms  triton "
              f"{row['triton_forward_backward_ms']:8.3f} ms (fwd+bwd)  excite+TIM fwd "
              f"{row['excite_tim_forward_gb_s']:7.1f} GB/s, bwd {row['excite_tim_backward_gb_s']:7.1f} GB/s"
              + (f"  TD eager {row['td_eager_forward_backward_ms']:.3f} ms, triton "
                 f"{row['td_triton_forward_backward_ms']:.3f} ms" if "td_eager_forward_backward_ms" in row else ""),
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
