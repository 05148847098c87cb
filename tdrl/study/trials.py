"""A study resolved once: the trial list that ``--plan``, the Tune run, sharing, the parent run and the
tables read.

:func:`resolve_study` turns a :class:`~tdrl.study.definitions.Study` (a paper table, the search, or
one built at run time) and the command line's options into :class:`StudyTrials`: for each row and
seed the complete flat experiment the trial trains, its name, its row label and its sharing hash,
plus the study's own experiment (the parent run's ``base.*`` params). Nothing else in tdrl layers a
study's configurations.

Precedence, lowest first::

    preset < the study's common keys < the row's keys (a search: the values it samples)
           < --data < --set < what the study run sets per trial

The last layer is ``train.seed`` (``--seeds``), ``train.name`` (the trial's name),
``train.storage_path`` (``--storage-path``), ``train.mlflow_uri`` (``--mlflow-uri``),
``train.experiment`` (the study's experiment), and ``train.progress=none`` unless ``--set`` names it.

``--set`` (or ``--data``) of a key the study fixes (its common keys, any of its rows' keys, the
search's sampled keys) or sets per trial is refused before anything starts, naming the key, the
study and the rows that set it. A study is the table it names, printed beside the paper's numbers
and shared run for run with the other tables (Table 4's "+TDLoss" is Table 5's 50 %); a ``--set``
that silently lost to a row made a table measure something else (every trial of ``table5 --set
model.td_lambda=1e-3`` trained with 2e-4), and one that won would make it a different table under
the same title. Everything else (data, schedule, backbone, workers) can be set, and the trial trains
exactly what the parent run records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from tdrl.config.base import ConfigError
from tdrl.config.experiment import Experiment
from tdrl.config.paths import absolute, is_uri, join
from tdrl.study.definitions import Study
from tdrl.study.naming import (EXPERIMENT_PREFIX, experiment_name, study_run_name, trial_label, trial_name,
                               trial_prefix)
from tdrl.study.sharing import config_hash
from tdrl.train.presets import DEFAULT_PRESET, get_preset
from tdrl.train.tracking import (CONFIG_HASH_TAG, PRESET_TAG, ROLE_TAG, ROW_LABEL_TAG, ROW_TAG, SEED_TAG, STUDY_RUN_TAG,
                                 STUDY_TAG, TABLE_TAG, TRIAL_TAG, tracking_uri)
from tdrl.train.trainer import resolve

# Keys the study run sets for every trial, and what sets each instead of --set.
RUN_KEYS = {"train.seed": "use --seeds", "train.name": "use --name (the study run's name)",
            "train.storage_path": "use --storage-path", "train.mlflow_uri": "use --mlflow-uri",
            "train.experiment": "its MLflow experiment is <prefix>-<study>, e.g. tdrl-table5"}


@dataclass
class StudyOptions:
    """What a study script's command line sets (see :mod:`tdrl.study.cli`)."""

    preset: str = DEFAULT_PRESET
    data: str | None = None  # data.root
    seeds: int = 1
    first_seed: int = 0  # seeds are first_seed .. first_seed + seeds - 1 (a confirmation skips the search's seed 0)
    name: str | None = None  # study run name; default "<study>-<preset>"
    storage: str | None = None  # default $TDRL_STORAGE, else ./runs/studies
    mlflow_uri: str | None = None  # default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    rows: tuple[str, ...] = ()  # a subset of the study's rows
    overrides: dict[str, Any] = field(default_factory=dict)  # extra flat keys, e.g. train.epochs=1
    max_concurrent: int | None = None
    experiment_prefix: str = EXPERIMENT_PREFIX
    tables_out: str | None = None  # where `tdrl tables` files go; default <cwd>/runs/tables/<study run>
    verbose: int = 1  # Tune's console verbosity


