"""Run a study on Ray Tune driving Ray Train (V2), tracked in MLflow as a parent run with child runs.

How the pieces fit (Ray 2.60, Train V2):

- Each Tune trial is a function (:func:`trial`) that builds the trial's
  :class:`~tdrl.config.experiment.Experiment` (preset < study's common keys < row keys < seed) and
  calls :func:`tdrl.train.trainer.fit`, which builds and fits a ``TorchTrainer``;
  ``ray.tune.integration.ray_train.TuneReportCallback()`` in its RunConfig forwards every epoch's
  metrics to Tune (for ASHA and the result grid). The trial takes one unit of the custom
  ``TRAIN_DRIVER`` resource (or one CPU on a cluster without it), the Train workers take
  ``train.workers x train.cpus_per_worker`` CPUs (+ a GPU each on GPU nodes), so a cluster runs
  as many trials side by side as it has room for.
- The inner Train run is named from the Tune trial id (``<study run>.<row>.s<seed>.<trial id>``),
  so a resumed trial continues its own Train run from its latest checkpoint and finds its own
  MLflow run (tracking finds runs by that name): no duplicates.
- MLflow: one experiment per study (``tdrl-table5``), a parent run per study run, one child run per
  trial (``mlflow.parentRunId``) tagged with the table, row, seed and trial id. The parent run id is
  stored in ``<storage>/<study run>/tdrl_study.json`` and also found again by its tags.
- Resume: running the same command again (same study run name and storage) restores the Tune
  experiment with ``Tuner.restore(..., resume_unfinished=True, resume_errored=True)``; finished
  trials are not run again. A trial whose MLflow run is already FINISHED (its completion may have
  happened after Tune's last state save) reports the stored metrics instead of training.
- Sharing (:mod:`tdrl.study.sharing`): a trial whose configuration, seed and preset were already
  trained by any study (a FINISHED run with the same ``tdrl.config_hash``) records a child run
  that copies that run's final metrics, tagged ``tdrl.shared_from``, and does not train.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from tdrl.config.base import ConfigError
from tdrl.config.experiment import Experiment
from tdrl.config.paths import is_uri, join
from tdrl.study import tables as T
from tdrl.study.definitions import Study, get_study
from tdrl.study.sharing import config_hash, find_shared, record_shared

STATE_FILE = "tdrl_study.json"
METRIC = "val_top1"


@dataclass
class StudyOptions:
    """What a study script's command line sets (see :mod:`tdrl.study.cli`)."""

    preset: str = "smoke"
    data: str | None = None  # data.root
    seeds: int = 1
    name: str | None = None  # study run name; default "<study>-<preset>"
    storage: str | None = None  # default $TDRL_STORAGE, else ./runs/studies
    mlflow_uri: str | None = None  # default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    rows: tuple[str, ...] = ()  # a subset of the study's rows
    overrides: dict[str, Any] = field(default_factory=dict)  # extra flat keys, e.g. train.epochs=1
    max_concurrent: int | None = None
    experiment_prefix: str = "tdrl"
    tables_out: str | None = None  # where `tdrl tables` files go; default <cwd>/runs/tables/<study run>
    verbose: int = 1  # Tune's console verbosity


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

def default_storage() -> str:
    env = os.environ.get("TDRL_STORAGE")
    return env if env else str(Path("runs/studies").resolve())


def _fs(path: str):
    """``(pyarrow filesystem, path within it)`` for a local folder or a URI (s3://, gs://)."""
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(Path(path).resolve())


def read_state(study_dir: str) -> dict[str, Any] | None:
    fs, p = _fs(join(study_dir, STATE_FILE))
    try:
        with fs.open_input_stream(p) as f:
            return json.loads(f.read().decode())
    except (FileNotFoundError, OSError):
        return None


def write_state(study_dir: str, state: Mapping[str, Any]) -> None:
    fs, p = _fs(join(study_dir, STATE_FILE))
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(json.dumps(state, indent=1, default=str).encode())


def grid_options(opts: StudyOptions) -> dict[str, Any]:
    """The options that fix a study run's trials; a resumed run must be asked for the same ones."""
    return {"preset": opts.preset, "seeds": opts.seeds, "rows": list(opts.rows), "data": opts.data,
            "overrides": dict(opts.overrides)}


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


