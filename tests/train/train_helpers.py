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
