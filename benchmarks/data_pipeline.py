"""Training-pipeline throughput (clips/s per CPU core) vs a PyAV decode-everything baseline.

Both paths produce the same training clip - TSN segment indices, multi-scale crop, resize, normalise,
``(T, C, H, W)`` float32 - from the same files in one process pinned to one thread, so clips/s is
per core. "pipeline" is tdrl's VideoDataset (decord random access, one decode call per clip);
"baseline" decodes every frame with PyAV, then picks the sampled ones. Run:

    python benchmarks/data_pipeline.py [--frames 8] [--clips 200] [--out bench_data_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import av
import numpy as np
import torch

from tdrl.data.annotations import Annotations, VideoRecord, load_annotations
from tdrl.data.dataset import VideoDataset
from tdrl.data.sampling import segment_indices
from tdrl.data.synthetic import generate_synthetic
from tdrl.data.transforms import TrainPreset

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "test.mp4"


def baseline_clip(path: Path, frames: int, rng: np.random.Generator, transform: TrainPreset) -> torch.Tensor:
    with av.open(str(path)) as c:
        allf = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])  # (N, H, W, C)
    idx = segment_indices(len(allf), frames, train=True, rng=rng)[0]
    return transform(allf[idx], rng)


def measure(records: list[VideoRecord], frames: int, clips: int, transform: TrainPreset) -> dict[str, float]:
    ds = VideoDataset(Annotations(("c",), tuple(records)), frames, train=True, transform=transform)
    ds[0]  # warm-up (imports, first open)
    baseline_clip(records[0].path, frames, np.random.default_rng(0), transform)
    t0 = time.perf_counter()
    for i in range(clips):
        clip, _ = ds[i % len(ds)]
    t_pipe = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(clips):
        base = baseline_clip(records[i % len(records)].path, frames, np.random.default_rng(i), transform)
    t_base = time.perf_counter() - t0
    assert clip.shape == base.shape
    return {"clips": clips, "pipeline_clips_per_s_per_core": clips / t_pipe,
            "baseline_clips_per_s_per_core": clips / t_base, "speedup": t_base / t_pipe}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--clips", type=int, default=200, help="clips per measurement (real: a quarter)")
    ap.add_argument("--synth-root", default="data/synth", help="synthetic set (generated with defaults if missing)")
    ap.add_argument("--out", default="bench_data_pipeline.json")
    args = ap.parse_args()
    torch.set_num_threads(1)  # per-core figures
    info = generate_synthetic(args.synth_root)
    synth = list(load_annotations("sthv2", info.root, info.train, labels=info.labels).records)
    results = {"host": platform.node(), "cpu_count": os.cpu_count(), "torch_threads": 1, "frames": args.frames,
               "synthetic": {"files": len(synth), "size": info.params.size, "frames_per_video": info.params.frames,
                             "input_size": 112, "short_side": 128,
                             **measure(synth, args.frames, args.clips, TrainPreset(112, 128))}}
    if REAL.is_file():
        rec = [VideoRecord(REAL, 0, "bench")]
        results["real_test_mp4"] = {"file": "test.mp4 (340x256, 300 frames, H.264)", "input_size": 224,
                                    "short_side": 256,
                                    **measure(rec, args.frames, max(10, args.clips // 4), TrainPreset(224, 256))}
    for name in ("synthetic", "real_test_mp4"):
        if name in results:
            r = results[name]
            print(f"{name:14s} pipeline {r['pipeline_clips_per_s_per_core']:7.1f} clips/s/core   "
                  f"PyAV decode-all baseline {r['baseline_clips_per_s_per_core']:7.1f}   ratio {r['speedup']:.2f}x")
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
