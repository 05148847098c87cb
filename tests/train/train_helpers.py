"""MLflow / run-folder look-ups shared by the training tests, and a tiny run of the real loop in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def metric_steps(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def runs_of(uri: str, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def epoch_dirs(run_path: str | Path) -> list[str]:
    return sorted(p.name for p in Path(run_path).glob("epoch_*"))


# A micro TDRL (ResNet-18 at 1/8 width, 4 frames of 32 px, 2 classes) on a synthetic set, trained
# in the test's own process (no loader processes), batch 4, a constant lr: the in-process loop tests.
MICRO = {"model.backbone": "resnet18", "model.width": 0.125, "model.reduction": 4, "model.frames": 4,
         "model.num_classes": 2, "data.dataset": "sthv2", "data.decoder": "pyav", "data.input_size": 32,
         "data.short_side": 32, "data.workers": 0, "train.batch_size": 4, "train.lr_per_64": 0.4,
         "train.lr_steps": "", "train.warmup_epochs": 0, "train.progress": "none"}


def train_in_process(data_root: str, tmp_path, run: dict[str, Any] | None = None,
                     **overrides: Any) -> list[dict[str, float]]:
    """Every epoch's metrics of a tiny run of the real loop, in this process (Ray Train local mode:
    no Ray instance); ``run`` goes into the loop's ``_run`` (default: no MLflow, no progress lines)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from tdrl.config.experiment import Experiment
    from tdrl.train.trainer import build_trainer, resolve

    flat = {**MICRO, "model.dropout": 0.0, "data.root": data_root, "train.epochs": 4,
            "train.storage_path": str(tmp_path / "runs"), "train.name": "objective", **overrides}
    exp = resolve(Experiment.from_flat(flat), tmp_path)
    ref = build_trainer(exp, {"run_name": "objective", "progress": "none", **(run or {})})
    seen: list[dict[str, float]] = []
    real_report = ray.train.report

    def record(metrics, *args, **kwargs):
        seen.append(dict(metrics))
        return real_report(metrics, *args, **kwargs)

    ray.train.report = record
    try:
        TorchTrainer(ref.train_loop_per_worker, train_loop_config=ref.train_loop_config,
                     scaling_config=ray.train.ScalingConfig(num_workers=0)).fit()
    finally:
        ray.train.report = real_report
    return seen


# --- a real run with a deterministic val_top1 sequence -------------------------------------------------
# A tiny net trained for a few epochs learns or not depending on float rounding (the SIMD kernels of
# the machine, thread counts, library versions): its val_top1 may stay at chance, with no best epoch
# to keep. Bookkeeping tests (keep-best, checkpoint retention, MLflow history) get their distinct
# values from the run itself instead: the real per-worker loop, whose epochs report a given sequence.

def train_loop_with_val_top1(config: dict[str, Any]) -> dict[str, float]:
    """``tdrl.train.loop.train_loop_per_worker`` as it is, except that epoch ``e`` reports
    ``config["_val_top1"][e]`` as its ``val_top1`` and the measured value as ``measured_val_top1``.
    Every rank reports the same value (the metrics are computed from sums over all ranks)."""
    from tdrl.train import loop

    sequence = [float(v) for v in config["_val_top1"]]
    measured_epoch_metrics = loop.epoch_metrics

    def scripted(total, *, epoch: int, **kwargs: Any) -> dict[str, float]:
        m = measured_epoch_metrics(total, epoch=epoch, **kwargs)
        return {**m, "measured_val_top1": m["val_top1"], "val_top1": sequence[epoch]}

    loop.epoch_metrics = scripted  # this worker process only
    try:
        return loop.train_loop_per_worker(config)
    finally:
        loop.epoch_metrics = measured_epoch_metrics


def script_val_top1(monkeypatch, top1: list[float]) -> None:
    """``trainer.fit`` as it is (Ray Train, checkpoint config, MLflow), its workers running
    :func:`train_loop_with_val_top1` with ``top1`` as the epochs' ``val_top1``."""
    import sys

    import ray.cloudpickle
    from ray.train.torch import TorchTrainer

    from tdrl.train import trainer

    # The workers cannot import this test module: its functions travel by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[train_loop_with_val_top1.__module__])
    build = trainer.build_trainer

    def build_scripted(exp, run, callbacks=()):
        ref = build(exp, run, callbacks)
        return TorchTrainer(train_loop_with_val_top1, train_loop_config={**ref.train_loop_config, "_val_top1": top1},
                            torch_config=ref.backend_config, scaling_config=ref.scaling_config,
                            run_config=ref.run_config)

    monkeypatch.setattr(trainer, "build_trainer", build_scripted)


def top1_hits_bounds(probs, labels, tie: float = 1e-5) -> tuple[int, int]:
    """``(surely, possibly)``: how many videos have their label on top of ``probs (N, K)`` by more than
    ``tie``, and how many have it on top up to a near tie. A barely trained net has near-tied classes,
    which another summation order (float32 against float64, another batch or thread count) may resolve
    either way: a top-1 count of the same predictions lies between the two."""
    import numpy as np

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    label_p = probs[np.arange(len(labels)), labels]
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return int(np.sum(label_p > others.max(1) + tie)), int(np.sum(label_p >= others.max(1) - tie))
