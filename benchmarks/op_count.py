"""Ops dispatched and activation memory of one training step on the CPU: TDRL (eager, Triton kernels,
Triton kernels + recomputation) beside TSN, as :mod:`tdrl.model.step_stats` measures them.

Rows: ``tsn`` (no temporal module, no enhancement, no TD loss), ``tdrl-eager``
(``model.kernels=eager``), ``tdrl-triton`` and ``tdrl-triton-recompute`` (``model.recompute=true``).
Each TDRL row's loss and gradients are compared with the eager row's: the worst parameter's max
relative difference, and the difference of all gradients together (norm of the difference over the
norm). Triton rows on the CPU run in Triton's interpreter, so the script sets ``TRITON_INTERPRET=1``
before torch (which imports Triton) is imported.

In float32 at the default setting (one clip, 64 px: BatchNorm over 32 values per channel in layer4)
the gradient amplifies rounding: eager float32 itself differs from eager float64 by up to 0.2
relative on a few parameters, so the float32 comparison shows rounding, not a difference of function.
``--dtype float64`` compares the two paths where rounding cannot hide one; ``--float64-oracle`` sets
each float32 row beside the eager network in float64, so the two float32 paths' errors can be compared.

    python benchmarks/op_count.py                    # R50, 8 frames, 1 clip, 64 px: the setting of issue 21
    python benchmarks/op_count.py --json FILE        # also write the figures
    python benchmarks/op_count.py --dtype float64 --rows tdrl-eager,tdrl-triton-recompute   # same function?
    python benchmarks/op_count.py --rows tdrl-eager,tdrl-triton-recompute --float64-oracle  # float32 errors
"""

from __future__ import annotations

import argparse
import json
import os

ROWS = ("tsn", "tdrl-eager", "tdrl-triton", "tdrl-triton-recompute")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--clips", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of " + ",".join(ROWS))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--float64-oracle", action="store_true",
                        help="also compare every TDRL row with the eager network in float64 (one more step)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before torch (which imports Triton) is imported
    import dataclasses

    import torch

    from tdrl.config.model import ModelConfig
    from tdrl.model.network import TDRLNet
    from tdrl.model.step_stats import measure_step

    base = ModelConfig(backbone=args.backbone, width=args.width, frames=args.frames)
    configs = {
        "tsn": dataclasses.replace(base, temporal="none", enhance="none", td_ratio=0.0, kernels="eager"),
        "tdrl-eager": dataclasses.replace(base, kernels="eager"),
        "tdrl-triton": dataclasses.replace(base, kernels="triton"),
        "tdrl-triton-recompute": dataclasses.replace(base, kernels="triton", recompute=True),
    }
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    clips = torch.randn(args.clips, args.frames, 3, args.size, args.size).to(dtype)  # (N, T, C, H, W)
    results: dict = {"setting": vars(args), "torch": torch.__version__, "rows": {}}

    def compare(stats, ref) -> dict:
        """Loss and gradients of ``stats`` against ``ref``'s, relative: worst parameter and all together."""
        diff = torch.cat([(g.double() - ref.grads[n].double()).flatten() for n, g in stats.grads.items()])
        return {"loss": (abs(stats.loss.double() - ref.loss.double()) / abs(ref.loss.double())).item(),
                "grads_worst_parameter": max(((g.double() - ref.grads[n].double()).abs().max()
                                              / ref.grads[n].double().abs().max().clamp_min(1e-300)).item()
                                             for n, g in stats.grads.items()),
                "grads_all": (diff.norm() / torch.cat([g.double().flatten() for g in ref.grads.values()]).norm()).item()}

    def shown(name: str, c: dict) -> str:
        return f"  vs {name}: loss {c['loss']:.1e}, grads {c['grads_worst_parameter']:.1e} (worst parameter), " \
               f"{c['grads_all']:.1e} (all)"

    oracle = None
    if args.float64_oracle:
        torch.manual_seed(0)
        oracle = measure_step(TDRLNet(configs["tdrl-eager"]).double(), clips.double(), base.td_lambda)
    eager = None
    for row in args.rows.split(","):
        torch.manual_seed(0)
        stats = measure_step(TDRLNet(configs[row]).to(dtype), clips, base.td_lambda)
        out = {"ops": stats.ops, "ops_forward": stats.ops_forward, "ops_backward": stats.ops_backward,
               "ops_inner": stats.ops_inner, "triton_launches": stats.launches,
               "saved_mib": stats.saved_bytes / 2**20, "live_mib": stats.live_bytes / 2**20, "loss": stats.loss.item()}
        line = ""
        if row == "tdrl-eager":
            eager = stats
        elif row != "tsn" and eager is not None:
            out["vs_eager"] = compare(stats, eager)
            line += shown("eager", out["vs_eager"])
        if row != "tsn" and oracle is not None:
            out["vs_eager_float64"] = compare(stats, oracle)
            line += shown("eager float64", out["vs_eager_float64"])
        results["rows"][row] = out
        print(f"{row:22s} ops {out['ops']:5d} (forward {stats.ops_forward}, backward {stats.ops_backward}; "
              f"{stats.ops_inner} with tdrl ops' insides, {stats.launches} Triton launches)  saved "
              f"{out['saved_mib']:5.1f} MiB  live after forward {out['live_mib']:5.1f} MiB" + line, flush=True)
    rows = results["rows"]
    if "tsn" in rows:
        tsn = rows["tsn"]
        print("ratio to TSN: ops | ops with insides + launches | saved | live")
        for row, out in rows.items():
            out["ratios_to_tsn"] = {"ops": out["ops"] / tsn["ops"],
                                    "ops_inner": (out["ops_inner"] + out["triton_launches"]) / tsn["ops_inner"],
                                    "saved": out["saved_mib"] / tsn["saved_mib"], "live": out["live_mib"] / tsn["live_mib"]}
            print(f"  {row:22s} " + " | ".join(f"{v:.2f}" for v in out["ratios_to_tsn"].values()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
