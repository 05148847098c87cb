"""What a finished search learned: parameter importances and four figures, rebuilt from its MLflow runs.

The search's own state lives in the Tune experiment (Optuna's sampler inside ``OptunaSearch``); what
outlives it, and what a cluster run leaves behind, is the MLflow store: one FINISHED child run per
trial, with the flat configuration as params and the last epoch's ``val_top1``. So this module reads
the trials back from MLflow and rebuilds an Optuna study from them (each trial added with
``optuna.trial.create_trial`` in the order the trials started, over the distributions of
:func:`tdrl.study.search.search_space`), and asks Optuna:

- parameter importances by **fANOVA** (``FanovaImportanceEvaluator``, random-forest based, seeded so
  two reports agree): the share of the variance of the trials' scores that each parameter explains.
  With a few dozen trials each trained once, part of that variance is seed noise: importances say
  what varied with the scores in this search, not what a parameter is worth. Each importance is
  set beside the 95th percentile of the importances fANOVA gives the same trials with their scores
  shuffled among them (:func:`null_importances`): importances always sum to 1 and some parameter
  always leads, so only one above that level says the scores depended on it;
- figures (Optuna's matplotlib plots): the optimisation history, the importances, parallel
  coordinates and one slice panel per parameter.

Trials stopped early by ASHA (KILLED, ``tdrl.stopped_early``) or failed are left out: their last
score is from fewer epochs and would read as a bad configuration.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from tdrl.study.search_space import optuna_distributions, td_block_choices
from tdrl.train.tracking import child_runs, log_artifacts, mlflow_client, with_retry

EVALUATOR = "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0)"
FIGURES = ("history", "importances", "parallel", "slice")
NULL_PERMUTATIONS = 20  # shuffled-score fANOVA runs behind each importance's noise level (seconds each)


def finished_trials(runs: pd.DataFrame, keys: list[str], metric: str = "val_top1") -> pd.DataFrame:
    """One line per FINISHED trial run with a score: ``run_id``, ``start_time``, the searched ``keys``
    (as MLflow stores them: strings) and ``value``; in the order the trials started."""
    cols = ["run_id", "start_time", *keys, "value"]
    if runs is None or runs.empty or f"metrics.{metric}" not in runs.columns:
        return pd.DataFrame(columns=cols)
    done = runs[(runs["status"] == "FINISHED") & runs[f"metrics.{metric}"].notna()]
    missing = [k for k in keys if f"params.{k}" not in done.columns]
    if missing:
        raise ValueError(f"the search's runs have no param(s) {', '.join(missing)}: not runs of this search space")
    out = pd.DataFrame({"run_id": done["run_id"], "start_time": done["start_time"],
                        **{k: done[f"params.{k}"] for k in keys}, "value": done[f"metrics.{metric}"].astype(float)})
    return out.sort_values("start_time", kind="stable").reset_index(drop=True)


def typed_value(value: str, dist: Any) -> Any:
    """An MLflow param string back as the distribution's value type."""
    from optuna.distributions import CategoricalDistribution, IntDistribution  # optuna: seconds, off `tdrl tables --help`

    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if str(choice) == value:
                return choice
        raise ValueError(f"{value!r} is not one of the search's choices {list(dist.choices)}")
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def short(key: str) -> str:
    """A searched key as the figures show it: ``model.td_lambda`` -> ``td_lambda``."""
    return key.split(".", 1)[-1]


def optuna_study(trials: pd.DataFrame, distributions: Mapping[str, Any],
                 labels: Mapping[str, Mapping[str, str]] | None = None):
    """An in-memory Optuna study (maximise) holding ``trials`` as completed trials, numbered in order.

    Parameters are named without their section (``td_lambda``) and categorical values may be shown
    by a label (``labels["model.td_blocks"]["layer4.-1"] == "s4"``), so the figures stay legible."""
    # optuna takes seconds to import: kept off the path of `tdrl tables --help` and the grid tables
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    labels = labels or {}

    def shown(key: str, value: Any) -> Any:
        return labels.get(key, {}).get(value, value)

    dists = {short(k): (CategoricalDistribution([shown(k, c) for c in d.choices]) if k in labels else d)
             for k, d in distributions.items()}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _, t in trials.iterrows():
        params = {short(k): shown(k, typed_value(str(t[k]), d)) for k, d in distributions.items()}
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=float(t["value"]), params=params,
                                     distributions=dists, user_attrs={"run_id": t["run_id"]}))
    return study


