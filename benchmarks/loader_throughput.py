"""Loader throughput at paper settings (shorter side 256, crop 224, T=8) per CPU core, and the cores one GPU needs.

Every measurement runs in this one process with one thread (``OMP_NUM_THREADS=1`` and
``torch.set_num_threads(1)``, as in a Ray worker), and clips/s/core is clips per CPU-second of the
process (``time.process_time``), so other load on a shared host does not count; wall-clock clips/s
is recorded too. DataLoader workers scale it by about the number of cores. Inputs:

* ``webm``: the synthetic set rendered at 240x240, 48 frames (Something-Something V2-like VP9),
  tdrl's loader (decord + TrainPreset, segment sampling);
* ``mp4``: the real ``test.mp4`` (340x256, 300 frames, H.264 with long GOPs, Kinetics-like), window
  sampling (Kinetics rule), and the same file re-encoded with a GOP of 8 (``mp4-gop8``);
* ``jpeg``: both after ``tdrl data prepare`` (JPEG frame folders, shorter side <= 256), decoded and
  augmented on the CPU (``decode_on=loader``);
* ``bytes``: the same folders with ``decode_on=device``: the loader's CPU work is reading the JPEG
  bytes and drawing crop/flip (plus the batch collate); decoding moves to the GPU.
* ``device-cpu``: for reference, ``decode_and_augment`` on ``device="cpu"`` (the work the GPU takes).

Run (about 2-3 minutes on 2 cores; the data are generated/prepared once under data/bench):

    python benchmarks/loader_throughput.py [--train-rate 497] [--seconds 6] [--out bench_loader_throughput.json]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: what Ray sets in its workers

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from tdrl.config.data import DataConfig  # noqa: E402
from tdrl.data.builders import build_dataset  # noqa: E402
from tdrl.data.gpu_decode import collate_jpeg, decode_and_augment  # noqa: E402
from tdrl.data.prepare import prepare_dataset  # noqa: E402
from tdrl.data.synthetic import generate_synthetic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "data" / "real" / "test.mp4"
RATES = (497, 703)  # spec: TSN-R50 on one H100, eager / torch.compile clips/s


def timed(fn, seconds: float, min_items: int, batch: int = 1) -> tuple[int, float, float]:
    """Call ``fn(k)`` (which handles ``batch`` clips) until ``seconds`` passed and ``min_items`` clips are
    done -> (clips, wall seconds, CPU seconds of this process)."""
    fn(0)  # warm-up: imports, first open
    k, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn(k)
        k += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and k * batch >= min_items:
            return k * batch, dt, time.process_time() - c0


def loader_rate(cfg: DataConfig, seconds: float, min_items: int = 8) -> dict:
    ds = build_dataset(cfg, "train", 8, train=True)
    return _rates(*timed(lambda k: ds[k % len(ds)], seconds, min_items))


def _rates(n: int, wall: float, cpu: float) -> dict:
    """Clips per CPU-second (= per fully used core; robust to other load on the host) and per wall second."""
    return {"clips": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "clips_per_s_per_core": n / cpu,
            "clips_per_wall_s": n / wall}


def bytes_rate(cfg: DataConfig, seconds: float, batch: int = 32) -> tuple[dict, dict]:
    """decode_on=device: the loader's CPU cost (read + draw + collate), and decode_and_augment on the CPU."""
    ds = build_dataset(dataclasses.replace(cfg, decode_on="device"), "train", 8, train=True)
    made = []

    def load(k: int) -> None:
        made.append(collate_jpeg([ds[(k * batch + i) % len(ds)] for i in range(batch)]))

    loader = _rates(*timed(load, seconds, batch, batch))
    jb = made[-1][0]
    device_cpu = _rates(*timed(lambda k: decode_and_augment(jb, "cpu"), seconds / 2, 1, batch))
    return dict(loader, batch=batch, kib_per_clip=round(jb.data.numel() / len(jb) / 1024, 1)), device_cpu


