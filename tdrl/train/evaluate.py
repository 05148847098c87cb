"""Evaluation: top-k accuracy, single-clip and multi-view (N clips x 3 crops) testing, ensembles,
and the ``tdrl eval`` command.

Views: a multi-view batch is ``(N, V, T, C, H, W)`` with ``V = num_clips * num_crops``; it is run as
``(N*V, T, C, H, W)`` and the V score vectors of a video are averaged (raw scores, as TSN/TSM
test). An ensemble of checkpoints (the paper's "8f + 16f") averages the softmax probabilities of
each checkpoint's video-level scores, so networks with differently scaled logits weigh equally.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from tqdm import tqdm

from tdrl.config.base import ConfigError, InputError, add_arguments as add_config_arguments, given_arguments
from tdrl.config.base import literal_values
from tdrl.config.data import DataConfig
from tdrl.config.train import TrainConfig
from tdrl.data.builders import build_dataset, build_loader
from tdrl.data.gpu_decode import batch_to_device
from tdrl.train.checkpoint import checkpoint_file, load_trained
from tdrl.train.runtime import autocast, resolve_runtime


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of rows of ``scores (N, K)`` whose label is among the k highest scores, for each k.

    k larger than K counts every row (the label is always among all K classes). Ties are broken by
    ``torch.topk``'s order, as in every reference implementation.
    """
    n, num_classes = scores.shape
    kmax = min(max(ks), num_classes)
    top = scores.topk(kmax, dim=1).indices  # (N, kmax)
    hit = top.eq(labels.view(-1, 1))  # (N, kmax), at most one True per row
    return {k: int(hit[:, :min(k, num_classes)].any(dim=1).sum()) for k in ks}


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"top1": %, "top5": %}`` of ``scores (N, K)`` against ``labels (N,)``."""
    n = max(1, scores.shape[0])
    return {f"top{k}": 100.0 * c / n for k, c in topk_correct(scores, labels, ks).items()}


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[tuple[Any, torch.Tensor]], device: torch.device,
            precision: str = "fp32", *, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video-level scores ``(N, K)`` float32, labels ``(N,)`` and the mean CE loss over all videos.

    Batches are ``(N, T, C, H, W)`` (single view) or ``(N, V, T, C, H, W)`` (multi-view, scores
    averaged over V), or JPEG batches of ``data.decode_on=device`` that are decoded on ``device``.
    """
    model.eval()
    all_scores, all_labels = [], []
    for batch in batches:
        clips, labels = batch_to_device(batch, device, channels_last=channels_last)
        n = clips.shape[0]
        views = clips.shape[1] if clips.dim() == 6 else 1
        if views > 1 or clips.dim() == 6:
            clips = clips.flatten(0, 1)  # (N*V, T, C, H, W)
        with autocast(device, precision):
            scores, _ = model(clips)
        scores = scores.float().view(n, views, -1).mean(dim=1)  # (N, K)
        all_scores.append(scores.cpu())
        all_labels.append(labels.view(-1).cpu())
    if not all_scores:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), torch.tensor(0.0)
    scores, labels = torch.cat(all_scores), torch.cat(all_labels)
    loss = torch.nn.functional.cross_entropy(scores, labels)
    return scores, labels, loss


