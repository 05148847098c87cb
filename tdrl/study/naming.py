"""The names a study run gives what it creates, in one place (runner, tables, planner and search read them).

- MLflow experiment: one per study, ``<prefix>-<study>`` (``tdrl-table5``, ``tdrl-search``).
- Study run: ``--name``, else ``<study>-<preset>`` (``table5-smoke``): the Tune experiment's folder
  under the storage path and the parent MLflow run's name; the same name resumes.
- Trial: ``<study run>.<row>.s<seed>.<Tune trial id>``, the Ray Train run's folder and the MLflow
  run's ``tdrl.run_name`` tag, by which a resumed trial finds its run; the Tune id keeps two trials
  of one row and seed apart (a search's trials all have row ``search``).
- What people read: a trial's MLflow run name is its row label and seed (``+50% TDLoss · seed 0``),
  a search trial's its sampled values.
- Table files: ``--tables-out``, else ``<cwd>/runs/tables/<study run>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

EXPERIMENT_PREFIX = "tdrl"
TABLES_DIR = "runs/tables"  # relative to the current folder


def experiment_name(study: str, prefix: str = EXPERIMENT_PREFIX) -> str:
    """The study's MLflow experiment: ``tdrl-table5``."""
    return f"{prefix}-{study}"


def study_run_name(study: str, preset: str, name: str | None = None) -> str:
    """``name``, else ``<study>-<preset>``."""
    return name or f"{study}-{preset}"


def trial_prefix(study_run: str, row: str, seed: int) -> str:
    """What a trial's name is before Tune gives the trial its id: ``table5-smoke.ratio50.s0``."""
    return f"{study_run}.{row}.s{seed}"


def trial_name(prefix: str, trial_id: str) -> str:
    """The trial's Ray Train run name and MLflow ``tdrl.run_name``: ``<prefix>.<Tune trial id>``."""
    return f"{prefix}.{trial_id}"


# What a sampled key reads as in a run name (a search's trials have no row label).
SAMPLED_LABELS = {"model.td_lambda": "λ {:.1e}", "model.td_ratio": "ratio {:g}", "model.enhance_position": "PEM {}",
                  "model.td_position": "TD {}", "model.td_blocks": "at {}", "model.mem_init": "m0 {}"}


def sampled_label(sampled: Mapping[str, Any], shown: Mapping[str, Mapping[Any, str]] | None = None) -> str:
    """A search's sampled values as people read them: ``λ 2.0e-04, ratio 0.5, PEM after, TD after, m0
    last``; ``shown`` gives a key's values a shorter name (``{"model.td_blocks": {"layer4.-1": "s4"}}``)."""
    shown = shown or {}
    return ", ".join(fmt.format(shown.get(k, {}).get(sampled[k], sampled[k]))
                     for k, fmt in SAMPLED_LABELS.items() if k in sampled)


def trial_label(row_label: str | None, sampled: Mapping[str, Any], seed: int) -> str:
    """The MLflow run name people read, as the table does: ``+50% TDLoss · seed 0``; a search trial
    by its sampled values (``λ 2.0e-04, ratio 0.5, PEM after, TD after, m0 last · seed 0``)."""
    if row_label is None:
        row_label = sampled_label(sampled)
    return f"{row_label or 'trial'} · seed {seed}"


def tables_dir(study_run: str, out: str | None = None) -> Path:
    """Where a study run's table files go: ``out``, else ``<cwd>/runs/tables/<study run>``."""
    return Path(out) if out else Path(TABLES_DIR).resolve() / study_run
