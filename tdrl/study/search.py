"""An Optuna (TPE) search over TDRL's own hyper-parameters on Ray Tune, with optional ASHA stopping.

Searched, on the full TDRL network (TIM + PEM + TD loss): ``model.td_lambda`` (log scale),
``model.td_ratio``, ``model.enhance_position`` (PEM before/after TM), ``model.td_position`` (TD loss
before/after TM), ``model.td_blocks`` (which blocks carry the TD loss: :func:`td_block_choices`) and
``model.mem_init``. The space's keys are flat configuration keys, so a trial's
config is layered over the preset exactly like a table row. Optuna's state is part of the Tune
experiment, so ``Tuner.restore`` (running the command again) continues the same search.
ASHA (``--asha``) stops weak trials early on the reported ``epoch`` (Optuna's pruners do not apply
under Tune); their MLflow runs are marked KILLED with ``tdrl.stopped_early=true``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tdrl.cli import main as tdrl_main
from tdrl.config.base import ConfigError
from tdrl.study.cli import add_common_arguments, finish, options_from_args
from tdrl.study.confirm import resolve_confirm, run_confirm
from tdrl.study.definitions import PEM, TD, TIM_BASELINE, Row, Study
from tdrl.study.naming import tables_dir
from tdrl.study.plan import Plan, plan_trials, print_plan
from tdrl.study.search_report import log_search_report
from tdrl.study.search_space import search_space, td_block_choices  # noqa: F401 (re-exported)
from tdrl.study.tables import frame_markdown
from tdrl.study.trials import StudyOptions, StudyTrials, resolve_study
from tdrl.train.tracking import SCORE, log_artifacts, mlflow_client, set_tags, with_retry

NAME = "search"
TITLE = "Optuna TPE search: TD lambda, TD channel ratio, PEM and TD-loss positions, TD blocks, memory init"
COMMON: dict[str, Any] = {**TIM_BASELINE, **PEM, **TD}  # the full TDRL network
# The search as a study of one row whose trials sample SAMPLED (search_space), so it is resolved,
# named, tagged and shared like a table (tdrl.study.trials); its MLflow experiment is tdrl-search.
SEARCH = Study(name=NAME, title=TITLE, row_header="trial", rows=(Row(NAME, NAME, {}),), common=COMMON,
               baseline=NAME)
SAMPLED = ("model.td_lambda", "model.td_ratio", "model.enhance_position", "model.td_position", "model.td_blocks",
           "model.mem_init")  # the keys of search_space


def resolve_search(opts: StudyOptions) -> StudyTrials:
    """The search's trials under ``opts``: one template (seed 0) that each sampled trial fills in."""
    return resolve_study(SEARCH, opts, sampled=SAMPLED)


def search_plan(opts: StudyOptions, samples: int, **kw: Any) -> Plan:
    """The plan of ``tdrl search``: ``samples`` trials of the full TDRL network, seed 0 (the sampled
    values are unknown before Optuna draws them, so none is looked up; ASHA may stop some early)."""
    if samples < 1:
        raise ConfigError(f"--samples={samples} must be >= 1")
    trials = resolve_search(opts)
    drawn = tuple(replace(trials.trials[0], row=f"sample{i}", label=f"sample {i}") for i in range(samples))
    plan = plan_trials(replace(trials, trials=drawn), lookup=False, **kw)
    plan.notes.append("with --asha, trials stopped early take less: the time and cost are upper bounds")
    return plan


def results_frame(result: Any) -> pd.DataFrame:
    """One line per trial: searched values, last ``val_top1``/``val_top5``, epochs run; best first."""
    lines = []
    for r in result.result_grid:
        m = r.metrics or {}
        line = {"trial": (m.get("trial_id") or Path(str(r.path)).name)}
        line.update({k: v for k, v in (r.config or {}).items() if "." in k})
        line.update({"seed": (r.config or {}).get("seed"), SCORE: m.get(SCORE), "val_top5": m.get("val_top5"),
                     "epochs": (m.get("epoch", -1) + 1) if m else 0, "error": r.error is not None})
        lines.append(line)
    df = pd.DataFrame(lines)
    return df.sort_values(SCORE, ascending=False, na_position="last").reset_index(drop=True) if len(df) else df


