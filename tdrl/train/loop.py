"""What every Ray Train worker runs, in named steps: build the loaders, build (or resume) the model and
optimiser, then per epoch ``train_one_epoch`` -> ``validate`` -> ``report_epoch``.

The worker gets the experiment as flat ``section.field`` keys (the same dict MLflow records and Tune
searches over) plus a private ``_run`` dict the driver fills in (run name, MLflow URI and run id,
progress style, failure-marker folder).

Layouts: a training batch is clips ``(N, T, C, H, W)`` with labels ``(N,)``; the network folds it
to frames ``(N*T, C, H, W)`` itself and returns scores ``(N, K)`` and the TD term (a scalar).
The loss is ``CE + model.td_lambda * TD``; both parts are tracked separately.

Distribution: one process per worker, DDP (gloo on CPU, nccl on GPU, set up by Ray Train).
Every optimiser step trains on one global batch of ``train.global_batch`` clips, shared by the ranks
of the moment (:mod:`tdrl.train.batching`): with the configured worker count each rank takes one
batch of ``batch_size`` clips (what a ``DistributedSampler`` with ``drop_last`` gave); an elastic run
on fewer workers accumulates gradients over micro-batches, so the recipe does not change with the
worker count. Validation is sharded ``rank::world`` with no padding. Each rank sums its clips
into a :class:`MetricMeter` and the sums are added over ranks once per epoch, so metrics are exact
for any worker count. Every rank calls ``ray.train.report`` once per epoch (it is a barrier);
rank 0 attaches the checkpoint and logs to MLflow after the report returned.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from tdrl.config.experiment import Experiment
from tdrl.config.train import TrainConfig
from tdrl.data.builders import build_dataset, build_loader
from tdrl.data.gpu_decode import batch_to_device
from tdrl.model.network import build_model
from tdrl.train.batching import GlobalBatchSampler, loss_weight
from tdrl.train.checkpoint import load_trained, save_checkpoint
from tdrl.train.console import quiet_console
from tdrl.train.evaluate import predict, topk_correct
from tdrl.train.runtime import Runtime, resolve_runtime
from tdrl.train.schedule import lr_factor
from tdrl.train.tracking import SCORE, EpochLogger

METRICS = ("epoch", "train_loss", "train_ce", "train_td", "train_top1", "val_loss", SCORE, "val_top5",
           "lr", "clips_per_s", "skipped", "epoch_time_s", "workers", "step_clips_min",
           "step_clips_max")  # SCORE: val_top1


# --- the worker's place and its sums ------------------------------------------------------------------

@dataclass
class Job:
    """What one worker trains and where it stands: the experiment, its rank, and the driver's ``_run``."""

    exp: Experiment
    flat: dict[str, Any]  # the experiment's flat keys, as checkpoints record them
    rank: int
    world: int
    runtime: Runtime
    name: str = "tdrl"
    progress: str = "lines"  # "bar", "lines" or "none"
    marker_dir: str = ""  # failure injection's once-per-run markers
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Job":
        import ray.train  # Ray Train: in a worker only; the loop's parts also run in-process (tests, benchmarks)
        import ray.train.torch

        quiet_console()  # this worker's process: no per-rank "Reporting training result" lines
        run = dict(config.get("_run") or {})
        flat = {k: v for k, v in config.items() if not k.startswith("_")}
        exp = Experiment.from_flat(flat)
        ctx = ray.train.get_context()
        runtime = resolve_runtime(ray.train.torch.get_device(), exp.train.precision, exp.train.channels_last)
        return cls(exp=exp, flat=flat, rank=ctx.get_world_rank(), world=ctx.get_world_size(), runtime=runtime,
                   name=run.get("run_name", "tdrl"), progress=run.get("progress", "lines"),
                   marker_dir=run.get("marker_dir", ""), mlflow_uri=run.get("mlflow_uri"),
                   mlflow_run_id=run.get("mlflow_run_id") or None)


