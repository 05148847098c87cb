"""MLflow / run-folder look-ups shared by the training tests."""

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