def log_results(df: pd.DataFrame, out: Path, name: str, uri: str, parent_run_id: str) -> Path:
    """Write ``search.csv`` and ``search.md`` (printed) to ``out`` and log them on the parent run under
    ``tables/``, with the best trial's ``best_val_top1`` metric and ``best.<key>`` tags of its searched
    values (``df`` best first, as :func:`results_frame` gives it). Returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "search.csv", index=False)
    md = out / "search.md"
    md.write_text(f"**{TITLE}** — {name}\n\n" + frame_markdown(df) + "\n")
    print(md.read_text())
    log_artifacts(uri, parent_run_id, [out / "search.csv", md], artifact_path="tables")
    if len(df) and pd.notna(df.loc[0, SCORE]):
        best = float(df.loc[0, SCORE])
        with_retry(lambda: mlflow_client(uri).log_metric(parent_run_id, f"best_{SCORE}", best), uri)
        set_tags(uri, parent_run_id, {f"best.{k}": v for k, v in df.iloc[0].items()
                                      if isinstance(k, str) and k.startswith("model.")})
    return md


def run_search(opts: StudyOptions, *, samples: int = 16, asha: bool = False, grace_period: int = 1,
               search_seed: int = 0) -> Any:
    """Run (or resume) the search: ``samples`` trials, each trained with seed 0; a StudyResult."""
    # Ray Tune and Optuna: seconds to import, not on the path of `tdrl search --help` or --plan
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tdrl.study.runner import StudyResult, prepare_study_data, run_tune

    if samples < 1:
        raise ConfigError(f"--samples={samples} must be >= 1")
    trials = prepare_study_data(resolve_search(opts))  # refused before Ray starts: no trial fails on it
    epochs = trials.base.train.epochs
    kwargs: dict[str, Any] = {"metric": SCORE, "mode": "max", "num_samples": samples,
                              "search_alg": OptunaSearch(seed=search_seed)}
    if asha:
        kwargs["scheduler"] = ASHAScheduler(time_attr="epoch", max_t=max(epochs - 1, 1),
                                            grace_period=min(grace_period, max(epochs - 1, 1)), reduction_factor=2)
    space = {**search_space(trials.base.model.backbone), "seed": 0}

    def after(res: StudyResult) -> pd.DataFrame:
        df = results_frame(res)
        out = tables_dir(res.name, opts.tables_out)
        log_results(df, out, res.name, res.mlflow_uri, res.parent_run_id)
        log_search_report(res.mlflow_uri, res.experiment, res.parent_run_id, out, caption=res.name)
        return df

    return run_tune(trials, param_space=space, count=samples, tune_config_kwargs=kwargs, after=after,
                    parent_params={"search.samples": samples, "search.asha": asha, "search.seed": search_seed})


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``tdrl search``'s options (the study options, less ``--rows``; ``--seeds`` is the confirmation's)."""
    add_common_arguments(p)
    p.add_argument("--samples", type=int, default=16, help="number of trials")
    p.add_argument("--confirm", type=int, default=None, metavar="K",
                   help="instead of searching: re-train the search --name's top K finished configurations with "
                        "--seeds fresh seeds (1..S; the search trains seed 0) beside the TIM baseline, and tabulate "
                        "them (confirm.md: search score beside confirmed mean, paired difference, p, Holm's p)")
    p.add_argument("--seeds", type=int, default=5, help="with --confirm: seeds per configuration (default 5)")
    p.add_argument("--asha", action="store_true", help="stop weak trials early (ASHA on the epoch)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    p.add_argument("--search-seed", type=int, default=0, help="Optuna sampler seed")


def run(args: argparse.Namespace) -> int:
    opts = options_from_args(args, name=args.name or f"search-{args.preset}", seeds=1)
    if args.confirm is not None:  # the search named by --name is read, not run
        if args.plan:
            trials, _, _ = resolve_confirm(opts, opts.name, args.confirm, args.seeds)
            return print_plan(plan_trials(trials, cluster=args.cluster, gpu_hour_price=args.gpu_hour_price,
                                          clips_per_s=args.clips_per_s))
        return finish(run_confirm(opts, opts.name, args.confirm, args.seeds), "confirmation")
    if args.plan:  # print what would run, start nothing
        return print_plan(search_plan(opts, args.samples, cluster=args.cluster, gpu_hour_price=args.gpu_hour_price,
                                      clips_per_s=args.clips_per_s))
    result = run_search(opts, samples=args.samples, asha=args.asha, grace_period=args.grace_period,
                        search_seed=args.search_seed)
    return finish(result, "search")


def main(argv: list[str] | None = None) -> int:
    """``studies/search.py``: the same as ``tdrl search ...``."""
    return tdrl_main(["search", *(sys.argv[1:] if argv is None else argv)])
