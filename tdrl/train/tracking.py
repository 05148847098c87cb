"""MLflow, in one place: the store's URI, the client, retries, finding or creating runs (nested under
a parent), params in batches, tag names, and the per-epoch logging of training runs.

Everything in tdrl that talks to MLflow goes through here: training (:mod:`tdrl.train.trainer`,
the loop), studies (parent runs, child runs, tables) and figures. Every call takes the tracking
URI explicitly and uses a client bound to it; nothing sets MLflow's process-wide tracking URI.

Training runs: one MLflow run per training run, metrics per epoch (step = epoch), from rank 0.
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
from typing import Any, Callable, Iterable, Mapping, TypeVar

R = TypeVar("R")
SQLITE = "sqlite:///"  # MLflow's embedded store; the path follows (a fourth "/" starts an absolute one)

# --- tag names: every tag tdrl writes, here and nowhere else ----------------------------------------
RUN_NAME_TAG = "tdrl.run_name"  # a training run's Ray Train name: how a restarted run finds its MLflow run
BEST_CHECKPOINT_TAG = "tdrl.best_checkpoint"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests a run under another in the UI
STUDY_TAG = "tdrl.study"  # "table5", on a study's parent run and its children
STUDY_RUN_TAG = "tdrl.study_run"  # the study run's name ("table5-smoke"), parent and children
ROLE_TAG = "tdrl.role"  # "study" on the parent run, "trial" on children
ROW_TAG = "tdrl.row"  # row key, children
ROW_LABEL_TAG = "tdrl.row_label"  # the paper's row label, children
TABLE_TAG = "tdrl.table"  # the paper's caption, children and parent
SEED_TAG = "tdrl.seed"
TRIAL_TAG = "tdrl.trial"  # Tune trial id, children
STOPPED_EARLY_TAG = "tdrl.stopped_early"  # "true" on a child a scheduler (ASHA) stopped
CONFIG_HASH_TAG = "tdrl.config_hash"  # what decides a trial's result (tdrl.study.sharing), children
PRESET_TAG = "tdrl.preset"  # the preset a trial was built on, children
SHARED_FROM_TAG = "tdrl.shared_from"  # a shared child: the run id it copies its metrics from
SHARED_STUDY_TAG = "tdrl.shared_study"  # a shared child: the study that trained the source run

SCORE = "val_top1"  # the last epoch's validation top-1 (%): what checkpoints, tables, searches and sharing rank by
STEP_KEY = "train_loss"  # every logged epoch has it; its history says which epochs are logged
RETRY_ATTEMPTS = 4  # tdrl's own tries for non-HTTP stores (HTTP: MLflow's client retries, see above)
RETRY_BACKOFF_S = 0.5  # sleeps 0.5, 1, 2 s between the tries
BATCH_LIMIT = 100  # MLflow's log_batch takes at most 100 params or tags per call
PARAM_VALUE_LIMIT = 6000  # longer param values are refused by MLflow (mlflow.utils.validation)
# MLflow error codes that no retry can fix (a bad request, a missing run, no permission).
_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE",
              "PERMISSION_DENIED", "UNAUTHENTICATED", "BAD_REQUEST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"}


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable; the message names the store and the unsent epochs."""


# --- the store: URI, client, retries ------------------------------------------------------------------

def tracking_uri(uri: str | None = None, workdir: str | Path | None = None) -> str:
    """The one default for every command: ``uri`` (``--mlflow-uri``), else ``MLFLOW_TRACKING_URI``,
    else ``sqlite:///<workdir>/mlflow.db`` (MLflow 3's embedded default). A relative ``sqlite:///``
    path is made absolute against ``workdir`` (default: the current folder), because Ray workers
    run in folders of their own."""
    base = Path(workdir or Path.cwd()).resolve()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{base / 'mlflow.db'}"
    db = sqlite_path(uri)
    if db is not None and not db.is_absolute():
        uri = f"{SQLITE}{(base / db).resolve()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store (``sqlite:////abs/x.db`` -> ``/abs/x.db``; a relative
    ``sqlite:///x.db`` -> ``x.db``); None for any other store."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def mlflow_client(uri: str):
    """An ``MlflowClient`` bound to ``uri`` (never the process-wide tracking URI)."""
    from mlflow.tracking import MlflowClient  # mlflow: seconds to import, not on any command's --help path

    return MlflowClient(tracking_uri=uri)


def is_transient(exc: BaseException) -> bool:
    """True for errors a later attempt can get past (connection refused, timeouts, a locked SQLite
    file, server-side 5xx); False for MLflow's request errors (bad value, missing run, ...)."""
    code = getattr(exc, "error_code", None)
    return not (isinstance(code, str) and code in _PERMANENT)


