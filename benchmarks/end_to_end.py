"""End-to-end training throughput from `tdrl data prepare` output beside the model alone, same process.

Both rows run the training loop's own epoch, :func:`tdrl.train.loop.train_one_epoch` (its step, its
per-step metric reads, gradient clipping off as in the paper recipe), on the same network and optimiser:

* ``model-only``: batches that are already on the device (random clips ``(N, T, C, S, S)``), so the
  loader, the copy and the decoding cost nothing: the ceiling;
* ``end-to-end``: the real loader over prepared JPEG frame folders. ``--decode-on device`` (the default)
  reads JPEG bytes and draws crops/flips in ``--workers`` loader processes, then decodes, crops, resizes,
  flips and normalises on the GPU (:mod:`tdrl.data.gpu_decode`); ``loader`` does all of it on the CPU.

The first ``--warmup-epochs`` of each row are not timed (cuDNN autotuning, loader start-up, page cache).
Ray Train is left out on purpose: one Ray Train worker runs this same function in its process, and
Ray adds no per-step work, so the ratio is the loop's and the data path's. Without ``--data`` the
synthetic benchmark is rendered (``--videos`` clips of ``--video-frames`` frames at ``--video-size``)
and prepared first, under ``--work``.

    python benchmarks/end_to_end.py --json bench_e2e.json                    # GPU, paper settings
    python benchmarks/end_to_end.py --device cpu --batch 2 --size 64 --videos 16 --video-size 80 \\
        --video-frames 16 --steps-per-epoch 2 --epochs 2 --workers 1 --backbone resnet18   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tdrl.config.data import DataConfig
from tdrl.config.experiment import Experiment
from tdrl.config.model import ModelConfig
from tdrl.config.train import TrainConfig
from tdrl.model.network import build_model
from tdrl.train.loop import Job, Loaders, Training, build_loaders, build_optimizer, train_one_epoch
from tdrl.train.runtime import resolve_runtime


def prepared_data(args: argparse.Namespace) -> dict[str, Any]:
    """DataConfig fields of ``--data``, or of a synthetic set rendered and prepared under ``--work``."""
    if args.data:  # <data>/train.txt, val.txt, labels.txt: what `tdrl data prepare --out <data>` writes
        d = Path(args.data).resolve()
        return {"dataset": "list", "root": str(d), "video_dir": "", "labels": str(d / "labels.txt"),
                "train_annotations": str(d / "train.txt"), "val_annotations": str(d / "val.txt")}
    from tdrl.data.prepare import prepare_dataset
    from tdrl.data.synthetic import generate_synthetic

    work = Path(args.work)
    classes = 10
    per_class = -(-args.videos // classes)
    t0 = time.time()
    synth = generate_synthetic(work / "videos", num_classes=classes, train_per_class=per_class, val_per_class=1,
                               frames=args.video_frames, size=args.video_size, seed=0, workers=args.workers)
    t1 = time.time()
    info = prepare_dataset("sthv2", synth.root, work / "prepared", workers=args.workers)
    print(f"data: {classes * per_class} training videos {args.video_size}px x {args.video_frames} frames rendered "
          f"in {t1 - t0:.0f}s, prepared (JPEG, short side 256) in {time.time() - t1:.0f}s", flush=True)
    return info.data_fields()


@dataclass
class _OnDevice:
    """A loader stand-in for the model-only row: fixed batches already on the device."""

    batches: list
    micro_steps: int = 1  # the sampler's: one batch per optimiser step

    @property
    def steps(self) -> int:
        return len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def set_epoch(self, epoch: int) -> None:  # the sampler's and the dataset's hook: nothing to redraw
        pass

    def load_stats(self) -> dict[str, int]:
        return {"failed": 0}


def experiment(args: argparse.Namespace, fields: dict[str, Any], num_classes: int) -> Experiment:
    model = ModelConfig(backbone=args.backbone, frames=args.frames, num_classes=num_classes)
    data = DataConfig(**fields, input_size=args.size, workers=args.workers, decode_on=args.decode_on)
    train = TrainConfig(batch_size=args.batch, epochs=args.epochs, progress="none")  # spec lr_per_64
    return Experiment(model=model, data=data, train=train)


def training(exp: Experiment, job: Job) -> Training:
    """The loop's network and optimiser as ``build_training`` makes them for a fresh run (no Ray)."""
    torch.manual_seed(exp.train.seed)
    net = job.runtime.place(build_model(exp.model))
    opt, scheduler = build_optimizer(net, exp.train)
    return Training(model=net, net=net, optimizer=opt, scheduler=scheduler)