@dataclass(frozen=True)
class Trial:
    """One row x seed of a study, resolved."""

    row: str  # row key ("search" for a search's trials)
    seed: int
    prefix: str  # the name before Tune's trial id: <study run>.<row>.s<seed> (tdrl.study.naming)
    flat: Mapping[str, Any]  # the complete flat experiment it trains; train.name is the prefix until the id is known
    label: str  # the row label (tdrl.row_label tag)
    display: str  # the MLflow run name people read ("+50% TDLoss · seed 0")
    config_hash: str  # what decides its result (tdrl.study.sharing): finished runs with it are shared

    def experiment(self, trial_id: str) -> Experiment:
        """What the Tune trial with id ``trial_id`` trains: the flat experiment under its full name."""
        return Experiment.from_flat({**self.flat, "train.name": trial_name(self.prefix, trial_id)})


@dataclass(frozen=True)
class StudyTrials:
    """A study run's trials and what they share: the list every part of a study run reads."""

    study: Study
    options: StudyOptions
    rows: tuple[str, ...]  # row keys run, in order
    sampled: tuple[str, ...]  # keys a search samples per trial (its trials are templates); none for a grid
    study_run: str
    experiment: str  # MLflow experiment
    storage: str  # absolute folder or URI of the Tune experiments
    mlflow_uri: str
    base: Experiment  # preset < common < --data < --set < run keys, no row: the parent's base.* params
    trials: tuple[Trial, ...]

    @property
    def preset(self) -> str:
        return self.options.preset

    @property
    def seeds(self) -> list[int]:
        """The seeds each row trains, in order."""
        return list(range(self.options.first_seed, self.options.first_seed + self.options.seeds))

    @property
    def study_dir(self) -> str:
        """The Tune experiment's folder: ``<storage>/<study run>``."""
        return join(self.storage, self.study_run)

    def parent_params(self) -> dict[str, Any]:
        """The parent run's params: the rows and seeds a grid runs, the preset, and ``base.<key>``."""
        grid = {} if self.sampled else {"study.rows": ",".join(self.rows), "study.seeds": self.options.seeds}
        if self.options.first_seed:  # only when set: the params of studies from seed 0 stay as they were
            grid["study.first_seed"] = self.options.first_seed
        return {**grid, "study.preset": self.preset, **{f"base.{k}": v for k, v in self.base.flatten().items()}}

    def trial_for(self, config: Mapping[str, Any]) -> Trial:
        """The trial a Tune config stands for: a grid's by its ``row`` and ``seed``; a search's is the
        template of its seed with the sampled values layered in (validated, hashed and labelled)."""
        seed = int(config.get("seed", 0))
        row = str(config.get("row", self.rows[0]))
        trial = next((t for t in self.trials if t.row == row and t.seed == seed), None)
        if trial is None:
            raise KeyError(f"study run {self.study_run} has no trial of row {row!r} and seed {seed}")
        if not self.sampled:
            return trial
        values = {k: config[k] for k in self.sampled if k in config}
        flat = Experiment.from_flat({**trial.flat, **values}).flatten()
        return replace(trial, flat=flat, display=trial_label(None, values, seed), config_hash=config_hash(flat))

    def trial_tags(self, trial: Trial, trial_id: str) -> dict[str, str]:
        """The MLflow tags of a trial's run (names in :mod:`tdrl.train.tracking`). A search's trials are
        tagged with the search's name as their table (what stores of earlier searches hold)."""
        return {STUDY_TAG: self.study.name, STUDY_RUN_TAG: self.study_run, ROLE_TAG: "trial", ROW_TAG: trial.row,
                SEED_TAG: str(trial.seed), TRIAL_TAG: trial_id,
                TABLE_TAG: self.study.name if self.sampled else self.study.title, ROW_LABEL_TAG: trial.label,
                CONFIG_HASH_TAG: trial.config_hash, PRESET_TAG: self.preset}

    def with_hashes(self) -> StudyTrials:
        """The same trials hashed again: a synthetic set is hashed by the parameters its marker holds,
        so the hashes change when the set is generated after resolving (:func:`tdrl.study.runner.prepare_study_data`)."""
        return replace(self, trials=tuple(replace(t, config_hash=config_hash(t.flat)) for t in self.trials))


def default_storage() -> str:
    """``$TDRL_STORAGE``, else ``./runs/studies`` (absolute)."""
    env = os.environ.get("TDRL_STORAGE")
    return env if env else str(Path("runs/studies").resolve())