# --- the experiment of a trial ----------------------------------------------------------------------

def base_experiment(opts: StudyOptions, study_run: str, storage: str, uri: str, experiment: str,
                    common: Mapping[str, Any] | None = None) -> Experiment:
    """Preset < study's common keys < the user's overrides, resolved to absolute paths."""
    from tdrl.train.presets import get_preset
    from tdrl.train.trainer import resolve

    exp = get_preset(opts.preset).experiment()
    changes: dict[str, Any] = dict(common or {})
    if opts.data:
        changes["data.root"] = opts.data
    changes.update(opts.overrides)
    changes.update({"train.storage_path": join(storage, study_run, "train"), "train.mlflow_uri": uri,
                    "train.experiment": experiment, "train.name": study_run})
    if "train.progress" not in opts.overrides:
        changes["train.progress"] = "none"  # many trials side by side: Tune's table is the progress
    return resolve(exp.override(changes))


def trial_name(study_run: str, row: str, seed: int, trial_id: str) -> str:
    """The trial's Ray Train run name (and MLflow run name): deterministic from the Tune trial id."""
    return f"{study_run}.{row}.s{seed}.{trial_id}"


# What a searched key reads as in a run name (the search's trials have no row label).
_SEARCH_LABELS = {"model.td_lambda": "λ {:.1e}", "model.td_ratio": "ratio {:g}", "model.enhance_position": "PEM {}",
                  "model.td_position": "TD {}", "model.td_blocks": "at {}", "model.mem_init": "m0 {}"}


def trial_label(row_label: str | None, overrides: Mapping[str, Any], seed: int) -> str:
    """The MLflow run name people read, as the table does: ``+50% TDLoss · seed 0``; a search trial
    by its sampled values (``λ 2.0e-04, ratio 0.5, PEM after, TD after, m0 last · seed 0``). The
    unique :func:`trial_name` stays the ``tdrl.run_name`` tag, by which a resumed trial finds its run."""
    if row_label is None:
        row_label = ", ".join(fmt.format(overrides[k]) for k, fmt in _SEARCH_LABELS.items() if k in overrides)
    return f"{row_label or 'trial'} · seed {seed}"


