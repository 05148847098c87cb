"""The driver's choice of the best checkpoint (``trainer._train_result``) from Ray Train's Result:
the kept checkpoint with the highest ``val_top1``, wherever it lies in the run, and its epoch.

A real ``ray.train.Result`` over real checkpoint folders, no Ray run: a tiny Ray run keeps only its
last epoch when that is its best, so it cannot tell "highest" from "lowest" or "latest".
"""

from __future__ import annotations

import pytest

from tdrl.config.experiment import Experiment

TOP1 = [20.0, 60.0, 40.0, 30.0]  # the best epoch (1) is neither the first, the last, nor the lowest


def _result(tmp_path, top1=TOP1, kept=None):
    """A Result as Ray Train returns it: every kept epoch's checkpoint and metrics, the last one latest."""
    import ray.train

    kept = range(len(top1)) if kept is None else kept
    ckpt = {}
    for e in kept:
        folder = tmp_path / f"checkpoint_epoch_{e}"
        folder.mkdir()
        ckpt[e] = ray.train.Checkpoint.from_directory(str(folder))
    last = len(top1) - 1  # always kept: Ray Train never deletes the latest checkpoint
    return ray.train.Result(metrics={"epoch": last, "val_top1": top1[last]}, checkpoint=ckpt[last], error=None,
                            path=str(tmp_path), best_checkpoints=[(ckpt[e], {"epoch": e, "val_top1": top1[e]})
                                                                  for e in kept])


def _exp() -> Experiment:
    return Experiment.from_flat({"model.backbone": "resnet18", "model.num_classes": 2, "train.name": "best"})


def test_best_checkpoint_is_the_highest_val_top1_not_the_last(tmp_path):
    from tdrl.train.trainer import _train_result

    out = _train_result(_exp(), "run-1", _result(tmp_path))
    assert out.best_checkpoint == str(tmp_path / "checkpoint_epoch_1")
    assert out.metrics["best_val_top1"] == 60.0 and out.metrics["best_epoch"] == 1
    # The last epoch's own metrics stay what they were; the latest checkpoint is the last one.
    assert out.metrics["val_top1"] == 30.0 and out.metrics["epoch"] == 3
    assert out.latest_checkpoint == str(tmp_path / "checkpoint_epoch_3")
    assert out.mlflow_run_id == "run-1" and out.path == str(tmp_path)


@pytest.mark.parametrize("kept", [[1, 3], [3, 1]])
def test_best_of_the_kept_checkpoints_in_either_order(tmp_path, kept):
    from tdrl.train.trainer import _train_result

    out = _train_result(_exp(), "run-1", _result(tmp_path, kept=kept))
    assert out.best_checkpoint == str(tmp_path / "checkpoint_epoch_1")
    assert out.metrics["best_epoch"] == 1 and out.metrics["best_val_top1"] == 60.0


def test_a_run_without_kept_checkpoints_reports_its_last_epoch_as_best(tmp_path):
    import ray.train

    from tdrl.train.trainer import _train_result

    result = ray.train.Result(metrics={"epoch": 3, "val_top1": 30.0}, checkpoint=None, error=None,
                              path=str(tmp_path), best_checkpoints=[])
    out = _train_result(_exp(), "run-1", result)
    assert out.best_checkpoint is None and out.latest_checkpoint is None
    assert out.metrics["best_epoch"] == 3 and out.metrics["best_val_top1"] == 30.0
