"""What ``build_training`` restores when a run resumes from a checkpoint: the epoch to start at, the
metric history, and the MLflow run the checkpoint was logged to (unless the driver names one).

The real ``build_training`` runs inside Ray Train's local mode (``ScalingConfig(num_workers=0)``: this
process, no Ray instance, no data), where ``ray.train.get_checkpoint()`` returns the checkpoint the
train function itself reported last; so each test reports a tdrl checkpoint, then builds the training.
"""

from __future__ import annotations

from typing import Any

import pytest

from tdrl.config.experiment import Experiment

FLAT = Experiment.from_flat({"model.backbone": "resnet18", "model.width": 0.125, "model.reduction": 4,
                             "model.frames": 4, "model.num_classes": 2, "train.epochs": 6,
                             "train.batch_size": 2, "train.lr_steps": "", "train.warmup_epochs": 0}).flatten()


def _save(directory, mlflow_run_id: str | None, epoch: int = 2,
          with_history: bool = True) -> dict[int, dict[str, float]]:
    """A checkpoint of FLAT's network after ``epoch`` (0-based), optimizer and schedule as the loop builds them."""
    from tdrl.model.network import build_model
    from tdrl.train.checkpoint import save_checkpoint
    from tdrl.train.loop import build_optimizer

    exp = Experiment.from_flat(FLAT)
    net = build_model(exp.model)
    opt, sched = build_optimizer(net, exp.train)
    history = {e: {"epoch": float(e), "val_top1": 10.0 * (e + 1)} for e in range(epoch + 1)}
    save_checkpoint(directory, epoch=epoch, model=net, optimizer=opt, scheduler=sched, config=FLAT,
                    metrics=history[epoch], mlflow_run_id=mlflow_run_id, history=history if with_history else None)
    return history


def _resume(checkpoint_dir, run: dict[str, Any]) -> Any:
    """``build_training``'s result for a job with the driver's ``run`` dict, resuming from ``checkpoint_dir``."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from tdrl.train.loop import Job, build_training

    built: list[Any] = []

    def train_fn(config: dict[str, Any]) -> None:
        # Local mode hands back the last reported checkpoint as the one to resume from.
        ray.train.report({"epoch": -1}, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint_dir)))
        built.append(build_training(Job.from_config(config)))

    TorchTrainer(train_fn, train_loop_config={**FLAT, "_run": run},
                 scaling_config=ray.train.ScalingConfig(num_workers=0)).fit()
    assert len(built) == 1
    return built[0]


def test_resume_takes_the_checkpoints_mlflow_run_when_the_driver_names_none(tmp_path):
    history = _save(tmp_path / "ckpt", mlflow_run_id="abc")
    for run in ({"run_name": "r", "progress": "none"}, {"run_name": "r", "progress": "none", "mlflow_run_id": ""}):
        tr = _resume(tmp_path / "ckpt", run)
        assert tr.mlflow_run_id == "abc", run
        assert tr.start_epoch == 3  # the epoch after the checkpoint's (0-based 2)
        assert tr.history == history


def test_resume_keeps_the_drivers_mlflow_run(tmp_path):
    _save(tmp_path / "ckpt", mlflow_run_id="abc")
    tr = _resume(tmp_path / "ckpt", {"run_name": "r", "progress": "none", "mlflow_run_id": "def"})
    assert tr.mlflow_run_id == "def"


@pytest.mark.parametrize("run_id", [None, "def"])
def test_a_checkpoint_without_a_run_gives_the_drivers_or_none(tmp_path, run_id):
    _save(tmp_path / "ckpt", mlflow_run_id=None)  # stored as "", which must not become a run id
    tr = _resume(tmp_path / "ckpt", {"run_name": "r", "progress": "none", "mlflow_run_id": run_id})
    assert tr.mlflow_run_id == run_id


def test_a_checkpoint_without_a_history_holds_at_least_its_own_epoch(tmp_path):
    history = _save(tmp_path / "ckpt", mlflow_run_id="abc", with_history=False)  # stored as {}
    tr = _resume(tmp_path / "ckpt", {"run_name": "r", "progress": "none"})
    assert tr.history == {2: history[2]} and tr.start_epoch == 3
