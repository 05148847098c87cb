"""Run a study on Ray Tune driving Ray Train (V2), tracked in MLflow as a parent run with child runs.

How the pieces fit (Ray 2.60, Train V2):

- The driver resolves the study once (:func:`tdrl.study.trials.resolve_study`): every trial's
  complete flat experiment, name, label and sharing hash. The Tune trainable receives that list
  (``tune.with_parameters``), and Tune's parameter space only says which trial is which: a grid's
  ``row`` and ``seed`` (plus the model keys its rows set, for Tune's table), a search's sampled
  values. So a study built at run time runs like a paper table, and a worker never looks a study up.
- Each Tune trial is a function (:func:`trial`) that takes its experiment from the list and calls
  :func:`tdrl.train.trainer.fit`, which builds and fits a ``TorchTrainer``;
  ``ray.tune.integration.ray_train.TuneReportCallback()`` in its RunConfig forwards every epoch's
  metrics to Tune (for ASHA and the result grid). The trial takes one unit of the custom
  ``TRAIN_DRIVER`` resource (or one CPU on a cluster without it), the Train workers take
  ``train.workers x train.cpus_per_worker`` CPUs (+ a GPU each on GPU nodes), so a cluster runs
  as many trials side by side as it has room for.
- The inner Train run is named from the Tune trial id (``<study run>.<row>.s<seed>.<trial id>``,
  :mod:`tdrl.study.naming`), so a resumed trial continues its own Train run from its latest
  checkpoint and finds its own MLflow run (tracking finds runs by that name): no duplicates.
- MLflow: one experiment per study (``tdrl-table5``), a parent run per study run, one child run per
  trial (``mlflow.parentRunId``) tagged with the table, row, seed and trial id. The parent run id is
  stored in ``<storage>/<study run>/tdrl_study.json`` and also found again by its tags.
- Resume: running the same command again (same study run name and storage) restores the Tune
  experiment with ``Tuner.restore(..., resume_unfinished=True, resume_errored=True)`` and the same
  parameter space; finished trials are not run again. A trial whose MLflow run is already FINISHED
  (its completion may have happened after Tune's last state save) reports the stored metrics
  instead of training.
- Sharing (:mod:`tdrl.study.sharing`): a trial whose configuration hash, seed and preset were already
  trained by any study (a FINISHED run with the same ``tdrl.config_hash``) records a child run
  that copies that run's final metrics, tagged ``tdrl.shared_from``, and does not train.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow.fs
import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from tdrl.config.base import ConfigError
from tdrl.config.paths import is_uri, join
from tdrl.study import tables
from tdrl.study.definitions import Study, get_study
from tdrl.study.naming import tables_dir, trial_name
from tdrl.study.sharing import find_shared, record_shared
from tdrl.study.trials import StudyOptions, StudyTrials, resolve_study
from tdrl.train.cluster import connect_ray, trial_resources
from tdrl.train.console import quiet_console
from tdrl.train.presets import get_preset, prepare_data
from tdrl.train.tracking import (ROLE_TAG, SCORE, STOPPED_EARLY_TAG, STUDY_RUN_TAG, STUDY_TAG, TABLE_TAG, child_runs,
                                 end_run, find_or_create_run, find_run, get_run, mlflow_client, set_tags, with_retry)
from tdrl.train.trainer import fit, preflight

STATE_FILE = "tdrl_study.json"


@dataclass
class StudyResult:
    name: str
    path: str  # the Tune experiment folder
    parent_run_id: str
    mlflow_uri: str
    experiment: str
    table: Any  # pandas DataFrame (grids) or the search's results
    result_grid: Any = None
    resumed: bool = False
    seconds: float = 0.0
    errors: int = 0
    unfinished: int = 0  # trials neither finished nor failed (the study was stopped): run again to resume


# --- the study folder's state file -----------------------------------------------------------------

def _fs(path: str):
    """``(pyarrow filesystem, path within it)`` for a local folder or a URI (s3://, gs://)."""
    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(Path(path).resolve())


def read_state(study_dir: str, name: str = STATE_FILE) -> dict[str, Any] | None:
    """The JSON file ``name`` of a study folder (local or a URI), or None when it has none."""
    fs, p = _fs(join(study_dir, name))
    try:
        with fs.open_input_stream(p) as f:
            return json.loads(f.read().decode())
    except (FileNotFoundError, OSError):
        return None


def write_state(study_dir: str, state: Mapping[str, Any], name: str = STATE_FILE) -> None:
    fs, p = _fs(join(study_dir, name))
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(json.dumps(state, indent=1, default=str).encode())


def grid_options(opts: StudyOptions) -> dict[str, Any]:
    """The options that fix a study run's trials; a resumed run must be asked for the same ones."""
    fixed = {"preset": opts.preset, "seeds": opts.seeds, "rows": list(opts.rows), "data": opts.data,
             "overrides": dict(opts.overrides)}
    # only when set: the state files of studies from seed 0 (which lack the key) still resume
    return {**fixed, "first_seed": opts.first_seed} if opts.first_seed else fixed


def check_resumable(study_dir: str, study_run: str, opts: StudyOptions) -> None:
    """Refuse to resume a study run with other trials than it started with: Tune restores the saved
    grid and would silently ignore a new ``--seeds`` or ``--rows``."""
    state = read_state(study_dir)
    if not state:
        return
    before = {k: state.get(k) for k in grid_options(opts)}
    before["data"] = state.get("data", opts.data)  # state files older than the data field
    now = json.loads(json.dumps(grid_options(opts), default=str))
    changed = [f"{k} {before[k]!r} -> {now[k]!r}" for k in now if before[k] != now[k]]
    if changed:
        raise ConfigError(
            f"study run {study_run!r} in {study_dir} was started with other options ({'; '.join(changed)}), "
            f"and a resumed Tune experiment keeps its trials. Repeat the original options to resume it, or give "
            f"this one a new name (--name {study_run}-2): finished runs of the same configuration and seed are "
            f"shared through MLflow, so only the new trials train.")


# --- data, before Ray starts ------------------------------------------------------------------------

def prepare_study_data(trials: StudyTrials) -> StudyTrials:
    """Refuse a study whose dataset cannot be read, before Ray starts (on a cluster: before GPU nodes
    are launched for trials that would all fail). A synthetic preset's set is generated first: at
    its default folder, and also at a ``--data`` folder that does not exist yet or is empty (how a
    smoke study under ``ray job submit`` gets its data at an absolute path); a folder with other
    content is never written into. A remote root (``s3://``...) is left to the nodes. Returns the
    trials hashed on the data as it now is (a generated set is hashed by its parameters)."""
    exp, opts = trials.base, trials.options
    if is_uri(exp.data.root):
        return trials
    root = Path(exp.data.root)
    explicit = bool(opts.data) or "data.root" in opts.overrides
    if not explicit or not root.exists() or (root.is_dir() and not any(root.iterdir())):
        prepare_data(get_preset(trials.preset), exp)
    preflight(exp)
    return trials.with_hashes()


# --- one trial (runs in a Tune trial's process) -------------------------------------------------------

def _finished_metrics(uri: str, experiment: str, name: str) -> dict[str, float] | None:
    """The last metrics of this trial's MLflow run if it already FINISHED, else None."""
    run_id = find_run(uri, experiment, name)
    if run_id is None:
        return None
    run = get_run(uri, run_id)
    if run.info.status != "FINISHED" or SCORE not in run.data.metrics:
        return None
    return dict(run.data.metrics)


def trial(config: dict[str, Any], *, trials: StudyTrials, parent_run_id: str, workdir: str) -> None:
    """One Tune trial: train the experiment ``trials`` resolved for this config on Ray Train, unless
    the same configuration and seed already finished in another study (then share that run)."""
    t = trials.trial_for(config)
    trial_id = tune.get_context().get_trial_id()
    name = trial_name(t.prefix, trial_id)
    exp = t.experiment(trial_id)
    uri, experiment = exp.train.mlflow_uri, exp.train.experiment
    done = _finished_metrics(uri, experiment, name)
    if done is not None:  # finished before the driver could record it: do not train again
        print(f"[tdrl] {name}: already finished in MLflow; reporting its metrics", flush=True)
        tune.report(done)
        return
    tags = trials.trial_tags(t, trial_id)
    source = find_shared(uri, t.config_hash, t.seed, trials.preset)
    if source is not None:
        record_shared(uri, experiment, name, parent_run_id, tags, exp.flatten(), source, display_name=t.display)
        print(f"[tdrl] {name}: same configuration and seed already trained in {source.study} "
              f"(run {source.run_id}); shared, not trained again", flush=True)
        tune.report(source.metrics)
        return
    fit(exp, parent_run_id=parent_run_id, tags=tags, callbacks=[TuneReportCallback()], workdir=workdir,
        run_label=t.display)


def _row_value(values: Mapping[str, Any], spec: Any) -> Any:
    """A grid row's value of one key (``tune.sample_from``: resolved after the row's grid value)."""
    return values.get(str(spec.config.row))


def grid_space(trials: StudyTrials) -> dict[str, Any]:
    """Tune's parameter space of a grid: rows x seeds, which pick each trial from the list, plus every
    key the rows set, resolved per trial from its row, so Tune's config (and its result table) shows
    what each trial trains."""
    study = trials.study
    keys = sorted({k for r in trials.rows for k in study.overrides(r)})
    values = {k: {r: study.overrides(r).get(k) for r in trials.rows} for k in keys}
    return {"row": tune.grid_search(list(trials.rows)), "seed": tune.grid_search(trials.seeds),
            **{k: tune.sample_from(partial(_row_value, values[k])) for k in keys}}


# --- MLflow parent run ------------------------------------------------------------------------------

def parent_run(trials: StudyTrials, params: Mapping[str, Any]) -> tuple[str, bool]:
    """The study's parent run: the one the study folder's state file names, else the one tagged with
    this study run's name, else a new one (created here in the driver, with the experiment)."""
    state = read_state(trials.study_dir) or {}
    return find_or_create_run(trials.mlflow_uri, trials.experiment, run_name=trials.study_run,
                              match={STUDY_RUN_TAG: trials.study_run, ROLE_TAG: "study"},
                              tags={STUDY_TAG: trials.study.name, TABLE_TAG: trials.study.title}, params=params,
                              known_run_id=state.get("parent_run_id"))


def close_stopped_children(uri: str, experiment: str, parent_run_id: str) -> int:
    """Children left RUNNING (trials stopped early by ASHA, or killed): mark them KILLED."""
    runs = child_runs(uri, experiment, parent_run_id)
    if runs.empty:
        return 0
    left = runs[runs["status"] == "RUNNING"]
    for run_id in left["run_id"]:
        set_tags(uri, run_id, {STOPPED_EARLY_TAG: "true"})
        end_run(uri, run_id, status="KILLED")
    return len(left)


# --- running ------------------------------------------------------------------------------------------

def _max_concurrent(trials: StudyTrials, resources: Mapping[str, float], started: bool) -> int | None:
    """Trials at a time: ``--max-concurrent``; else, on a local Ray (ours or a test session's), as many
    as the CPUs can train at once (otherwise trial drivers hold resources while their workers wait);
    on a cluster unlimited (None: the autoscaler adds nodes)."""
    opts, t = trials.options, trials.base.train
    if opts.max_concurrent is not None or not (started or not os.environ.get("RAY_ADDRESS")):
        return opts.max_concurrent
    per_trial = t.max_workers * t.cpus_per_worker + resources.get("CPU", 0)  # elastic: MAX
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // per_trial)


def run_tune(trials: StudyTrials, *, param_space: dict[str, Any], count: int,
             tune_config_kwargs: Mapping[str, Any] | None = None, parent_params: Mapping[str, Any] | None = None,
             after: Callable[[StudyResult], Any] | None = None) -> StudyResult:
    """The shared driver of grids and searches: Ray, MLflow parent, Tuner (new or restored), fit.
    ``count`` is how many trials the run makes (to tell a stopped run from a finished one);
    ``parent_params`` are added to :meth:`StudyTrials.parent_params`."""
    # ~55 lines on purpose: one readable sequence (Ray, parent run, Tuner, fit, table) whose steps
    # share a dozen local values; the reusable parts are functions above.
    t0 = time.time()
    opts, uri, study_dir = trials.options, trials.mlflow_uri, trials.study_dir
    check_resumable(study_dir, trials.study_run, opts)  # before Ray starts
    quiet_console()  # the driver's own Ray Train/MLflow bookkeeping lines stay in the log files
    started = connect_ray()
    resources = trial_resources()
    max_conc = _max_concurrent(trials, resources, started)

    parent_id, parent_resumed = parent_run(trials, {**(parent_params or {}), **trials.parent_params()})
    write_state(study_dir, {"study": trials.study.name, "study_run": trials.study_run, "parent_run_id": parent_id,
                            "mlflow_uri": uri, "experiment": trials.experiment, **grid_options(opts)})
    base = trials.base.train
    print(f"[tdrl] study {trials.study_run}: {study_dir}; MLflow {uri} experiment {trials.experiment} parent run "
          f"{parent_id}{' (resumed)' if parent_resumed else ''}; trial resources {resources} + {base.workers} "
          f"worker(s) x {base.cpus_per_worker} CPU; max concurrent {max_conc or 'unlimited'}", flush=True)

    trainable = tune.with_resources(
        tune.with_parameters(trial, trials=trials, parent_run_id=parent_id, workdir=str(Path.cwd().resolve())),
        resources)
    resumed = tune.Tuner.can_restore(study_dir)
    if resumed:
        print(f"[tdrl] resuming study {trials.study_run} from {study_dir} (finished trials are kept)", flush=True)
        # The same param_space again: Tune saved the grid's sample_from functions as placeholders, and
        # trials it has not generated yet would get the placeholder itself as a value without it.
        tuner = tune.Tuner.restore(study_dir, trainable=trainable, param_space=param_space,
                                   resume_unfinished=True, resume_errored=True)
    else:
        run_config = tune.RunConfig(name=trials.study_run, storage_path=trials.storage, verbose=opts.verbose,
                                    failure_config=tune.FailureConfig(max_failures=1))
        tuner = tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                           tune_config=tune.TuneConfig(max_concurrent_trials=max_conc, **(tune_config_kwargs or {})))
    status = "FAILED"
    try:
        grid = tuner.fit()
        errors = len(grid.errors)
        # Ctrl-C (SIGINT) makes Tune save its state and return normally with trials left PENDING or
        # RUNNING, or never created (grids and searches make trials lazily): counted against the
        # expected ``count``, the parent is then KILLED, not FINISHED, and the console says how to resume.
        unfinished = max(0, count - grid.num_terminated - errors)
        status = "KILLED" if unfinished else "FINISHED" if errors == 0 else "FAILED"
    except BaseException:
        end_run(uri, parent_id, status="KILLED")
        raise
    close_stopped_children(uri, trials.experiment, parent_id)
    result = StudyResult(name=trials.study_run, path=study_dir, parent_run_id=parent_id, mlflow_uri=uri,
                         experiment=trials.experiment, table=None, result_grid=grid,
                         resumed=resumed or parent_resumed, errors=errors, unfinished=unfinished)
    if after is not None:
        result.table = after(result)
    result.seconds = time.time() - t0
    with_retry(lambda: mlflow_client(uri).log_metric(parent_id, "study_wall_s", result.seconds), uri)
    end_run(uri, parent_id, status=status)
    return result


def run_study(study: Study | str, opts: StudyOptions) -> StudyResult:
    """Run (or resume) a fixed-grid study (a paper table or a :class:`Study` built at run time):
    every row x seeds 0..K-1, then write its table."""
    study = get_study(study) if isinstance(study, str) else study
    trials = prepare_study_data(resolve_study(study, opts))  # refused before Ray starts: no trial fails on it

    def after(res: StudyResult):
        table, _, _ = tables.report(study, res.mlflow_uri, tables_dir(res.name, opts.tables_out),
                                    experiment=res.experiment, parent_run_id=res.parent_run_id)
        return table

    return run_tune(trials, param_space=grid_space(trials), count=len(trials.trials), after=after)
