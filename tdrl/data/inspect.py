"""``tdrl data inspect``: what a dataset's annotation files hold and whether its items load.

Reports, per annotation file (= split): item and per-class counts, items that cannot be opened
(missing, empty, truncated, corrupt) and items shorter than ``--frames``, with the annotation
line of each; then decodes one sample through the training pipeline and shows the raw frame
shape, the sampled frame indices and the output clip shape. ``--json`` prints one JSON object
for scripts; the exit status is 1 when any item is unreadable.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from tdrl.config.base import literal_values
from tdrl.config.data import DataConfig
from tdrl.config.paths import absolute
from tdrl.data.annotations import add_source_arguments, class_counts, load_annotations
from tdrl.data.decoding import DecodeError, open_video
from tdrl.data.sampling import sample_indices
from tdrl.data.transforms import TrainPreset

LIST_LIMIT = 50  # problem items listed per split (all are counted)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--annotations", action="append", default=None, metavar="FILE",
                        help="annotation file (repeat for several splits); default: official sthv1/sthv2 "
                             "train and validation names under --root")
    parser.add_argument("--decoder", default="auto", choices=literal_values(DataConfig, "decoder"),
                        help="video decoder (default: auto)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip T (short-item threshold, sample)")
    parser.add_argument("--limit", type=int, default=None, help="open only the first N items of each split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample's random sampling")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def inspect_dataset(dataset: str, root: str, annotations: list[str] | None, *, labels: str | None = None,
                    video_dir: str = "", video_ext: str = ".webm", decoder: str = "auto", frames: int = 8,
                    limit: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Everything ``tdrl data inspect`` reports, as a JSON-ready dict. Paths given are relative to the
    current folder (as typed on a command line); the splits are reported under the names given."""
    cfg = DataConfig(dataset=dataset, root=root)  # validates the name; gives the sampling mode
    root, labels, video_dir = absolute(root), labels and absolute(labels), video_dir and absolute(video_dir)
    splits: list[tuple[str, str | None]] = (
        [(a, absolute(a)) for a in annotations] if annotations else [("train", None), ("val", None)])
    report: dict[str, Any] = {"dataset": dataset, "root": root, "frames": frames, "splits": {}}
    sample_done = False
    for name, ann_file in splits:
        ann = load_annotations(dataset, root, ann_file, split=name if ann_file is None else "train",
                               labels=labels, video_dir=video_dir, video_ext=video_ext)
        counts = class_counts(ann.records, ann.num_classes)
        unreadable, short, lengths = [], [], []
        for rec in ann.records[:limit]:
            try:
                n = len(open_video(rec.path, decoder))
            except DecodeError as exc:
                unreadable.append({"source": rec.source, "path": str(rec.path), "error": str(exc)})
                continue
            lengths.append(n)
            if n < frames:
                short.append({"source": rec.source, "path": str(rec.path), "num_frames": n})
            if not sample_done:
                report["sample"] = _sample(rec, n, cfg.sampling_mode, frames, decoder, seed)
                sample_done = True
        report["splits"][name] = {
            "items": len(ann.records), "checked": min(len(ann.records), limit or len(ann.records)),
            "num_classes": ann.num_classes,
            "per_class": {c: k for c, k in zip(ann.classes, counts)},
            "empty_classes": sum(1 for k in counts if k == 0),
            "unreadable_count": len(unreadable), "unreadable": unreadable[:LIST_LIMIT],
            "short_count": len(short), "short": short[:LIST_LIMIT],
            "frames_min": min(lengths, default=None), "frames_median": float(np.median(lengths)) if lengths else None,
            "frames_max": max(lengths, default=None),
        }
    return report


def _sample(rec: Any, n: int, mode: str, frames: int, decoder: str, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    idx = sample_indices(mode, n, frames, train=True, rng=rng)[0]
    raw = open_video(rec.path, decoder).get(idx.tolist())  # (T, H, W, C) uint8
    clip = TrainPreset()(raw, rng)  # (T, C, H, W) float32
    return {"source": rec.source, "path": str(rec.path), "label": rec.label, "num_frames": n,
            "sampling": mode, "indices": idx.tolist(), "decoded_shape_THWC": list(raw.shape),
            "clip_shape_TCHW": list(clip.shape), "clip_dtype": str(clip.dtype)}


def run(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when items are unreadable; an unusable annotation file is an InputError (exit 2)."""
    report = inspect_dataset(args.dataset, args.root, args.annotations, labels=args.labels,
                             video_dir=args.video_dir, video_ext=args.video_ext, decoder=args.decoder,
                             frames=args.frames, limit=args.limit, seed=args.seed)
    bad = sum(s["unreadable_count"] for s in report["splits"].values())
    if args.json:
        print(json.dumps(report, indent=1))
        return 1 if bad else 0
    for name, s in report["splits"].items():
        print(f"{name}: {s['items']} items, {s['num_classes']} classes ({s['empty_classes']} empty), "
              f"checked {s['checked']}: {s['unreadable_count']} unreadable, {s['short_count']} shorter than "
              f"{report['frames']} frames; frames min/median/max {s['frames_min']}/{s['frames_median']}/{s['frames_max']}")
        for k, v in sorted(s["per_class"].items(), key=lambda kv: -kv[1])[:10]:
            print(f"    {v:6d}  {k}")
        if len(s["per_class"]) > 10:
            print(f"    ... {len(s['per_class']) - 10} more classes")
        for item in s["unreadable"]:
            print(f"  UNREADABLE {item['error']} (declared at {item['source']})")
        for item in s["short"]:
            print(f"  SHORT {item['path']}: {item['num_frames']} frames (declared at {item['source']})")
    if "sample" in report:
        sm = report["sample"]
        print(f"sample {sm['path']}: {sm['num_frames']} frames, {sm['sampling']} indices {sm['indices']}, "
              f"decoded (T,H,W,C) {sm['decoded_shape_THWC']} -> clip (T,C,H,W) {sm['clip_shape_TCHW']} {sm['clip_dtype']}")
    return 1 if bad else 0
