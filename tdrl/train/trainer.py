"""The driver: resolve an Experiment, start (or join) Ray, build the TorchTrainer and fit it.

``fit(exp)`` is the Python entry point (``tdrl train`` and Tune trials call it). Everything the
workers see is absolute: they run in a per-run folder, possibly on another node.

Resume. Ray Train V2 keeps the run's state under ``<storage_path>/<name>``: within a run, a worker
or node failure restarts the worker group from the latest registered checkpoint, up to
``train.max_failures`` times; running again with the same ``train.name`` and ``train.storage_path``
resumes a stopped run from its latest checkpoint. The MLflow run is found again by its name tag,
so a resumed run continues the same MLflow run.

Elastic runs (``train.workers=MIN-MAX``): ``ScalingConfig(num_workers=(MIN, MAX))``. A lost node
fails the worker group like any node failure (it counts against ``train.max_failures``); Ray Train
restarts it with the workers the cluster still holds (at least MIN) from the latest checkpoint, and
every ``TDRL_ELASTIC_RESIZE_INTERVAL_S`` checks whether it can grow again (a restart as well). The
global batch and the lr are MAX's on any size (tdrl.train.batching); the epoch metric ``workers``
records each epoch's size.

Remote data (``data.root=s3://...``): staged on every node before the workers form their process
group (tdrl.train.node_staging): by the driver on the nodes there are, then by each worker group as it
starts (nodes the autoscaler adds, replacements).

Checkpoints: ``CheckpointConfig(num_to_keep=keep_best, checkpoint_score_attribute="val_top1")``;
Ray Train V2's checkpoint manager keeps the ``keep_best`` best by validation top-1 and never deletes
the latest one, so resume always has the newest state.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tdrl.config.base import ConfigError
from tdrl.config.experiment import Experiment
from tdrl.config.paths import absolute, is_uri
from tdrl.train.cluster import connect_ray
from tdrl.train import tracking
from tdrl.train.console import quiet_console, train_logging_config
from tdrl.train.tracking import SCORE, sqlite_path, tracking_uri
RESIZE_ENV, DEFAULT_RESIZE_S = "TDRL_ELASTIC_RESIZE_INTERVAL_S", 60.0  # see resize_interval_s
MIN_FREE_MB = 100  # refuse to start with less free space where checkpoints / the MLflow store go (TDRL_MIN_FREE_MB)


@dataclass
class TrainResult:
    """What a finished run produced (``ray_result`` is Ray Train's own Result)."""

    name: str
    path: str  # <storage_path>/<name>: Ray Train's run folder with the checkpoints
    metrics: dict[str, Any]  # the last epoch's metrics plus best_val_top1 / best_epoch
    best_checkpoint: str | None
    latest_checkpoint: str | None
    mlflow_uri: str
    mlflow_run_id: str
    experiment: Experiment
    ray_result: Any = field(repr=False, default=None)


def resolve(exp: Experiment, workdir: str | Path | None = None) -> Experiment:
    """Make local paths absolute, name the run and fix the MLflow URI (pure: no Ray, no I/O)."""
    base = Path(workdir or Path.cwd()).resolve()
    changes: dict[str, Any] = {"data.root": absolute(exp.data.root, base),
                               "train.storage_path": absolute(exp.train.storage_path, base)}
    if exp.model.pretrained not in (None, "imagenet"):  # a .pth file, read by every worker
        changes["model.pretrained"] = absolute(exp.model.pretrained, base)
    if exp.train.name is None:
        changes["train.name"] = time.strftime("tdrl-%Y%m%d-%H%M%S")
    changes["train.mlflow_uri"] = tracking_uri(exp.train.mlflow_uri, base)
    return exp.override(changes)


def preflight(exp: Experiment) -> None:
    """Checks that need files but not Ray: the annotations parse and agree with model.num_classes."""
    from tdrl.data.builders import annotations_for  # torch: not on the path of `tdrl train --help`

    for split in ("train", "val"):
        try:
            ann = annotations_for(exp.data, split)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"data.root={exp.data.root}: cannot read the {split} annotations: {exc}") from exc
        if ann.num_classes != exp.model.num_classes:
            raise ConfigError(f"model.num_classes={exp.model.num_classes} but the {split} labels of "
                              f"{exp.data.root} have {ann.num_classes} classes")
        if not ann.records:
            raise ConfigError(f"data.root={exp.data.root}: the {split} split is empty")