def _own_retries(uri: str) -> int:
    """HTTP stores are retried inside MLflow's client already; everything else gets tdrl's tries."""
    return 1 if uri.startswith(("http://", "https://")) else RETRY_ATTEMPTS


def with_retry(call: Callable[[], R], uri: str, *, attempts: int | None = None, backoff: float | None = None) -> R:
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
    raise AssertionError("unreachable: the last attempt returns or raises")


def _local_artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store go next to the database (absolute), not into the current folder."""
    db = sqlite_path(uri)
    return None if db is None else (db.parent / "mlartifacts").resolve().as_uri()


# --- experiments and runs -----------------------------------------------------------------------------

def experiment_id(uri: str, name: str) -> str:
    """Id of experiment ``name``, created if missing (do this once, in the driver: SQLite dislikes
    concurrent creators)."""
    c = mlflow_client(uri)
    exp = with_retry(lambda: c.get_experiment_by_name(name), uri)
    if exp is not None:
        return exp.experiment_id
    try:
        return with_retry(lambda: c.create_experiment(name, artifact_location=_local_artifact_root(uri)), uri)
    except Exception:  # another process created it between our look-up and create: use theirs
        exp = with_retry(lambda: c.get_experiment_by_name(name), uri)
        if exp is None:
            raise
        return exp.experiment_id


def _tag_filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())


def search_runs(uri: str, experiment: str, *, tags: Mapping[str, str] | None = None, newest: bool = False,
                max_results: int | None = None) -> list[Any]:
    """Runs of ``experiment`` carrying all of ``tags`` (every page), oldest first unless ``newest``;
    an empty list when the experiment does not exist."""
    c = mlflow_client(uri)
    exp = with_retry(lambda: c.get_experiment_by_name(experiment), uri)
    if exp is None:
        return []
    order = [f"attributes.start_time {'DESC' if newest else 'ASC'}"]
    runs: list[Any] = []
    token = None
    while True:
        page_size = min(1000, max_results - len(runs)) if max_results else 1000
        page = with_retry(lambda: c.search_runs([exp.experiment_id], filter_string=_tag_filter(tags or {}),
                                                max_results=page_size, order_by=order, page_token=token), uri)
        runs += list(page)
        token = page.token
        if not token or (max_results and len(runs) >= max_results):
            return runs


def find_run(uri: str, experiment: str, run_name: str | None = None, *, tags: Mapping[str, str] | None = None,
             newest: bool = False) -> str | None:
    """The id of the oldest (or ``newest``) run of ``experiment`` tagged ``tdrl.run_name=run_name``
    (when given) and with all of ``tags``; None if there is none."""
    match = {**({RUN_NAME_TAG: run_name} if run_name else {}), **(tags or {})}
    runs = search_runs(uri, experiment, tags=match, newest=newest, max_results=1)
    return runs[0].info.run_id if runs else None


def get_run(uri: str, run_id: str):
    """MLflow's ``Run`` (info, data.metrics, data.tags); raises MLflow's error for an unknown id."""
    return with_retry(lambda: mlflow_client(uri).get_run(run_id), uri)


def log_params(uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    """Every param, in batches of MLflow's limit; values as strings, ``None`` as "None", cut to the
    longest value MLflow stores."""
    from mlflow.entities import Param  # see mlflow_client

    c = mlflow_client(uri)
    items = [Param(k, ("None" if v is None else str(v))[:PARAM_VALUE_LIMIT]) for k, v in sorted(params.items())]
    for i in range(0, len(items), BATCH_LIMIT):
        batch = items[i:i + BATCH_LIMIT]
        with_retry(lambda: c.log_batch(run_id, params=batch), uri)


def set_tags(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set ``tags`` on a run (values as strings), in batches of MLflow's limit."""
    from mlflow.entities import RunTag  # see mlflow_client

    c = mlflow_client(uri)
    items = [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, len(items), BATCH_LIMIT):
        batch = items[i:i + BATCH_LIMIT]
        with_retry(lambda: c.log_batch(run_id, tags=batch), uri)


