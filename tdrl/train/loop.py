"""What every Ray Train worker runs: build data, model and optimiser, resume, train, validate, report.

Read top to bottom. The worker gets the experiment as flat ``section.field`` keys (the same dict
MLflow records and Tune searches over) plus a private ``_run`` dict the driver fills in (run name,
MLflow URI and run id, progress style, failure-marker folder).

Layouts: a training batch is clips ``(N, T, C, H, W)`` with labels ``(N,)``; the network folds it
to frames ``(N*T, C, H, W)`` itself and returns scores ``(N, K)`` and the TD term (a scalar).
The loss is ``CE + model.td_lambda * TD``; both parts are tracked separately.

Distribution: one process per worker, DDP (gloo on CPU, nccl on GPU, set up by Ray Train).
Training data is sharded with a ``DistributedSampler`` (shuffled per epoch, ``drop_last`` so every
rank takes the same number of steps - DDP needs that); validation is sharded ``rank::world`` with
no padding and the counts summed with ``all_reduce``, so metrics are exact for any worker count.
Every rank calls ``ray.train.report`` once per epoch (it is a barrier); rank 0 attaches the
checkpoint and logs to MLflow after the report returned.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from tdrl.config.experiment import Experiment
from tdrl.train.evaluate import autocast_for, predict, topk_correct
from tdrl.train.schedule import lr_factor

METRICS = ("epoch", "train_loss", "train_ce", "train_td", "train_top1", "val_loss", "val_top1", "val_top5",
           "lr", "clips_per_s", "skipped", "epoch_time_s")


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (float64: counts of a large dataset stay exact)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _maybe_fail(step: int, rank: int, fail_at_step: int | None, fail_rank: int, marker_dir: str) -> None:
    """Failure injection for tests: the chosen rank dies abruptly, once per run (marker file)."""
    if fail_at_step is None or step != fail_at_step or rank != fail_rank or not marker_dir:
        return
    marker = Path(marker_dir) / f"failure-injected-step{step}-rank{rank}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{time.time()}\n")
    _say(f"[tdrl] failure injection: rank {rank} exits at step {step}")
    os._exit(1)  # no cleanup, like a killed process


def _say(message: str) -> None:
    """One progress line on the worker's stdout (Ray forwards it to the driver). Ray Train V2 patches
    ``print`` to tee into its own log, which shows every line twice when stdout is wrapped."""
    sys.__stdout__.write(message + "\n")
    sys.__stdout__.flush()


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, float]:
    import ray.train
    import ray.train.torch

    from tdrl.data.dataset import build_dataset
    from tdrl.data.gpu_decode import batch_to_device
    from tdrl.model.network import build_model
    from tdrl.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint
    from tdrl.train.tracking import EpochLogger

    # --- configuration -------------------------------------------------------------------
    run = dict(config.get("_run") or {})
    flat = {k: v for k, v in config.items() if not k.startswith("_")}
    exp = Experiment.from_flat(flat)
    mcfg, dcfg, tcfg = exp.model, exp.data, exp.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    precision = tcfg.precision if tcfg.precision != "auto" else ("bf16" if on_gpu else "fp32")
    channels_last = tcfg.channels_last if tcfg.channels_last is not None else on_gpu
    torch.manual_seed(tcfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    name = run.get("run_name", "tdrl")

    # --- data: per-rank shards -----------------------------------------------------------
    train_set = build_dataset(dcfg, "train", mcfg.frames, train=True, seed=tcfg.seed)
    val_set = build_dataset(dcfg, "val", mcfg.frames, train=False, seed=tcfg.seed, multi_view=False)
    if train_set.num_classes != mcfg.num_classes:
        raise ValueError(f"the data has {train_set.num_classes} classes but model.num_classes={mcfg.num_classes}")
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=tcfg.seed,
                                 drop_last=True)
    # data.decode_on=device: the loader yields JPEG bytes (its own collate_fn) and the frames are
    # decoded and augmented on this worker's device in batch_to_device below.
    train_loader = DataLoader(train_set, batch_size=tcfg.batch_size, sampler=sampler, drop_last=True,
                              num_workers=dcfg.workers, persistent_workers=dcfg.workers > 0, pin_memory=on_gpu,
                              collate_fn=getattr(train_set, "collate_fn", None))
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training clips over {world} workers give no full batch of "
                         f"train.batch_size={tcfg.batch_size}; lower the batch size or the worker count")
    val_loader = DataLoader(Subset(val_set, range(rank, len(val_set), world)),
                            batch_size=tcfg.eval_batch_size or tcfg.batch_size, shuffle=False,
                            num_workers=dcfg.workers, persistent_workers=dcfg.workers > 0, pin_memory=on_gpu,
                            collate_fn=getattr(val_set, "collate_fn", None))

    # --- model, optimiser, schedule ------------------------------------------------------
    model = build_model(mcfg)
    # The backbone is drawn first, so it is the same for every row of a study at one seed; re-seed
    # here so the training-time stream (dropout) does not depend on how many numbers the row's own
    # modules (PEM, MEM) drew either. Rows paired by seed then differ only in what they change.
    torch.manual_seed(tcfg.seed + 1)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # Moves to the worker's device and wraps in DDP when world > 1 (gloo on CPU, nccl on GPU).
    model = ray.train.torch.prepare_model(model)
    net = model.module if isinstance(model, DistributedDataParallel) else model
    # Weight decay per parameter group (conv/linear weights only by default; train.decay_policy).
    optimizer = torch.optim.SGD(net.param_groups(tcfg.weight_decay, tcfg.decay_policy), lr=tcfg.lr,
                                momentum=tcfg.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, tcfg.lr_steps, tcfg.lr_gamma, tcfg.warmup_epochs))

    # --- resume from the latest registered checkpoint (after a failure, or a stopped run) --
    start_epoch, resumed_state = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            resumed_state = load_checkpoint(ckpt_dir, expect=flat, map_location=device)
            load_model_state(net, resumed_state, ckpt_dir)
            optimizer.load_state_dict(resumed_state["optimizer"])
            scheduler.load_state_dict(resumed_state["scheduler"])
        start_epoch = resumed_state["epoch"] + 1
        if rank == 0:
            _say(f"[tdrl] {name}: resumed from {checkpoint.path} (epoch {start_epoch + 1} of {tcfg.epochs} next)")

    # --- tracking (rank 0) ---------------------------------------------------------------
    run_id = run.get("mlflow_run_id") or (resumed_state or {}).get("mlflow_run_id") or None
    logger = EpochLogger(run["mlflow_uri"], run_id) if rank == 0 and run_id and run.get("mlflow_uri") else None
    # Every epoch's metrics so far; older checkpoints without a history hold at least their own epoch.
    history: dict[int, dict[str, float]] = {}
    if resumed_state is not None:
        history = dict(resumed_state.get("history") or {resumed_state["epoch"]: resumed_state["metrics"]})
    if logger is not None:
        # Epochs the checkpoint knows but the MLflow run lacks: queued in memory during a tracking
        # outage when the worker died, or reported just before the crash and never logged.
        logger.backfill(history)

    progress = run.get("progress", "lines")
    step = start_epoch * steps_per_epoch
    epoch_times: list[float] = []
    metrics: dict[str, float] = dict((resumed_state or {}).get("metrics", {}))
    for epoch in range(start_epoch, tcfg.epochs):
        # --- train one epoch -------------------------------------------------------------
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)  # new augmentation draws; resets the skip counters
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss*n, ce*n, td*n, top-1 hits, n
        batches = train_loader
        if progress == "bar" and rank == 0:
            from ray.experimental.tqdm_ray import tqdm

            batches = tqdm(train_loader, desc=f"epoch {epoch + 1}/{tcfg.epochs}", total=steps_per_epoch)
        t0 = time.perf_counter()
        for batch in batches:
            step += 1
            _maybe_fail(step, rank, tcfg.fail_at_step, tcfg.fail_rank, run.get("marker_dir", ""))
            # clips (N, T, C, H, W), channels_last on the folded frames when asked; labels (N,)
            clips, labels = batch_to_device(batch, device, channels_last=channels_last)
            with autocast_for(device, precision):
                scores, td = model(clips)  # (N, K), ()
            ce = F.cross_entropy(scores.float(), labels)
            loss = ce + mcfg.td_lambda * td.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            optimizer.step()
            n = labels.numel()
            sums[0] += float(loss.detach()) * n
            sums[1] += float(ce.detach()) * n
            sums[2] += float(td.detach()) * n
            sums[3] += float(scores.detach().argmax(1).eq(labels).sum())
            sums[4] += n
        train_time = time.perf_counter() - t0
        if batches is not train_loader:
            batches.close()  # the bar shows 100% and leaves the driver's console
        skipped = train_set.load_stats()["failed"]  # read before the next set_epoch resets it
        scheduler.step()

        # --- validate: single clip, centre crop, exact over shards -----------------------
        scores, labels, val_loss = predict(model, val_loader, device, precision, channels_last=channels_last)
        hits = topk_correct(scores, labels, (1, 5)) if labels.numel() else {1: 0, 5: 0}
        totals = _all_sum(sums + [float(skipped), train_time, float(hits[1]), float(hits[5]),
                                  float(val_loss) * labels.numel(), float(labels.numel())], device)
        loss_sum, ce_sum, td_sum, hit1, seen, skipped_all, time_sum, v1, v5, vloss, vn = totals
        epoch_time = time.perf_counter() - t0
        epoch_times.append(epoch_time)
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / seen, "train_ce": ce_sum / seen, "train_td": td_sum / seen,
            "train_top1": 100.0 * hit1 / seen,
            "val_loss": vloss / max(vn, 1), "val_top1": 100.0 * v1 / max(vn, 1), "val_top5": 100.0 * v5 / max(vn, 1),
            "lr": lr, "clips_per_s": seen / (time_sum / world), "skipped": skipped_all, "epoch_time_s": epoch_time,
        }

        # --- checkpoint + report (a barrier: every rank, once per epoch) -------------------
        with tempfile.TemporaryDirectory(prefix="tdrl-ckpt-") as tmp:
            ckpt = None
            history[epoch] = metrics
            if rank == 0:
                save_checkpoint(tmp, epoch=epoch, model=net, optimizer=optimizer, scheduler=scheduler,
                                config=flat, metrics=metrics, mlflow_run_id=run_id, history=history)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=f"epoch_{epoch:04d}")
        if logger is not None:
            logger.log(epoch, metrics)
        if rank == 0 and progress != "none":
            eta = (sum(epoch_times) / len(epoch_times)) * (tcfg.epochs - epoch - 1)
            _say(f"[tdrl] {name} epoch {epoch + 1}/{tcfg.epochs}  loss {metrics['train_loss']:.4f} "
                  f"(ce {metrics['train_ce']:.4f} td {metrics['train_td']:.3f})  train top-1 "
                  f"{metrics['train_top1']:.1f}%  val top-1 {metrics['val_top1']:.1f}% top-5 "
                  f"{metrics['val_top5']:.1f}%  lr {lr:.2e}  {metrics['clips_per_s']:.1f} clips/s  "
                  f"skipped {int(skipped_all)}  {epoch_time:.0f}s  ETA {_fmt_time(eta)}")
        if not math.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"training loss is {metrics['train_loss']} at epoch {epoch}; lower the lr "
                                     f"(train.lr_per_64) or enable train.grad_clip")
    if logger is not None:
        logger.close()  # epochs queued while MLflow was unreachable are sent now (or the run fails naming them)
    return metrics