def ensemble(score_sets: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted mean of softmax probabilities of several ``(N, K)`` score tensors of the same videos."""
    if not score_sets:
        raise ValueError("ensemble needs at least one score tensor")
    shapes = {tuple(s.shape) for s in score_sets}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members disagree in shape: {sorted(shapes)}")
    weights = list(weights) if weights is not None else [1.0] * len(score_sets)
    total = sum(weights)
    return sum(w * s.float().softmax(dim=1) for w, s in zip(weights, score_sets)) / total


# --- the `tdrl eval` command ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="checkpoint directory or checkpoint.pt; two or more are ensembled (e.g. 8f + 16f)")
    parser.add_argument("--weights", default=None, help="comma-separated ensemble weights (default: equal)")
    parser.add_argument("--batch-size", type=int, default=4, help="videos per forward pass (default: 4)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto = a GPU if any)")
    parser.add_argument("--precision", default="auto", choices=literal_values(TrainConfig, "precision"),
                        help="autocast dtype; auto = bf16 on GPU, fp32 on CPU (default: auto)")
    parser.add_argument("--save-scores", default=None, metavar="FILE",
                        help="write the (ensembled) scores and labels to FILE with torch.save")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    group = parser.add_argument_group("data options (default: the checkpoint's own data section); "
                                      "--num-clips N --num-crops 3 is the multi-view test")
    add_config_arguments(group, DataConfig)


def evaluate_checkpoint(checkpoint: str | Path, data_overrides: dict[str, Any] | None = None, *,
                        batch_size: int = 4, device: str = "auto", precision: str = "auto",
                        progress: bool = True) -> dict[str, Any]:
    """Scores of one checkpoint on its validation split: ``{"scores", "labels", "loss", "top1", "top5"}``."""
    model, exp, _ = load_trained(checkpoint)
    exp = exp.override({f"data.{k}": v for k, v in (data_overrides or {}).items()})
    runtime = resolve_runtime(device, precision)
    runtime.place(model)
    dataset = build_dataset(exp.data, "val", exp.model.frames, train=False, seed=exp.train.seed)
    batches: Iterable = build_loader(dataset, batch_size, workers=exp.data.workers)
    if progress:
        batches = tqdm(batches, desc=f"eval {checkpoint_file(checkpoint).parent.name}", unit="batch",
                       file=sys.stderr)
    t0 = time.time()
    scores, labels, loss = predict(model, batches, runtime.device, runtime.precision,
                                   channels_last=runtime.channels_last)
    return {"scores": scores, "labels": labels, "loss": float(loss), "videos": int(labels.numel()),
            "views": dataset.views, "frames": exp.model.frames, "seconds": time.time() - t0,
            **topk_accuracy(scores, labels)}


def run(args: argparse.Namespace) -> int:
    overrides = given_arguments(args, DataConfig)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    if weights is not None and len(weights) != len(args.checkpoints):
        raise ConfigError(f"--weights has {len(weights)} values for {len(args.checkpoints)} checkpoints")
    results = [evaluate_checkpoint(ckpt, overrides, batch_size=args.batch_size, device=args.device,
                                   precision=args.precision, progress=not args.json) for ckpt in args.checkpoints]
    report: dict[str, Any] = {"members": [
        {"checkpoint": str(c), "frames": r["frames"], "views": r["views"], "videos": r["videos"],
         "top1": r["top1"], "top5": r["top5"], "loss": r["loss"]} for c, r in zip(args.checkpoints, results)]}
    scores, labels = results[0]["scores"], results[0]["labels"]
    if len(results) > 1:
        for c, r in zip(args.checkpoints[1:], results[1:]):
            if not torch.equal(r["labels"], labels):
                raise InputError(f"{c} was evaluated on other videos than {args.checkpoints[0]} (labels differ); "
                                 f"ensembles need the same validation split")
        scores = ensemble([r["scores"] for r in results], weights)
        report["ensemble"] = topk_accuracy(scores, labels)
    if args.save_scores:
        torch.save({"scores": scores, "labels": labels, "checkpoints": [str(c) for c in args.checkpoints]},
                   args.save_scores)
    if args.json:
        print(json.dumps(report))
    else:
        for m in report["members"]:
            print(f"{m['checkpoint']}: {m['videos']} videos x {m['views']} views, {m['frames']} frames: "
                  f"top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}")
        if "ensemble" in report:
            print(f"ensemble of {len(results)}: top-1 {report['ensemble']['top1']:.2f}%  "
                  f"top-5 {report['ensemble']['top5']:.2f}%")
    return 0