@dataclass
class MetricMeter:
    """Named sums of one epoch on one rank (losses weighted by clips, hits, counts, seconds) and the
    clips this rank trained in each optimiser step, added over all ranks by :meth:`all_reduce` in one
    call (after which ``step_clips[s]`` is step ``s``'s global batch)."""

    sums: dict[str, float] = field(default_factory=dict)
    step_clips: list[float] = field(default_factory=list)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def add_step(self, step: int, clips: int) -> None:
        """``clips`` more trained in the epoch's optimiser step ``step`` (0-based)."""
        if step >= len(self.step_clips):
            self.step_clips += [0.0] * (step + 1 - len(self.step_clips))
        self.step_clips[step] += clips

    def __getitem__(self, name: str) -> float:
        return self.sums.get(name, 0.0)

    def merged(self, other: "MetricMeter") -> "MetricMeter":
        return MetricMeter({**self.sums, **other.sums}, self.step_clips or other.step_clips)

    def all_reduce(self, device: torch.device) -> "MetricMeter":
        """The sums over all ranks (float64: counts of a large dataset stay exact). Every rank must
        hold the same names and the same number of steps: they are sent in sorted order."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        names = sorted(self.sums)
        t = torch.tensor([self.sums[k] for k in names] + self.step_clips, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        values = t.tolist()
        return MetricMeter(dict(zip(names, values)), values[len(names):])


# --- building ---------------------------------------------------------------------------------------

@dataclass
class Loaders:
    train_set: Any  # VideoDataset (or FrameBytesDataset): set_epoch, load_stats
    sampler: GlobalBatchSampler  # this rank's micro-batches; sampler.micro_steps of them per optimiser step
    train: DataLoader
    val: DataLoader


def build_loaders(job: Job) -> Loaders:
    """This rank's shards: its part of every global batch (:class:`GlobalBatchSampler`, full global
    batches only), and the validation set as every ``world``-th video from ``rank``."""
    d, t, frames = job.exp.data, job.exp.train, job.exp.model.frames
    train_set = build_dataset(d, "train", frames, train=True, seed=t.seed)
    val_set = build_dataset(d, "val", frames, train=False, seed=t.seed, multi_view=False)
    if train_set.num_classes != job.exp.model.num_classes:
        raise ValueError(f"the data has {train_set.num_classes} classes but model.num_classes="
                         f"{job.exp.model.num_classes}")
    if len(train_set) < t.global_batch:
        raise ValueError(f"{len(train_set)} training clips give no full global batch of {t.global_batch} "
                         f"(train.batch_size={t.batch_size} x {t.max_workers} workers); lower the batch size "
                         f"or the worker count")
    sampler = GlobalBatchSampler(len(train_set), t.global_batch, t.batch_size, job.rank, job.world, seed=t.seed)
    on_gpu = job.runtime.device.type == "cuda"
    # seed=None: the loaders draw their worker seeds from the global generator, as they always did, so
    # a run with the same seed repeats earlier runs exactly (augmentation has its own seeds anyway).
    train = build_loader(train_set, batch_sampler=sampler, workers=d.workers, pin_memory=on_gpu, seed=None)
    val = build_loader(Subset(val_set, range(job.rank, len(val_set), job.world)), t.eval_batch_size or t.batch_size,
                       workers=d.workers, pin_memory=on_gpu, seed=None)
    return Loaders(train_set, sampler, train, val)


@dataclass
class Training:
    """The model as trained (DDP-wrapped when world > 1), the bare network, optimiser and schedule,
    and what a resumed checkpoint carried (``start_epoch``, ``history``: every epoch's metrics)."""

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    start_epoch: int = 0
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def build_optimizer(net: torch.nn.Module, t: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """SGD over the network's parameter groups (weight decay on conv/linear weights only by default:
    ``train.decay_policy``) and the per-epoch schedule (warm-up, steps). The one place the recipe's
    optimiser is made: the loop and ``benchmarks/end_to_end.py`` both call it."""
    optimizer = torch.optim.SGD(net.param_groups(t.weight_decay, t.decay_policy), lr=t.lr, momentum=t.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, t.lr_steps, t.lr_gamma, t.warmup_epochs))
    return optimizer, scheduler


def build_training(job: Job) -> Training:
    """The network (from the latest registered checkpoint when Ray Train restarts or resumes the run),
    SGD with the configured parameter groups, and the per-epoch schedule."""
    import ray.train  # Ray Train: in a worker only; the loop's parts also run in-process (tests, benchmarks)
    import ray.train.torch

    t = job.exp.train
    checkpoint = ray.train.get_checkpoint()
    state = None
    if checkpoint is None:
        net = build_model(job.exp.model)
    else:
        with checkpoint.as_directory() as ckpt_dir:
            net, _, state = load_trained(ckpt_dir, expect=job.flat, map_location=job.runtime.device)
    # The backbone is drawn first, so it is the same for every row of a study at one seed; re-seed
    # here so the training-time stream (dropout) does not depend on how many numbers the row's own
    # modules (PEM, MEM) drew either. Rows paired by seed then differ only in what they change.
    torch.manual_seed(t.seed + 1)
    if job.runtime.channels_last:
        net = net.to(memory_format=torch.channels_last)
    # Moves to the worker's device and wraps in DDP when world > 1 (gloo on CPU, nccl on GPU).
    model = ray.train.torch.prepare_model(net)
    net = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer, scheduler = build_optimizer(net, t)
    out = Training(model, net, optimizer, scheduler, mlflow_run_id=job.mlflow_run_id)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        out.start_epoch = state["epoch"] + 1
        # Older checkpoints without a history hold at least their own epoch.
        out.history = dict(state.get("history") or {state["epoch"]: state["metrics"]})
        out.mlflow_run_id = out.mlflow_run_id or state.get("mlflow_run_id") or None
        if job.rank == 0:
            say(f"[tdrl] {job.name}: resumed from {checkpoint.path} (epoch {out.start_epoch + 1} of {t.epochs} next)")
    return out


# --- one epoch ----------------------------------------------------------------------------------------

def train_one_epoch(job: Job, tr: Training, loaders: Loaders, epoch: int) -> MetricMeter:
    """One pass over this rank's shard; returns its sums (``loss``/``ce``/``td`` weighted by clips,
    ``hits``, ``clips``, ``seconds``, ``skipped``) and the clips of each optimiser step."""
    t, rt = job.exp.train, job.runtime
    loaders.sampler.set_epoch(epoch)
    loaders.train_set.set_epoch(epoch)  # new augmentation draws; resets the skip counters
    tr.model.train()
    meter = MetricMeter()
    k = loaders.sampler.micro_steps  # micro-batches per optimiser step on this rank (1 at full size)
    step = epoch * loaders.sampler.steps
    batches = _progress_bar(job, loaders.train, epoch)
    meter.step_clips = [0.0] * loaders.sampler.steps  # the same length on every rank (all_reduce)
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        first, last = i % k == 0, i % k == k - 1
        if first:
            step += 1
            _maybe_fail(job, step)
            tr.optimizer.zero_grad(set_to_none=True)
        # clips (N, T, C, H, W), channels_last on the folded frames when asked; labels (N,)
        clips, labels = batch_to_device(batch, rt.device, channels_last=rt.channels_last)
        n = labels.numel()
        # Gradients add up locally over the micro-batches; DDP all-reduces on the step's last one.
        sync = nullcontext() if last or not hasattr(tr.model, "no_sync") else tr.model.no_sync()
        with sync:
            with rt.autocast():
                scores, td = tr.model(clips)  # (N, K), ()
            ce = F.cross_entropy(scores.float(), labels)
            loss = ce + job.exp.model.td_lambda * td.float()
            weight = loss_weight(n, job.world, t.global_batch)  # 1.0 at the configured worker count
            (loss if weight == 1.0 else loss * weight).backward()
        if last:
            if t.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(tr.model.parameters(), t.grad_clip)
            tr.optimizer.step()
        meter.add(loss=float(loss.detach()) * n, ce=float(ce.detach()) * n, td=float(td.detach()) * n,
                  hits=float(scores.detach().argmax(1).eq(labels).sum()), clips=n)
        meter.add_step(i // k, n)
    meter.add(seconds=time.perf_counter() - t0)
    if batches is not loaders.train:
        batches.close()  # the bar shows 100% and leaves the driver's console
    meter.add(skipped=loaders.train_set.load_stats()["failed"])  # before the next set_epoch resets it
    return meter


def validate(job: Job, tr: Training, loader: DataLoader) -> MetricMeter:
    """Single clip, centre crop, on this rank's shard: sums ``val_loss`` (by clips), ``val_hits1``,
    ``val_hits5`` and ``val_clips`` (a shard may be empty)."""
    rt = job.runtime
    scores, labels, loss = predict(tr.model, loader, rt.device, rt.precision, channels_last=rt.channels_last)
    hits = topk_correct(scores, labels, (1, 5)) if labels.numel() else {1: 0, 5: 0}
    meter = MetricMeter()
    meter.add(val_loss=float(loss) * labels.numel(), val_hits1=hits[1], val_hits5=hits[5], val_clips=labels.numel())
    return meter


def epoch_metrics(total: MetricMeter, *, epoch: int, lr: float, world: int, epoch_time: float) -> dict[str, float]:
    """The reported metrics (:data:`METRICS`) from the sums over all ranks."""
    seen, vn = total["clips"], max(total["val_clips"], 1.0)
    # Tune's progress table shows the first four metrics it sees: epoch, val/train top-1 and the loss.
    return {
        "epoch": epoch, SCORE: 100.0 * total["val_hits1"] / vn, "train_top1": 100.0 * total["hits"] / seen,
        "train_loss": total["loss"] / seen, "train_ce": total["ce"] / seen, "train_td": total["td"] / seen,
        "val_loss": total["val_loss"] / vn, "val_top5": 100.0 * total["val_hits5"] / vn,
        # seconds are summed over ranks that train side by side: their mean is the epoch's training time
        "lr": lr, "clips_per_s": seen / (total["seconds"] / world), "skipped": total["skipped"],
        "epoch_time_s": epoch_time, "workers": world,  # an elastic run's size during this epoch
        # every optimiser step's global batch, over all ranks: train.global_batch in each, whatever the
        # worker count (an elastic run checks its accumulation here)
        "step_clips_min": min(total.step_clips, default=0.0), "step_clips_max": max(total.step_clips, default=0.0),
    }


def report_epoch(job: Job, tr: Training, metrics: dict[str, float], logger: Any) -> None:
    """Checkpoint (rank 0) and ``ray.train.report`` (every rank: a barrier), then MLflow (rank 0)."""
    import ray.train  # Ray Train: in a worker only; the loop's parts also run in-process (tests, benchmarks)

    epoch = int(metrics["epoch"])
    tr.history[epoch] = metrics
    with tempfile.TemporaryDirectory(prefix="tdrl-ckpt-") as tmp:
        ckpt = None
        if job.rank == 0:
            save_checkpoint(tmp, epoch=epoch, model=tr.net, optimizer=tr.optimizer, scheduler=tr.scheduler,
                            config=job.flat, metrics=metrics, mlflow_run_id=tr.mlflow_run_id, history=tr.history)
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=f"epoch_{epoch:04d}")
    if logger is not None:
        logger.log(epoch, metrics)


# --- the loop ----------------------------------------------------------------------------------------

def train_loop_per_worker(config: dict[str, Any]) -> dict[str, float]:
    job = Job.from_config(config)
    t = job.exp.train
    torch.manual_seed(t.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    loaders = build_loaders(job)
    tr = build_training(job)
    logger = None
    if job.rank == 0 and tr.mlflow_run_id and job.mlflow_uri:
        logger = EpochLogger(job.mlflow_uri, tr.mlflow_run_id)
        # Epochs the checkpoint knows but the MLflow run lacks: queued in memory during a tracking
        # outage when the worker died, or reported just before the crash and never logged.
        logger.backfill(tr.history)
    metrics = dict(tr.history.get(tr.start_epoch - 1, {}))
    epoch_times: list[float] = []
    for epoch in range(tr.start_epoch, t.epochs):
        t0 = time.perf_counter()
        lr = tr.optimizer.param_groups[0]["lr"]
        sums = train_one_epoch(job, tr, loaders, epoch)
        tr.scheduler.step()
        total = sums.merged(validate(job, tr, loaders.val)).all_reduce(job.runtime.device)
        epoch_times.append(time.perf_counter() - t0)
        metrics = epoch_metrics(total, epoch=epoch, lr=lr, world=job.world, epoch_time=epoch_times[-1])
        report_epoch(job, tr, metrics, logger)
        if job.rank == 0 and job.progress != "none":
            eta = (sum(epoch_times) / len(epoch_times)) * (t.epochs - epoch - 1)
            say(progress_line(job, metrics, eta))
        if not math.isfinite(metrics["train_loss"]):
            raise FloatingPointError(f"training loss is {metrics['train_loss']} at epoch {epoch}; lower the lr "
                                     f"(train.lr_per_64) or enable train.grad_clip")
    if logger is not None:
        logger.close()  # epochs queued while MLflow was unreachable are sent now (or the run fails naming them)
    return metrics


# --- console and failure injection -------------------------------------------------------------------

def progress_line(job: Job, m: dict[str, float], eta_s: float) -> str:
    """The one console line of an epoch."""
    return (f"[tdrl] {job.name} epoch {int(m['epoch']) + 1}/{job.exp.train.epochs}  loss {m['train_loss']:.4f} "
            f"(ce {m['train_ce']:.4f} td {m['train_td']:.3f})  train top-1 {m['train_top1']:.1f}%  val top-1 "
            f"{m[SCORE]:.1f}% top-5 {m['val_top5']:.1f}%  lr {m['lr']:.2e}  {m['clips_per_s']:.1f} clips/s  "
            f"skipped {int(m['skipped'])}  {m['epoch_time_s']:.0f}s  ETA {_fmt_time(eta_s)}")


def say(message: str) -> None:
    """One progress line on the worker's stdout (Ray forwards it to the driver). Ray Train V2 patches
    ``print`` to tee into its own log, which shows every line twice when stdout is wrapped."""
    sys.__stdout__.write(message + "\n")
    sys.__stdout__.flush()


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _progress_bar(job: Job, loader: DataLoader, epoch: int) -> Iterable:
    """``loader`` itself, or wrapped in Ray's driver-side tqdm bar (``progress=bar``, rank 0)."""
    if job.progress != "bar" or job.rank != 0:
        return loader
    from ray.experimental.tqdm_ray import tqdm  # Ray: in a worker only (see from_config)

    return tqdm(loader, desc=f"epoch {epoch + 1}/{job.exp.train.epochs}", total=len(loader))


def _maybe_fail(job: Job, step: int) -> None:
    """Failure injection for tests: the chosen rank dies abruptly, once per run (marker file)."""
    t = job.exp.train
    if t.fail_at_step is None or step != t.fail_at_step or job.rank != t.fail_rank or not job.marker_dir:
        return
    marker = Path(job.marker_dir) / f"failure-injected-step{step}-rank{job.rank}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{time.time()}\n")
    say(f"[tdrl] failure injection: rank {job.rank} exits at step {step}")
    os._exit(1)  # no cleanup, like a killed process
