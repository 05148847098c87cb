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

Tracking outages. An unreachable tracking store neither stops training nor loses a point:

* HTTP(S) servers: MLflow's own client already retries every REST call, connection errors
  included, with exponential backoff (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7, and
  ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, default 2: about 4 minutes; checked in mlflow 3.17's
  ``mlflow/utils/request_utils.py``), so tdrl adds no second retry loop on top of it.
* Other stores (``sqlite:///``: "database is locked", a brief I/O error) get tdrl's own bounded
  retry, :func:`with_retry` (``RETRY_ATTEMPTS`` tries, backoff ``RETRY_BACKOFF_S`` x 2^i).
* When a call still fails, :class:`EpochLogger` keeps the epoch's points queued and training goes
  on; the queue is sent, oldest first, before the next epoch's points and once more at the end of
  training (:meth:`EpochLogger.close` waits up to ``TDRL_MLFLOW_FLUSH_TIMEOUT_S``, default 300 s,
  and otherwise fails the run naming the unsent epochs and their values).
* A resent batch is the same ``Metric`` objects (same timestamp, step and value); MLflow's SQL
  store skips points it already holds, so a batch that reached the server before its answer was
  lost is not stored twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

RUN_NAME_TAG = "tdrl.run_name"
BEST_CHECKPOINT_TAG = "tdrl.best_checkpoint"
STEP_KEY = "train_loss"  # every logged epoch has it; its history says which epochs are logged
RETRY_ATTEMPTS = 4  # tdrl's own tries for non-HTTP stores (HTTP: MLflow's client retries, see above)
RETRY_BACKOFF_S = 0.5  # sleeps 0.5, 1, 2 s between the tries
# MLflow error codes that no retry can fix (a bad request, a missing run, no permission).
_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE",
              "PERMISSION_DENIED", "UNAUTHENTICATED", "BAD_REQUEST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"}


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable; the message names the store and the unsent epochs."""


def is_transient(exc: BaseException) -> bool:
    """True for errors a later attempt can get past (connection refused, timeouts, a locked SQLite
    file, server-side 5xx); False for MLflow's request errors (bad value, missing run, ...)."""
    code = getattr(exc, "error_code", None)
    return not (isinstance(code, str) and code in _PERMANENT)


def _own_retries(uri: str) -> int:
    """HTTP stores are retried inside MLflow's client already; everything else gets tdrl's tries."""
    return 1 if uri.startswith(("http://", "https://")) else RETRY_ATTEMPTS


def with_retry(call, uri: str, *, attempts: int | None = None, backoff: float | None = None):
    """``call()``, retried on transient errors with exponential backoff; the last error propagates."""
    attempts = _own_retries(uri) if attempts is None else attempts
    backoff = RETRY_BACKOFF_S if backoff is None else backoff
    for i in range(attempts):
        try:
            return call()
        except Exception as exc:
            if i == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(backoff * 2 ** i)


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
    """Rank 0's logger: one point per metric per epoch, never twice for the same epoch, and none lost
    while the tracking store is away (queued, sent when it is back; see the module docstring)."""

    def __init__(self, uri: str, run_id: str, client: Any = None) -> None:
        self.uri = uri
        self.run_id = run_id
        self.client = client if client is not None else _client(uri)
        self.pending: list[tuple[int, list[Any]]] = []  # (epoch, its Metric objects), oldest first
        history = with_retry(lambda: self.client.get_metric_history(run_id, STEP_KEY), uri)
        self.logged = {m.step for m in history}  # epochs the run holds or that are queued for it

    def log(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Log ``metrics`` at ``step=epoch``; False (and a warning) if the epoch is already logged.

        If the store is unreachable the points stay queued (a warning says so) and are sent before
        the next epoch's; training is not interrupted."""
        from mlflow.entities import Metric

        if epoch in self.logged:
            warnings.warn(f"MLflow run {self.run_id} already holds epoch {epoch} from an earlier attempt whose "
                          f"checkpoint was not registered; keeping those values", RuntimeWarning, stacklevel=2)
            return False
        now = int(time.time() * 1000)  # fixed once: a resent batch is identical, so never stored twice
        items = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if isinstance(v, (int, float))]
        self.pending.append((epoch, items))
        self.logged.add(epoch)
        self.flush()
        return True

    def backfill(self, history: Mapping[int, Mapping[str, float]]) -> list[int]:
        """After a restart: log every epoch of a checkpoint's ``history`` that the run lacks, oldest
        first (epochs queued in a crashed worker's memory, or reported just before the crash).
        Returns the epochs logged."""
        missing = sorted(e for e in history if e not in self.logged)
        for epoch in missing:
            self.log(epoch, history[epoch])
        return missing

    def flush(self) -> bool:
        """Send the queued epochs, oldest first; True when none is left. A transient failure keeps
        them queued (with a warning); a permanent one (bad request) raises."""
        while self.pending:
            epoch, items = self.pending[0]
            try:
                with_retry(lambda: self.client.log_batch(self.run_id, metrics=items), self.uri)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                warnings.warn(f"MLflow {self.uri} unreachable ({type(exc).__name__}: {str(exc)[:200]}); epoch(s) "
                              f"{', '.join(str(e) for e, _ in self.pending)} queued, sent when it is back",
                              RuntimeWarning, stacklevel=2)
                return False
            self.pending.pop(0)
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """End of training: send what is queued, trying for up to ``timeout_s`` (default
        ``TDRL_MLFLOW_FLUSH_TIMEOUT_S`` or 300 s); then fail naming the epochs and their values."""
        if timeout_s is None:
            timeout_s = float(os.environ.get("TDRL_MLFLOW_FLUSH_TIMEOUT_S", "300"))
        deadline = time.monotonic() + timeout_s
        pause = RETRY_BACKOFF_S
        while not self.flush():
            left = deadline - time.monotonic()
            if left <= 0:
                unsent = {e: {m.key: m.value for m in items} for e, items in self.pending}
                raise TrackingUnavailable(f"MLflow {self.uri} stayed unreachable for {timeout_s:.0f}s at the end of "
                                          f"training; run {self.run_id} lacks epoch(s) {', '.join(map(str, unsent))}: "
                                          f"{json.dumps(unsent)}")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 30.0)


def finish_run(uri: str, run_id: str, *, status: str, config: Mapping[str, Any], final_metrics: Mapping[str, Any],
               best_checkpoint: str | None) -> None:
    """Driver side, after training: artifacts (config, final metrics), best-checkpoint tag, end the run."""
    client = _client(uri)
    # Each step is idempotent (an artifact is overwritten, a tag or status set again), so retrying is safe.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=1, default=str))
        (Path(tmp) / "final_metrics.json").write_text(json.dumps(final_metrics, indent=1, default=str))
        for name in ("config.json", "final_metrics.json"):
            with_retry(lambda: client.log_artifact(run_id, str(Path(tmp) / name)), uri)
    if best_checkpoint:
        with_retry(lambda: client.set_tag(run_id, BEST_CHECKPOINT_TAG, best_checkpoint), uri)
    with_retry(lambda: client.set_terminated(run_id, status=status), uri)