def find_or_create_run(uri: str, experiment: str, *, run_name: str, match: Mapping[str, str],
                       tags: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
                       parent_run_id: str | None = None, known_run_id: str | None = None) -> tuple[str, bool]:
    """The run of ``experiment`` found by ``known_run_id`` (if the store has it) or by the ``match``
    tags, set RUNNING again; else a new run named ``run_name`` with ``match`` and ``tags`` as tags
    and ``params`` logged. ``parent_run_id`` nests it (``mlflow.parentRunId``). Returns
    ``(run_id, resumed)``. The experiment is created if missing."""
    exp_id = experiment_id(uri, experiment)
    all_tags = {**match, **{k: str(v) for k, v in (tags or {}).items()},
                **({PARENT_TAG: parent_run_id} if parent_run_id else {})}
    run_id = None
    if known_run_id:
        try:
            run_id = get_run(uri, known_run_id).info.run_id
        except Exception:  # the id belongs to another tracking store
            run_id = None
    run_id = run_id or find_run(uri, experiment, tags=match)
    if run_id is not None:
        with_retry(lambda: mlflow_client(uri).update_run(run_id, status="RUNNING"), uri)
        set_tags(uri, run_id, all_tags)
        return run_id, True
    run = with_retry(lambda: mlflow_client(uri).create_run(exp_id, run_name=run_name, tags=all_tags), uri)
    log_params(uri, run.info.run_id, params or {})
    return run.info.run_id, False


def start_run(uri: str, experiment: str, run_name: str, params: Mapping[str, Any], *,
              parent_run_id: str | None = None, tags: Mapping[str, str] | None = None,
              display_name: str | None = None) -> tuple[str, bool]:
    """A training run: create the run for ``run_name`` or reopen the existing one (found by its
    ``tdrl.run_name`` tag); returns ``(run_id, resumed)``. ``parent_run_id`` nests the run under a
    study's parent run; ``tags`` are added to it either way. ``display_name`` is the name the UI
    shows (a study trial's ``+50% TDLoss · seed 0``); default ``run_name``. Only the tag finds a run
    again, so a resumed trial reopens its run whatever the run is called."""
    return find_or_create_run(uri, experiment, run_name=display_name or run_name, match={RUN_NAME_TAG: run_name},
                              tags=tags, params=params, parent_run_id=parent_run_id)


def log_artifacts(uri: str, run_id: str, paths: Iterable[str | Path], artifact_path: str | None = None) -> None:
    """Upload files to a run (under ``artifact_path``); an upload overwrites, so a retry is safe."""
    c = mlflow_client(uri)
    for path in paths:
        with_retry(lambda: c.log_artifact(run_id, str(path), artifact_path=artifact_path), uri)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Mark a run FINISHED, FAILED or KILLED."""
    with_retry(lambda: mlflow_client(uri).set_terminated(run_id, status=status), uri)


def child_runs(uri: str, experiment: str, parent_run_id: str):
    """Every run nested under ``parent_run_id`` (any status) as a pandas DataFrame with MLflow's
    ``search_runs`` columns (``run_id``, ``status``, ``run_name``, ``metrics.*``, ``params.*``,
    ``tags.*``), read through a client bound to ``uri`` (the global tracking URI is left alone)."""
    import pandas as pd  # seconds to import: `tdrl train` reads no run table

    rows = []
    for run in search_runs(uri, experiment, tags={PARENT_TAG: parent_run_id}):
        row = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "status": run.info.status,
               "run_name": run.info.run_name, "start_time": run.info.start_time, "end_time": run.info.end_time}
        for kind, values in (("metrics", run.data.metrics), ("params", run.data.params), ("tags", run.data.tags)):
            row.update({f"{kind}.{k}": v for k, v in values.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# --- training runs ------------------------------------------------------------------------------------

class EpochLogger:
    """Rank 0's logger: one point per metric per epoch, never twice for the same epoch, and none lost
    while the tracking store is away (queued, sent when it is back; see the module docstring)."""

    def __init__(self, uri: str, run_id: str, client: Any = None) -> None:
        self.uri = uri
        self.run_id = run_id
        self.client = client if client is not None else mlflow_client(uri)
        self.pending: list[tuple[int, list[Any]]] = []  # (epoch, its Metric objects), oldest first
        history = with_retry(lambda: self.client.get_metric_history(run_id, STEP_KEY), uri)
        self.logged = {m.step for m in history}  # epochs the run holds or that are queued for it

    def log(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Log ``metrics`` at ``step=epoch``; False (and a warning) if the epoch is already logged.

        If the store is unreachable the points stay queued (a warning says so) and are sent before
        the next epoch's; training is not interrupted."""
        from mlflow.entities import Metric  # see mlflow_client

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
    """Driver side, after training: artifacts (config, final metrics), best-checkpoint tag, end the run.
    Each step is idempotent (an artifact is overwritten, a tag or status set again), so retrying is safe."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {"config.json": config, "final_metrics.json": final_metrics}
        for name, content in files.items():
            (Path(tmp) / name).write_text(json.dumps(content, indent=1, default=str))
        log_artifacts(uri, run_id, [Path(tmp) / name for name in files])
    if best_checkpoint:
        set_tags(uri, run_id, {BEST_CHECKPOINT_TAG: best_checkpoint})
    end_run(uri, run_id, status)