def trial_overrides(study_name: str, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(row key, flat overrides)`` of a trial config. One route for grids and searches: the flat
    ``section.field`` keys Tune resolved for the trial (a grid row's, see :func:`row_space`, or the
    search's samples); a grid trial also carries its row key."""
    flat = {k: v for k, v in config.items() if "." in k}
    return str(config.get("row", "search")), flat


def _row_value(study_name: str, key: str, spec: Any) -> Any:
    """A grid row's value of ``key`` (``tune.sample_from``: resolved after the row's grid value)."""
    return get_study(study_name).overrides(str(spec.config.row)).get(key)


def row_space(study: Study, rows: list[str], seeds: int) -> dict[str, Any]:
    """Tune's parameter space of a grid: rows x seeds, plus every ``model.*`` key the rows set, resolved
    per trial from the row, so Tune's config (and its result table) shows what each trial trains."""
    from functools import partial

    from ray import tune

    keys = sorted({k for r in rows for k in study.overrides(r)})
    return {"row": tune.grid_search(rows), "seed": tune.grid_search(list(range(seeds))),
            **{k: tune.sample_from(partial(_row_value, study.name, k)) for k in keys}}


def _finished_metrics(uri: str, experiment: str, name: str) -> dict[str, float] | None:
    """The last metrics of this trial's MLflow run if it already FINISHED, else None."""
    from tdrl.train.tracking import find_run, get_run

    run_id = find_run(uri, experiment, name)
    if run_id is None:
        return None
    run = get_run(uri, run_id)
    if run.info.status != "FINISHED" or METRIC not in run.data.metrics:
        return None
    return dict(run.data.metrics)


def trial(config: dict[str, Any], *, study_name: str, base_flat: dict[str, Any], parent_run_id: str,
          study_run: str, workdir: str, preset: str = "") -> None:
    """One Tune trial: train the row's experiment with seed ``config['seed']`` on Ray Train, unless
    the same configuration and seed already finished in another study (then share that run)."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from tdrl.train.trainer import fit

    row, overrides = trial_overrides(study_name, config)
    seed = int(config.get("seed", 0))
    trial_id = ray.tune.get_context().get_trial_id()
    name = trial_name(study_run, row, seed, trial_id)
    flat = {**base_flat, **overrides, "train.seed": seed, "train.name": name}
    exp = Experiment.from_flat(flat)
    t = exp.train
    done = _finished_metrics(t.mlflow_uri, t.experiment, name)
    if done is not None:  # finished before the driver could record it: do not train again
        print(f"[tdrl] {name}: already finished in MLflow; reporting its metrics", flush=True)
        ray.tune.report(done)
        return
    study = get_study(study_name) if study_name in _grid_names() else None
    chash = config_hash(exp.flatten())
    tags = {T.STUDY_TAG: study_name, T.STUDY_RUN_TAG: study_run, T.ROLE_TAG: "trial", T.ROW_TAG: row,
            T.SEED_TAG: str(seed), T.TRIAL_TAG: trial_id,
            T.TABLE_TAG: study.title if study else study_name,
            T.ROW_LABEL_TAG: study.row(row).label if study else row,
            T.CONFIG_HASH_TAG: chash, T.PRESET_TAG: preset}
    source = find_shared(t.mlflow_uri, chash, seed, preset) if preset else None
    label = trial_label(study.row(row).label if study else None, overrides, seed)
    if source is not None:
        record_shared(t.mlflow_uri, t.experiment, name, parent_run_id, tags, exp.flatten(), source,
                      display_name=label)
        print(f"[tdrl] {name}: same configuration and seed already trained in {source.study} "
              f"(run {source.run_id}); shared, not trained again", flush=True)
        ray.tune.report(source.metrics)
        return
    fit(exp, parent_run_id=parent_run_id, tags=tags, callbacks=[TuneReportCallback()], workdir=workdir,
        run_label=label)


def _grid_names() -> set[str]:
    from tdrl.study.definitions import STUDIES

    return set(STUDIES)


# --- MLflow parent run ------------------------------------------------------------------------------

def parent_run(uri: str, experiment: str, study_dir: str, study_run: str, study_name: str, title: str,
               params: Mapping[str, Any]) -> tuple[str, bool]:
    """The study's parent run: the one the study folder's state file names, else the one tagged with
    this study run's name, else a new one (created here in the driver, with the experiment)."""
    from tdrl.train.tracking import find_or_create_run

    state = read_state(study_dir) or {}
    return find_or_create_run(uri, experiment, run_name=study_run,
                              match={T.STUDY_RUN_TAG: study_run, T.ROLE_TAG: "study"},
                              tags={T.STUDY_TAG: study_name, T.TABLE_TAG: title}, params=params,
                              known_run_id=state.get("parent_run_id"))


def close_stopped_children(uri: str, experiment: str, parent_run_id: str) -> int:
    """Children left RUNNING (trials stopped early by ASHA, or killed): mark them KILLED."""
    from tdrl.train.tracking import STOPPED_EARLY_TAG, child_runs, end_run, set_tags

    runs = child_runs(uri, experiment, parent_run_id)
    if runs.empty:
        return 0
    left = runs[runs["status"] == "RUNNING"]
    for run_id in left["run_id"]:
        set_tags(uri, run_id, {STOPPED_EARLY_TAG: "true"})
        end_run(uri, run_id, status="KILLED")
    return len(left)


# --- running ------------------------------------------------------------------------------------------

def _max_concurrent(opts: StudyOptions, base: Experiment, resources: Mapping[str, float], started: bool) -> int | None:
    """Trials at a time: ``--max-concurrent``; else, on a local Ray (ours or a test session's), as many
    as the CPUs can train at once (otherwise trial drivers hold resources while their workers wait);
    on a cluster unlimited (None: the autoscaler adds nodes)."""
    import ray

    if opts.max_concurrent is not None or not (started or not os.environ.get("RAY_ADDRESS")):
        return opts.max_concurrent
    per_trial = base.train.max_workers * base.train.cpus_per_worker + resources.get("CPU", 0)  # elastic: MAX
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // per_trial)


def run_tune(*, study_name: str, title: str, opts: StudyOptions, param_space: dict[str, Any],
             common: Mapping[str, Any], tune_config_kwargs: Mapping[str, Any],
             parent_params: Mapping[str, Any], trials: int, after: Callable[..., Any] | None = None) -> StudyResult:
    """The shared driver of grids and searches: Ray, MLflow parent, Tuner (new or restored), fit."""
    # ~65 lines on purpose: one readable sequence (paths, Ray, parent run, Tuner, fit, table) whose
    # steps share a dozen local values; the reusable parts are functions above.
    from ray import tune

    from tdrl.train.cluster import connect_ray, trial_resources
    from tdrl.train.console import quiet_console
    from tdrl.train.presets import get_preset, prepare_data
    from tdrl.train.tracking import end_run, mlflow_client, tracking_uri, with_retry

    t0 = time.time()
    experiment = f"{opts.experiment_prefix}-{study_name}"
    study_run = opts.name or f"{study_name}-{opts.preset}"
    storage = opts.storage or default_storage()
    if not is_uri(storage):
        storage = str(Path(storage).resolve())
    uri = tracking_uri(opts.mlflow_uri)
    base = base_experiment(opts, study_run, storage, uri, experiment, common)
    study_dir = join(storage, study_run)
    if not opts.data and "data.root" not in opts.overrides:
        prepare_data(get_preset(opts.preset), base)  # the preset's synthetic set, generated once, here

    check_resumable(study_dir, study_run, opts)  # before Ray starts
    quiet_console()  # the driver's own Ray Train/MLflow bookkeeping lines stay in the log files
    started = connect_ray()
    resources = trial_resources()
    max_conc = _max_concurrent(opts, base, resources, started)

    parent_id, parent_resumed = parent_run(uri, experiment, study_dir, study_run, study_name, title,
                                           {**parent_params, **{f"base.{k}": v for k, v in base.flatten().items()}})
    write_state(study_dir, {"study": study_name, "study_run": study_run, "parent_run_id": parent_id,
                            "mlflow_uri": uri, "experiment": experiment, **grid_options(opts)})
    print(f"[tdrl] study {study_run}: {study_dir}; MLflow {uri} experiment {experiment} parent run {parent_id}"
          f"{' (resumed)' if parent_resumed else ''}; trial resources {resources} + {base.train.workers} "
          f"worker(s) x {base.train.cpus_per_worker} CPU; max concurrent {max_conc or 'unlimited'}", flush=True)

    trainable = tune.with_resources(
        tune.with_parameters(trial, study_name=study_name, base_flat=base.flatten(), parent_run_id=parent_id,
                             study_run=study_run, workdir=str(Path.cwd().resolve()), preset=opts.preset),
        resources)
    resumed = tune.Tuner.can_restore(study_dir)
    if resumed:
        print(f"[tdrl] resuming study {study_run} from {study_dir} (finished trials are kept)", flush=True)
        # The same param_space again: Tune saved the grid's sample_from functions as placeholders, and
        # trials it has not generated yet would get the placeholder itself as a value without it.
        tuner = tune.Tuner.restore(study_dir, trainable=trainable, param_space=param_space,
                                   resume_unfinished=True, resume_errored=True)
    else:
        run_config = tune.RunConfig(name=study_run, storage_path=storage, verbose=opts.verbose,
                                    failure_config=tune.FailureConfig(max_failures=1))
        tuner = tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                           tune_config=tune.TuneConfig(max_concurrent_trials=max_conc, **tune_config_kwargs))
    status = "FAILED"
    try:
        grid = tuner.fit()
        errors = len(grid.errors)
        # Ctrl-C (SIGINT) makes Tune save its state and return normally with trials left PENDING or
        # RUNNING, or never created (grids and searches make trials lazily): counted against the
        # expected ``trials``, the parent is then KILLED, not FINISHED, and the console says how to resume.
        unfinished = max(0, trials - grid.num_terminated - errors)
        status = "KILLED" if unfinished else "FINISHED" if errors == 0 else "FAILED"
    except BaseException:
        end_run(uri, parent_id, status="KILLED")
        raise
    close_stopped_children(uri, experiment, parent_id)
    result = StudyResult(name=study_run, path=study_dir, parent_run_id=parent_id, mlflow_uri=uri,
                         experiment=experiment, table=None, result_grid=grid, resumed=resumed or parent_resumed,
                         errors=errors, unfinished=unfinished)
    if after is not None:
        result.table = after(result)
    result.seconds = time.time() - t0
    with_retry(lambda: mlflow_client(uri).log_metric(parent_id, "study_wall_s", result.seconds), uri)
    end_run(uri, parent_id, status=status)
    return result


def grid_rows(study: Study, opts: StudyOptions) -> list[str]:
    """The row keys a grid study runs (``--rows`` or all), each validated on top of the preset, and
    ``--seeds`` checked: bad input is refused before anything starts (a run or a ``--plan``)."""
    from tdrl.train.presets import get_preset

    rows = list(opts.rows) or [r.key for r in study.rows]
    unknown = [r for r in rows if r not in {x.key for x in study.rows}]
    if unknown:  # before Ray starts
        raise ConfigError(f"--rows: study {study.name} has no row {', '.join(map(repr, unknown))}; rows: "
                          f"{', '.join(x.key for x in study.rows)}")
    if opts.seeds < 1:
        raise ConfigError(f"--seeds={opts.seeds} must be >= 1")
    for r in rows:  # every row must validate on top of the preset before anything runs
        get_preset(opts.preset).experiment().override({**study.overrides(r), **opts.overrides})
    return rows


def study_data(opts: StudyOptions, common: Mapping[str, Any]) -> Experiment:
    """The preset < study's common keys < ``--data`` < ``--set`` experiment with an absolute data.root:
    what every trial reads its data from."""
    from tdrl.config.paths import absolute
    from tdrl.train.presets import get_preset

    exp = get_preset(opts.preset).experiment().override(
        {**common, **({"data.root": opts.data} if opts.data else {}), **opts.overrides})
    return exp.override({"data.root": absolute(exp.data.root, Path.cwd())})


def check_study_data(opts: StudyOptions, common: Mapping[str, Any]) -> None:
    """Refuse a study whose dataset cannot be read, before Ray starts (on a cluster: before GPU nodes
    are launched for trials that would all fail). A synthetic preset's set is generated first: at
    its default folder, and also at a ``--data`` folder that does not exist yet or is empty (how a
    smoke study under ``ray job submit`` gets its data at an absolute path); a folder with other
    content is never written into. A remote root (``s3://``...) is left to the nodes."""
    from tdrl.train.presets import get_preset, prepare_data
    from tdrl.train.trainer import preflight

    preset = get_preset(opts.preset)
    exp = study_data(opts, common)
    if "://" in exp.data.root:
        return
    root = Path(exp.data.root)
    explicit = bool(opts.data) or "data.root" in opts.overrides
    if not explicit or not root.exists() or (root.is_dir() and not any(root.iterdir())):
        prepare_data(preset, exp)
    preflight(exp)


def run_study(study: Study | str, opts: StudyOptions) -> StudyResult:
    """Run (or resume) a fixed-grid study: every row x seeds 0..K-1, then write its table."""
    from ray import tune

    study = get_study(study) if isinstance(study, str) else study
    rows = grid_rows(study, opts)
    check_study_data(opts, study.common)  # before Ray starts: no trial fails on missing data
    space = row_space(study, rows, opts.seeds)

    def after(res: StudyResult):
        out = opts.tables_out or str(Path("runs/tables").resolve() / res.name)
        table, _, paths = T.report(study, res.mlflow_uri, out, experiment=res.experiment,
                                   parent_run_id=res.parent_run_id)
        return table

    # The study's common keys go into the base experiment, so the parent run's base.* params show the
    # study's network (Table 5: enhance=none), not the preset's; rows add their own keys on top.
    return run_tune(study_name=study.name, title=study.title, opts=opts, param_space=space, common=study.common,
                    tune_config_kwargs={}, after=after, trials=len(rows) * opts.seeds,
                    parent_params={"study.rows": ",".join(rows), "study.seeds": opts.seeds,
                                   "study.preset": opts.preset})