def importances(study) -> dict[str, float]:
    """fANOVA importances (sum to 1), largest first."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances  # optuna: seconds to import

    return dict(get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)))


def save_figures(study, out_dir: Path, title: str = "") -> dict[str, Path]:
    """``search_<figure>.png`` for each of :data:`FIGURES`; returns the paths."""
    # matplotlib and optuna's plots: seconds to import, needed only when figures are drawn
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # after use("Agg"): no display on a cluster node
    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as ov

    plots = {"history": lambda: ov.plot_optimization_history(study),
             "importances": lambda: ov.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)),
             "parallel": lambda: ov.plot_parallel_coordinate(study),
             "slice": lambda: ov.plot_slice(study)}
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna marks its matplotlib plots experimental
        for name, plot in plots.items():
            axes = plot()
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            fig = first.figure
            if title:
                fig.suptitle(title, fontsize=9)
            if name == "slice":
                fig.set_size_inches(max(12.0, 3.2 * len(study.best_params)), 4.0)
            elif name == "parallel":
                fig.set_size_inches(12.0, 5.0)
            paths[name] = out_dir / f"search_{name}.png"
            fig.savefig(paths[name], dpi=110, bbox_inches="tight")  # not tight_layout: the colour bar's axes
            plt.close(fig)
    return paths


def null_importances(trials: pd.DataFrame, distributions: Mapping[str, Any], permutations: int = NULL_PERMUTATIONS,
                     seed: int = 0) -> pd.DataFrame:
    """Importances of the same trials with their scores shuffled among them (``permutations`` times,
    seeded): what fANOVA attributes to each parameter when the score depends on none. Over a few
    dozen trials, importances always sum to 1 and some parameter always leads, so a measured
    importance means something only above this; one line per permutation, a column per flat key."""
    rng = np.random.default_rng(seed)
    full = {short(k): k for k in distributions}
    out = []
    for _ in range(permutations):
        shuffled = trials.assign(value=rng.permutation(trials["value"].to_numpy()))
        out.append({full[k]: v for k, v in importances(optuna_study(shuffled, distributions)).items()})
    return pd.DataFrame(out, columns=list(distributions))


def importance_frame(values: Mapping[str, float], null: pd.DataFrame) -> pd.DataFrame:
    """Each parameter's importance beside the 95th percentile of its shuffled-score importances, and
    whether it lies above it."""
    q95 = {k: float(null[k].quantile(0.95)) for k in values}
    return pd.DataFrame({"parameter": list(values), "importance": list(values.values()),
                         "null_q95": [q95[k] for k in values], "above_null": [values[k] > q95[k] for k in values]})


def importance_markdown(frame: pd.DataFrame, n_trials: int, permutations: int, caption: str = "") -> str:
    head = f"**What the search's scores varied with: parameter importances** — {caption}" if caption else \
        "**What the search's scores varied with: parameter importances**"
    lines = [head, "", "| parameter | importance | 95% with scores shuffled | above it |", "|---|---:|---:|---|"]
    lines += [f"| {t.parameter} | {t.importance:.3f} | {t.null_q95:.3f} | {'yes' if t.above_null else 'no'} |"
              for t in frame.itertuples()]
    lines += ["", f"{EVALUATOR} over {n_trials} finished trials (each trained once, seed 0); importances sum "
                  f"to 1 and include seed-to-seed noise. Shuffled: the same trials with their scores permuted "
                  f"among them ({permutations} times, seeded), i.e. what fANOVA reports when the score depends on "
                  f"no parameter; an importance below its 95th percentile is indistinguishable from that."]
    return "\n".join(lines) + "\n"


def report_search(runs: pd.DataFrame, distributions: Mapping[str, Any], out_dir: str | Path,
                  caption: str = "", labels: Mapping[str, Mapping[str, str]] | None = None
                  ) -> tuple[dict[str, float], dict[str, Path]]:
    """Importances and figures of a search from its child runs (``tracking.child_runs``): writes
    ``search_importance.md``/``.csv`` and the PNGs to ``out_dir``; returns ``(importances, paths)``,
    the importances keyed by the flat keys (``model.td_lambda``). Fewer than two finished trials give
    no importances (and no files but the Markdown saying so). ``labels``: see :func:`optuna_study`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = finished_trials(runs, list(distributions))
    md = out / "search_importance.md"
    if len(trials) < 2:
        md.write_text(f"{len(trials)} finished trial(s): too few for parameter importances.\n")
        return {}, {"importance_md": md}
    study = optuna_study(trials, distributions, labels)
    full = {short(k): k for k in distributions}
    values = {full[k]: v for k, v in importances(study).items()}
    frame = importance_frame(values, null_importances(trials, distributions))
    frame.to_csv(out / "search_importance.csv", index=False)
    md.write_text(importance_markdown(frame, len(trials), NULL_PERMUTATIONS, caption))
    paths = {"importance_md": md, "importance_csv": out / "search_importance.csv",
             **save_figures(study, out, title=caption)}
    return values, paths


def importance_metrics(values: Mapping[str, float]) -> dict[str, float]:
    """``importance.<key>`` metrics for the parent run (NaN left out)."""
    return {f"importance.{k}": float(v) for k, v in values.items() if not math.isnan(v)}


def ranked_trials(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The search's finished trials best first: trial id, the searched values, ``val_top1``."""
    trials = finished_trials(runs, keys)
    ids = runs.set_index("run_id").get("tags.tdrl.trial") if runs is not None and not runs.empty else None
    trials.insert(0, "trial", [ids.get(r, r) if ids is not None else r for r in trials["run_id"]])
    out = trials.drop(columns=["run_id", "start_time"]).rename(columns={"value": "val_top1"})
    return out.sort_values("val_top1", ascending=False, kind="stable").reset_index(drop=True)


def search_backbone(runs: pd.DataFrame, default: str = "resnet18") -> str:
    """The backbone the search's trials trained (its block choices depend on it)."""
    col = "params.model.backbone"
    if runs is None or runs.empty or col not in runs.columns or runs[col].dropna().empty:
        return default
    return str(runs[col].dropna().iloc[0])


def log_search_report(uri: str, experiment: str, parent_run_id: str, out: str | Path, caption: str = "",
                      log: bool = True) -> dict[str, Path]:
    """:func:`report_search` of the search under ``parent_run_id``, printed, and (``log``) logged on
    the parent run: the files under ``search/``, the importances as ``importance.<key>`` metrics."""
    runs = child_runs(uri, experiment, parent_run_id)
    backbone = search_backbone(runs)
    blocks = {value: label for label, value in td_block_choices(backbone).items()}
    values, paths = report_search(runs, optuna_distributions(backbone), out, caption=caption,
                                  labels={"model.td_blocks": blocks})
    print(paths["importance_md"].read_text())
    if log:
        log_artifacts(uri, parent_run_id, paths.values(), artifact_path="search")
        for key, value in importance_metrics(values).items():
            with_retry(lambda: mlflow_client(uri).log_metric(parent_run_id, key, value), uri)
    return paths