def reencode(src: Path, dst: Path, gop: int) -> Path:
    """``src`` re-encoded as H.264 with a key frame every ``gop`` frames (PyAV)."""
    if dst.is_file():
        return dst
    import av

    tmp = dst.with_name(dst.name + ".part.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as out:
        s_in = inp.streams.video[0]
        s = out.add_stream("libx264", rate=s_in.average_rate or 25)
        s.width, s.height, s.pix_fmt = s_in.codec_context.width, s_in.codec_context.height, "yuv420p"
        s.options = {"g": str(gop), "keyint_min": str(gop), "crf": "18", "preset": "veryfast"}
        for frame in inp.decode(video=0):
            for p in s.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    os.replace(tmp, dst)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-rate", type=float, default=RATES[0],
                    help="training clips/s of one GPU (default 497 = TSN-R50 eager on an H100; 703 also printed)")
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds per measurement")
    ap.add_argument("--data", default=str(REPO / "data" / "bench"), help="where the benchmark data are made")
    ap.add_argument("--out", default="bench_loader_throughput.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torchvision.io's torchcodec notice
    data = Path(args.data)
    paper = dict(input_size=224, short_side=256)
    prep_log = {}

    synth = generate_synthetic(data / "webm240", num_classes=10, train_per_class=4, val_per_class=0, frames=48,
                               size=240, seed=0)
    t0 = time.time()
    sj = prepare_dataset("sthv2", synth.root, data / "webm240_jpeg", annotations={"train": synth.train},
                         labels=synth.labels, workers=os.cpu_count())
    prep_log["webm240"] = {"videos": sj.converted + sj.skipped, "converted": sj.converted,
                           "seconds": round(time.time() - t0, 2)}
    inputs: dict[str, DataConfig] = {
        "webm (240x240 VP9, 48 frames)": DataConfig(**synth.data_fields(), **paper),
        "jpeg from webm (CPU decode)": DataConfig(**sj.data_fields(), **paper),
    }
    if REAL.is_file():
        real = data / "real"
        real.mkdir(parents=True, exist_ok=True)
        gop8 = reencode(REAL, real / "test_gop8.mp4", 8)
        (real / "long_gop.txt").write_text(f"{REAL.resolve()} 0\n")
        (real / "gop8.txt").write_text(f"{gop8} 0\n")
        t0 = time.time()
        rj = prepare_dataset("list", real, data / "real_jpeg", annotations={"train": "long_gop.txt"},
                             workers=1)
        prep_log["test.mp4"] = {"videos": 1, "converted": rj.converted, "seconds": round(time.time() - t0, 2)}
        kin = dict(paper, sampling="window")  # Kinetics rule: 8 frames at stride 8 in a 64-frame window
        inputs.update({
            "mp4 (test.mp4 340x256 H.264, long GOP)": DataConfig(dataset="list", root=str(real),
                                                                 train_annotations="long_gop.txt", **kin),
            "mp4-gop8 (test.mp4 re-encoded, GOP 8)": DataConfig(dataset="list", root=str(real),
                                                               train_annotations="gop8.txt", **kin),
            "jpeg from mp4 (CPU decode)": DataConfig(**rj.data_fields(), **kin),
        })
    results: dict[str, dict] = {}
    for name, cfg in inputs.items():
        results[name] = loader_rate(cfg, args.seconds)
        print(f"{name:42s} {results[name]['clips_per_s_per_core']:8.1f} clips/s/core", flush=True)
    for name, cfg in list(inputs.items()):
        if name.startswith("jpeg"):
            src = name.split(" (")[0].replace("jpeg ", "")
            b, d = bytes_rate(cfg, args.seconds)
            results[f"bytes {src} (decode_on=device, loader side)"] = b
            results[f"device-cpu {src} (decode_and_augment on CPU)"] = d
            for k in (f"bytes {src} (decode_on=device, loader side)", f"device-cpu {src} (decode_and_augment on CPU)"):
                print(f"{k:42s} {results[k]['clips_per_s_per_core']:8.1f} clips/s/core", flush=True)
    rates = sorted({float(args.train_rate), *map(float, RATES)})
    for r in results.values():
        r["cores_per_gpu"] = {f"{rate:g}": round(rate / r["clips_per_s_per_core"], 2) for rate in rates}
    print(f"\n{'input (T=8, short side 256, crop 224, 1 thread)':58s} {'clips/s/core':>12s} "
          + " ".join(f"{'cores@' + format(rate, 'g'):>10s}" for rate in rates))
    for name, r in results.items():
        print(f"{name:58s} {r['clips_per_s_per_core']:12.1f} "
              + " ".join(f"{r['cores_per_gpu'][format(rate, 'g')]:10.1f}" for rate in rates))
    out = {"host": platform.node(), "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "frames": 8, "input_size": 224, "short_side": 256, "train_rates": rates, "prepare": prep_log,
           "results": results}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}; prepare: {prep_log}")


if __name__ == "__main__":
    main()