def storage_of(opts: StudyOptions) -> str:
    """Where the study runs of ``opts`` keep their Tune experiments: an absolute folder or a URI."""
    storage = opts.storage or default_storage()
    return storage if is_uri(storage) else absolute(storage)


def resolve_study(study: Study, opts: StudyOptions, *, sampled: Sequence[str] = ()) -> StudyTrials:
    """The study's trials under ``opts`` (the module docstring's precedence), validated: an unknown
    row, a bad seed count, a key ``--set`` may not change or a value a configuration refuses raises
    ConfigError before anything starts. ``sampled`` names the keys a search samples (its trials are
    then one template per seed). Reads no file but a synthetic set's marker (for the hash); writes none."""
    preset = get_preset(opts.preset)
    rows = _check_rows(study, opts)
    if opts.seeds < 1:
        raise ConfigError(f"--seeds={opts.seeds} must be >= 1")
    if opts.first_seed < 0:
        raise ConfigError(f"the first seed ({opts.first_seed}) must be >= 0")
    user = {**({"data.root": opts.data} if opts.data else {}), **opts.overrides}
    _refuse_fixed(study, opts, sampled)
    study_run = study_run_name(study.name, opts.preset, opts.name)
    experiment = experiment_name(study.name, opts.experiment_prefix)
    storage = storage_of(opts)
    uri = tracking_uri(opts.mlflow_uri)
    run = {"train.storage_path": join(storage, study_run, "train"), "train.mlflow_uri": uri,
           "train.experiment": experiment, "train.progress": "none"}  # many trials side by side: Tune's table is the progress

    def layered(row: Mapping[str, Any], per_trial: Mapping[str, Any]) -> Experiment:
        return resolve(preset.experiment().override({**study.common, **row, **run, **user, **per_trial}))

    base = layered({}, {"train.name": study_run})
    trials = []
    for key in rows:
        row = study.row(key)
        for seed in range(opts.first_seed, opts.first_seed + opts.seeds):
            prefix = trial_prefix(study_run, key, seed)
            flat = layered(row.overrides, {"train.seed": seed, "train.name": prefix}).flatten()
            trials.append(Trial(key, seed, prefix, flat, row.label,
                                trial_label(None if sampled else row.label, {}, seed), config_hash(flat)))
    return StudyTrials(study, opts, tuple(rows), tuple(sampled), study_run, experiment, storage, uri, base,
                       tuple(trials))


def _check_rows(study: Study, opts: StudyOptions) -> list[str]:
    rows = list(opts.rows) or [r.key for r in study.rows]
    unknown = [r for r in rows if r not in {x.key for x in study.rows}]
    if unknown:
        raise ConfigError(f"--rows: study {study.name} has no row {', '.join(map(repr, unknown))}; rows: "
                          f"{', '.join(x.key for x in study.rows)}")
    return rows


def _refuse_fixed(study: Study, opts: StudyOptions, sampled: Sequence[str]) -> None:
    """Refuse a ``--data``/``--set`` of a key the study fixes or the study run sets per trial."""
    given = [("--data", "data.root", opts.data)] if opts.data else []
    given += [(f"--set {k}={v}", k, v) for k, v in opts.overrides.items()]
    for option, key, value in given:
        if key in RUN_KEYS:
            raise ConfigError(f"{option}: a study sets {key} for every trial; {RUN_KEYS[key]}")
        if key in sampled:
            raise ConfigError(f"{option}: study {study.name} samples {key} for every trial; set only keys it "
                              f"does not search, or train one value with `tdrl train --preset {opts.preset} --set {key}={value}`")
        setting = [r.key for r in study.rows if key in study.common or key in r.overrides]
        if setting:
            fixed = f"its common value {study.common[key]!r}" if key in study.common else "their own values"
            raise ConfigError(
                f"{option}: study {study.name} fixes {key} in row(s) {', '.join(setting)} ({fixed}); a study "
                f"measures its rows as defined, beside the paper's numbers and shared with the other studies. "
                f"Pick rows with --rows, or train another {key} with `tdrl train --preset {opts.preset} --set {key}={value}`")
