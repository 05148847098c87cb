"""What the driver tells Ray Train (``trainer.build_trainer``): the recipe's workers and resources,
keep-best by the highest ``val_top1``, the configured retries, the per-run folder, and the loop's
configuration (the experiment's flat keys plus the private ``_run``). Built, not run: no Ray."""

from __future__ import annotations

import pytest

from tdrl.config.experiment import Experiment

BASE = {"model.backbone": "resnet18", "model.num_classes": 2, "train.name": "recipe", "train.storage_path": "/x/runs",
        "train.workers": 2, "train.cpus_per_worker": 3, "train.keep_best": 4, "train.max_failures": 5}


@pytest.mark.parametrize("use_gpu", [False, True])
def test_the_trainer_carries_the_recipe(use_gpu):
    from tdrl.train.trainer import build_trainer

    exp = Experiment.from_flat({**BASE, "train.use_gpu": use_gpu})
    run = {"run_name": "recipe", "mlflow_run_id": "abc", "marker_dir": "/x/runs/recipe/_tdrl_markers"}
    tr = build_trainer(exp, run)
    s, rc = tr.scaling_config, tr.run_config
    assert (s.num_workers, s.use_gpu) == (2, use_gpu)
    assert s.resources_per_worker == ({"CPU": 3, "GPU": 1} if use_gpu else {"CPU": 3})
    assert (rc.name, rc.storage_path) == ("recipe", "/x/runs")
    ck = rc.checkpoint_config
    assert (ck.num_to_keep, ck.checkpoint_score_attribute, ck.checkpoint_score_order) == (4, "val_top1", "max")
    assert rc.failure_config.max_failures == 5
    assert tr.train_loop_config == {**exp.flatten(), "_run": run}
    assert tr.backend_config.backend == ("nccl" if use_gpu else "gloo")


def test_an_elastic_run_asks_for_its_range_of_workers():
    from tdrl.train.trainer import build_trainer

    tr = build_trainer(Experiment.from_flat({**BASE, "train.workers": "1-2", "train.use_gpu": False}), {})
    assert tr.scaling_config.num_workers == (1, 2)