def _check_folder(field: str, value: str, folder: Path, min_free_mb: float) -> None:
    """``folder`` exists or can be created, takes a file, and has ``min_free_mb`` free; else ConfigError.

    Free space is checked on the nearest existing folder first, so a full disk creates nothing. The
    write is a real probe file (written, then deleted): permission bits say nothing for root."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{field}={value}: {existing} is a file, not a folder; choose another location")
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(f"{field}={value}: only {free_mb:.0f} MiB free on {existing}; at least {min_free_mb:g} MiB "
                          f"are needed for checkpoints and tracking (free some space, or set TDRL_MIN_FREE_MB)")
    probe = folder / f".tdrl-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{field}={value}: cannot write to {folder} ({exc.strerror or exc}); choose a writable "
                          f"folder") from exc


def preflight_storage(exp: Experiment) -> None:
    """Before Ray starts: the local storage folder and the folder of a ``sqlite:///`` MLflow store
    are writable and not full (remote URIs are left to their clients)."""
    min_free = float(os.environ.get("TDRL_MIN_FREE_MB", MIN_FREE_MB))
    t = exp.train
    if not is_uri(t.storage_path):
        _check_folder("train.storage_path", t.storage_path, Path(t.storage_path), min_free)
    db = sqlite_path(t.mlflow_uri) if t.mlflow_uri else None
    if db is not None:
        _check_folder("train.mlflow_uri", t.mlflow_uri, db.parent, min_free)


def preflight_resume(exp: Experiment) -> None:
    """A run resumed by name (local storage) must fit its newest checkpoint: a checkpoint of another
    architecture or number of classes, or an unreadable one, is refused here, before Ray starts,
    instead of failing every restarted worker group."""
    from tdrl.train.checkpoint import FILENAME, CheckpointError, load_checkpoint  # torch: not on the path of `tdrl train --help`

    if is_uri(exp.train.storage_path):
        return
    files = sorted((Path(exp.train.storage_path) / exp.train.name).glob(f"epoch_*/{FILENAME}"))
    if files:
        try:
            load_checkpoint(files[-1], expect=exp.flatten())
        except CheckpointError as exc:
            raise ConfigError(f"train.name={exp.train.name} resumes from {files[-1]}, which cannot be used: {exc}; "
                              f"choose another train.name or train.storage_path for a new run") from exc


def scaling_workers(t: Any) -> int | tuple[int, int]:
    """``ScalingConfig(num_workers=...)``: the count, or ``(MIN, MAX)`` for an elastic range (Ray Train
    V2 then starts with what the cluster holds, at least MIN, restarts smaller from the latest
    checkpoint when a node is lost, and grows back when nodes return)."""
    return (t.min_workers, t.max_workers) if t.elastic else t.max_workers


def resize_interval_s() -> float:
    """How often a healthy elastic run checks whether it could grow: ``TDRL_ELASTIC_RESIZE_INTERVAL_S``,
    default Ray's 60 s. Growing restarts the worker group from the latest checkpoint (the epoch in
    progress is trained again), so the interval trades waiting against repeated work."""
    return float(os.environ.get(RESIZE_ENV, DEFAULT_RESIZE_S))


def worker_resources(t: Any) -> dict[str, float]:
    """What one training worker asks of Ray."""
    return {"CPU": t.cpus_per_worker, **({"GPU": 1} if t.use_gpu else {})}


def build_trainer(exp: Experiment, run: Mapping[str, Any], callbacks: Sequence[Any] = ()):
    """The TorchTrainer for a resolved experiment; ``run`` is the loop's private ``_run`` dict."""
    # Ray Train and the loop (torch): seconds to import, not on the path of `tdrl train --help`
    import ray.train
    from ray.train.torch import TorchTrainer

    from tdrl.train.loop import train_loop_per_worker
    from tdrl.train.node_staging import torch_config

    t = exp.train
    use_gpu = bool(t.use_gpu)
    resources = worker_resources(t)
    scaling = ray.train.ScalingConfig(num_workers=scaling_workers(t), use_gpu=use_gpu, resources_per_worker=resources,
                                      elastic_resize_monitor_interval_s=resize_interval_s())
    run_config = ray.train.RunConfig(
        name=t.name,
        storage_path=t.storage_path,
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=t.keep_best, checkpoint_score_attribute=SCORE,
                                                     checkpoint_score_order="max"),
        # A node drained as a preemption before it died (a reclaimed spot node: cluster/spot_drain.py,
        # KubeRay's SIGTERM'd pods) is charged to Ray Train's preemption budget, unlimited here, not to
        # max_failures: a spot run goes on through any number of reclaims, each costing at most the epoch
        # in progress, while crashes and unannounced node deaths still end it (docs/training.md).
        failure_config=ray.train.FailureConfig(max_failures=t.max_failures, max_preemption_failures=-1),
        callbacks=list(callbacks) or None,
        logging_config=train_logging_config(),  # Ray Train's INFO lines stay in its log files
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**exp.flatten(), "_run": dict(run)},
        torch_config=torch_config("nccl" if use_gpu else "gloo", exp.data.root),
        scaling_config=scaling,
        run_config=run_config,
    )


def _progress(exp: Experiment, started_here: bool) -> str:
    if exp.train.progress != "auto":
        return exp.train.progress
    return "bar" if started_here and exp.train.max_workers == 1 and sys.stderr.isatty() else "lines"


