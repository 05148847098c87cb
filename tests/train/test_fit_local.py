"""``trainer.fit`` from start to end without a Ray instance: the driver's own steps (checks, MLflow run
started or reopened, the run line it prints, the loop's ``_run``, the result, MLflow run finished)
around the real loop in Ray Train's local mode (``ScalingConfig(num_workers=0)``, this process).

Only the two steps that need Ray are replaced: ``prepare_cluster`` (it joins or starts Ray) returns
the experiment as it is, and the TorchTrainer that ``build_trainer`` makes is rebuilt in local mode
with the same loop and configuration. The multi-worker path is tested with Ray in test_train_ray.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from train_helpers import MICRO


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory) -> str:
    """2 classes, 4 training and 2 validation clips each, 4 frames of 32 px."""
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth-fit")
    generate_synthetic(root, num_classes=2, train_per_class=4, val_per_class=2, frames=4, size=32, seed=0, workers=1)
    return str(root)


@pytest.fixture
def local_fit(monkeypatch):
    """``fit`` with Ray replaced by local mode; returns the list of ``_run`` dicts the loop was given."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from tdrl.train import trainer

    runs: list[dict[str, Any]] = []
    real_build = trainer.build_trainer

    def build_local(exp, run, callbacks=()):
        ref = real_build(exp, run, callbacks)
        runs.append(dict(ref.train_loop_config["_run"]))
        return TorchTrainer(ref.train_loop_per_worker, train_loop_config=ref.train_loop_config,
                            scaling_config=ray.train.ScalingConfig(num_workers=0))

    monkeypatch.setattr(trainer, "build_trainer", build_local)
    monkeypatch.setattr(trainer, "prepare_cluster", lambda exp: (exp, False))
    return runs


def _experiment(data_root: str, tmp_path: Path, **overrides: Any):
    from tdrl.config.experiment import Experiment

    return Experiment.from_flat({
        **MICRO, "data.root": data_root, "train.epochs": 1, "train.use_gpu": False,
        "train.storage_path": str(tmp_path / "runs"), "train.name": "fitted",
        "train.mlflow_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "train.experiment": "tests", **overrides})


def test_fit_runs_the_loop_in_its_mlflow_run_and_finishes_it(micro_data, tmp_path, local_fit, capsys):
    from mlflow.tracking import MlflowClient

    from tdrl.train.trainer import fit

    exp = _experiment(micro_data, tmp_path)
    uri, runs_dir = exp.train.mlflow_uri, tmp_path / "runs"
    out = fit(exp)
    client = MlflowClient(uri)
    run = client.get_run(out.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["tdrl.run_name"] == "fitted"
    assert [m.step for m in client.get_metric_history(out.mlflow_run_id, "val_top1")] == [0]
    final = json.loads(Path(client.download_artifacts(out.mlflow_run_id, "final_metrics.json", str(tmp_path)))
                       .read_text())
    assert final["epoch"] == 0 and final["best_epoch"] == 0 and final["val_top1"] == out.metrics["val_top1"]
    # The loop got the run to log to and the folder of its failure-injection markers.
    assert local_fit == [{"run_name": "fitted", "mlflow_uri": uri, "mlflow_run_id": out.mlflow_run_id,
                          "progress": "none", "marker_dir": str(runs_dir / "fitted" / "_tdrl_markers")}]
    assert (f"[tdrl] run fitted: storage {runs_dir}/fitted, MLflow {uri} run {out.mlflow_run_id}, 1 worker(s) x "
            f"1 CPU, global batch 4, lr 0.025\n") in capsys.readouterr().out

    # Run again under the same name: the same MLflow run, reopened, and the line says so.
    again = fit(exp)
    assert again.mlflow_run_id == out.mlflow_run_id
    assert f"MLflow {uri} run {out.mlflow_run_id} (resumed), 1 worker(s)" in capsys.readouterr().out
    assert client.get_run(out.mlflow_run_id).info.status == "FINISHED"


def test_the_run_line_names_the_gpu_and_an_elastic_range(micro_data, tmp_path, local_fit, capsys):
    from tdrl.train.trainer import fit

    # Only the driver's line and Ray's resource request read train.use_gpu; the loop in local mode
    # runs on this machine's device whatever it says.
    exp = _experiment(micro_data, tmp_path, **{"train.use_gpu": True, "train.workers": "1-2",
                                               "train.batch_size": 2})
    fit(exp)
    assert " 1-2 worker(s) (elastic) x 1 CPU + 1 GPU, global batch 4, lr 0.025\n" in capsys.readouterr().out
