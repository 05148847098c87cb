"""MLflow tracking: one MLflow run per training run, metrics per epoch (step = epoch), from rank 0.

Who does what. The driver (:mod:`tdrl.train.trainer`) creates or finds the run *before* Ray Train
starts, so the run id can travel to the workers in the loop config and a restart can never
create a second run: a run is found again by the tag ``tdrl.run_name`` (the Ray Train run name),
which also covers a restart before the first checkpoint. Rank 0 logs each epoch's metrics with
``step=epoch``; the driver logs the configuration and final metrics as artifacts, tags the best
checkpoint and ends the run.

No duplicated epochs. Rank 0 logs an epoch only after ``ray.train.report`` returned (the
checkpoint is persisted), and first reads which steps the run already holds: an epoch that an
earlier attempt logged but whose checkpoint was not registered before a crash is re-run but not
logged twice (the first attempt's values stay; a warning says so).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

RUN_NAME_TAG = "tdrl.run_name"
BEST_CHECKPOINT_TAG = "tdrl.best_checkpoint"
STEP_KEY = "train_loss"  # every logged epoch has it; its history says which epochs are logged


def default_uri(workdir: str | Path | None = None) -> str:
    """MLflow 3's embedded default, made absolute: ``sqlite:///<abs workdir>/mlflow.db``."""
    return f"sqlite:///{Path(workdir or Path.cwd()).resolve() / 'mlflow.db'}"


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _local_artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store go next to the database (absolute), not into the current folder."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def experiment_id(uri: str, name: str) -> str:
    """Id of experiment ``name``, created if missing (do this once, in the driver: SQLite dislikes
    concurrent creators)."""
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_local_artifact_root(uri))
    except Exception:  # another process created it between our look-up and create: use theirs
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def find_run(uri: str, experiment: str, run_name: str) -> str | None:
    """The run id tagged with ``run_name`` in ``experiment``, or None."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                              max_results=1, order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def start_run(uri: str, experiment: str, run_name: str, params: Mapping[str, Any], *,
              parent_run_id: str | None = None, tags: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Create the run for ``run_name`` or reopen the existing one; returns ``(run_id, resumed)``.

    ``parent_run_id`` nests the run under a study's parent run (``mlflow.parentRunId``); ``tags``
    are added to the run either way.
    """
    from mlflow.entities import Param, RunTag

    client = _client(uri)
    exp_id = experiment_id(uri, experiment)
    all_tags = {RUN_NAME_TAG: run_name, **{k: str(v) for k, v in (tags or {}).items()}}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run_id = find_run(uri, experiment, run_name)
    resumed = run_id is not None
    if run_id is None:
        run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
        run_id = run.info.run_id
        items = [Param(k, "None" if v is None else str(v)) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):  # log_batch accepts at most 100 params per call
            client.log_batch(run_id, params=items[i:i + 100])
    else:
        client.update_run(run_id, status="RUNNING")
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
    return run_id, resumed


class EpochLogger:
    """Rank 0's logger: one point per metric per epoch, never twice for the same epoch."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id
        self.client = _client(uri)
        self.logged = {m.step for m in self.client.get_metric_history(run_id, STEP_KEY)}

    def log(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Log ``metrics`` at ``step=epoch``; False (and a warning) if the epoch is already logged."""
        from mlflow.entities import Metric
        import time

        if epoch in self.logged:
            warnings.warn(f"MLflow run {self.run_id} already holds epoch {epoch} from an earlier attempt whose "
                          f"checkpoint was not registered; keeping those values", RuntimeWarning, stacklevel=2)
            return False
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=items)
        self.logged.add(epoch)
        return True


def finish_run(uri: str, run_id: str, *, status: str, config: Mapping[str, Any], final_metrics: Mapping[str, Any],
               best_checkpoint: str | None) -> None:
    """Driver side, after training: artifacts (config, final metrics), best-checkpoint tag, end the run."""
    client = _client(uri)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=1, default=str))
        (Path(tmp) / "final_metrics.json").write_text(json.dumps(final_metrics, indent=1, default=str))
        client.log_artifact(run_id, str(Path(tmp) / "config.json"))
        client.log_artifact(run_id, str(Path(tmp) / "final_metrics.json"))
    if best_checkpoint:
        client.set_tag(run_id, BEST_CHECKPOINT_TAG, best_checkpoint)
    client.set_terminated(run_id, status=status)