def prepare_cluster(exp: Experiment) -> tuple[Experiment, bool]:
    """Join or start Ray, decide ``train.use_gpu`` from the cluster, and refuse (local Ray) or warn
    about (a cluster, which may autoscale) a CPU request it cannot meet. Returns the experiment and
    whether Ray was started here."""
    import ray  # seconds to import: not on the path of `tdrl train --help`

    started_here = connect_ray()
    if exp.train.use_gpu is None:
        exp = exp.override({"train.use_gpu": ray.cluster_resources().get("GPU", 0) > 0})
    need = exp.train.min_workers * exp.train.cpus_per_worker  # an elastic run starts with MIN
    have = ray.cluster_resources().get("CPU", 0)
    if need > have:
        msg = (f"train.workers={exp.train.workers} x train.cpus_per_worker={exp.train.cpus_per_worker} needs "
               f"{need} CPUs but the Ray cluster has {have:g}")
        if started_here:
            raise ConfigError(msg)
        warnings.warn(msg + "; waiting for the autoscaler", RuntimeWarning, stacklevel=3)
    return exp, started_here


def fit(exp: Experiment, *, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None,
        callbacks: Sequence[Any] = (), workdir: str | Path | None = None, run_label: str | None = None) -> TrainResult:
    """Train ``exp`` on Ray Train and return the result; raises on failure after the retries.

    ``parent_run_id`` nests the MLflow run under a study's parent run; ``tags`` are added to it;
    ``run_label`` names the MLflow run for people (default ``train.name``, which stays its tag).
    ``callbacks`` go into the RunConfig (e.g. Tune's ``TuneReportCallback()`` inside a trial).
    Resuming: call again with the same ``train.name`` and ``train.storage_path``.
    """
    quiet_console()
    exp = resolve(exp, workdir)
    preflight(exp)
    preflight_storage(exp)
    preflight_resume(exp)
    exp, started_here = prepare_cluster(exp)
    t = exp.train
    if is_uri(exp.data.root):  # every node holds the data before a worker waits in a collective
        from tdrl.train.node_staging import stage_on_nodes  # remote roots only: imports Ray's scheduling API

        stage_on_nodes(exp.data.root, worker_resources(t))
    run_id, resumed = tracking.start_run(t.mlflow_uri, t.experiment, t.name, exp.flatten(),
                                         parent_run_id=parent_run_id, tags=tags, display_name=run_label)
    marker_dir = "" if is_uri(t.storage_path) else str(Path(t.storage_path) / t.name / "_tdrl_markers")
    run = {"run_name": t.name, "mlflow_uri": t.mlflow_uri, "mlflow_run_id": run_id,
           "progress": _progress(exp, started_here), "marker_dir": marker_dir}
    print(f"[tdrl] run {t.name}: storage {t.storage_path}/{t.name}, MLflow {t.mlflow_uri} run {run_id}"
          f"{' (resumed)' if resumed else ''}, {t.workers} worker(s){' (elastic)' if t.elastic else ''} x "
          f"{t.cpus_per_worker} CPU"
          f"{' + 1 GPU' if t.use_gpu else ''}, global batch {t.global_batch}, lr {t.lr:g}", flush=True)
    try:
        result = build_trainer(exp, run, callbacks).fit()
    except BaseException as exc:
        tracking.finish_run(t.mlflow_uri, run_id, status="FAILED" if not isinstance(exc, KeyboardInterrupt)
                            else "KILLED", config=exp.nested(), final_metrics={"error": repr(exc)},
                            best_checkpoint=None)
        raise
    out = _train_result(exp, run_id, result)
    tracking.finish_run(t.mlflow_uri, run_id, status="FINISHED", config=exp.nested(), final_metrics=out.metrics,
                        best_checkpoint=out.best_checkpoint)
    return out


def _train_result(exp: Experiment, run_id: str, result: Any) -> TrainResult:
    """Ray Train's Result as a :class:`TrainResult`: the last metrics plus the best checkpoint's."""
    best = result.get_best_checkpoint(metric=SCORE, mode="max") if result.best_checkpoints else None
    best_metrics = next((m for c, m in result.best_checkpoints or [] if best is not None and c.path == best.path), {})
    metrics = dict(result.metrics or {})
    metrics[f"best_{SCORE}"] = best_metrics.get(SCORE, metrics.get(SCORE))
    metrics["best_epoch"] = best_metrics.get("epoch", metrics.get("epoch"))
    t = exp.train
    return TrainResult(name=t.name, path=str(result.path), metrics=metrics,
                       best_checkpoint=best.path if best else None,
                       latest_checkpoint=result.checkpoint.path if result.checkpoint else None,
                       mlflow_uri=t.mlflow_uri, mlflow_run_id=run_id, experiment=exp, ray_result=result)