def timed_epochs(job: Job, tr: Training, loaders: Loaders, epochs: int, warmup: int) -> dict[str, float]:
    clips = seconds = 0.0
    for epoch in range(epochs):
        if job.runtime.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        meter = train_one_epoch(job, tr, loaders, epoch)
        if job.runtime.device.type == "cuda":
            torch.cuda.synchronize()
        if epoch >= warmup:
            clips += meter["clips"]
            seconds += time.perf_counter() - t0
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", default=None, help="a `tdrl data prepare` output folder (else one is rendered)")
    parser.add_argument("--work", default="data/bench-e2e", help="where the rendered/prepared set goes")
    parser.add_argument("--videos", type=int, default=640, help="training videos to render")
    parser.add_argument("--video-size", type=int, default=256)
    parser.add_argument("--video-frames", type=int, default=32)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=12, help="loader processes (and render/prepare processes)")
    parser.add_argument("--decode-on", default="device", choices=("device", "loader"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="model-only batches per epoch (default: the end-to-end loader's length)")
    parser.add_argument("--prepare-only", action="store_true", help="render and prepare the data, then stop")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    fields = prepared_data(args)
    if args.prepare_only:
        return
    num_classes = len([x for x in Path(fields["labels"]).read_text().splitlines() if x.strip()])
    exp = experiment(args, fields, num_classes)
    runtime = resolve_runtime(device)
    job = Job(exp=exp, flat=exp.flatten(), rank=0, world=1, runtime=runtime, progress="none")
    loaders = build_loaders(job)
    steps = args.steps_per_epoch or len(loaders.train)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "backbone": args.backbone, "frames": args.frames, "batch": args.batch,
              "size": args.size, "precision": runtime.precision, "channels_last": runtime.channels_last,
              "decode_on": args.decode_on, "loader_workers": args.workers, "train_videos": len(loaders.train_set),
              "steps_per_epoch": steps, "timed_epochs": args.epochs - args.warmup_epochs}

    g = torch.Generator(device="cpu").manual_seed(0)
    batches = []
    for _ in range(steps):  # (N, T, C, S, S) clips and labels, made once, already on the device
        x = torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=g)
        y = torch.randint(0, num_classes, (args.batch,), generator=g)
        batches.append((x.to(device), y.to(device)))
    fake = _OnDevice(batches)
    rows = {}
    for row, source in (("model-only", Loaders(fake, fake, fake, None)), ("end-to-end", loaders)):
        tr = training(exp, job)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rows[row] = timed_epochs(job, tr, source, args.epochs, args.warmup_epochs)
        rows[row]["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"  {row:10s} {rows[row]['clips_per_s']:8.1f} clips/s  ({rows[row]['clips']:.0f} clips in "
              f"{rows[row]['seconds']:.1f}s)  peak {rows[row]['peak_gib']:.2f} GiB", flush=True)
        del tr
    result["rows"] = rows
    result["ratio_e2e_vs_model"] = rows["end-to-end"]["clips_per_s"] / rows["model-only"]["clips_per_s"]
    print(f"{result['device']}: end-to-end / model-only = {result['ratio_e2e_vs_model']:.3f} "
          f"({args.decode_on} decoding, {args.workers} loader processes, {args.frames} frames, batch {args.batch})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
