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

from pathlib import Path
from typing import Any

import pandas as pd

from tdrl.config.base import ConfigError
from tdrl.study.search_report import log_search_report
from tdrl.study.search_space import search_space, td_block_choices  # noqa: F401 (re-exported)
from tdrl.study import tables as T
from tdrl.study.definitions import PEM, TD, TIM_BASELINE
from tdrl.study.runner import METRIC, StudyOptions, StudyResult, run_tune

NAME = "search"
TITLE = "Optuna TPE search: TD lambda, TD channel ratio, PEM and TD-loss positions, TD blocks, memory init"
COMMON: dict[str, Any] = {**TIM_BASELINE, **PEM, **TD}  # the full TDRL network


def results_frame(result: StudyResult) -> pd.DataFrame:
    """One line per trial: searched values, last ``val_top1``/``val_top5``, epochs run; best first."""
    lines = []
    for r in result.result_grid:
        m = r.metrics or {}
        line = {"trial": (m.get("trial_id") or Path(str(r.path)).name)}
        line.update({k: v for k, v in (r.config or {}).items() if "." in k})
        line.update({"seed": (r.config or {}).get("seed"), "val_top1": m.get(METRIC), "val_top5": m.get("val_top5"),
                     "epochs": (m.get("epoch", -1) + 1) if m else 0, "error": r.error is not None})
        lines.append(line)
    df = pd.DataFrame(lines)
    return df.sort_values("val_top1", ascending=False, na_position="last").reset_index(drop=True) if len(df) else df


def log_results(df: pd.DataFrame, out: Path, name: str, uri: str, parent_run_id: str) -> Path:
    """Write ``search.csv`` and ``search.md`` (printed) to ``out`` and log them on the parent run under
    ``tables/``, with the best trial's ``best_val_top1`` metric and ``best.<key>`` tags of its searched
    values (``df`` best first, as :func:`results_frame` gives it). Returns the Markdown file."""
    from tdrl.train.tracking import log_artifacts, mlflow_client, set_tags, with_retry

    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "search.csv", index=False)
    md = out / "search.md"
    md.write_text(f"**{TITLE}** — {name}\n\n" + T.frame_markdown(df) + "\n")
    print(md.read_text())
    log_artifacts(uri, parent_run_id, [out / "search.csv", md], artifact_path="tables")
    if len(df) and pd.notna(df.loc[0, "val_top1"]):
        best = float(df.loc[0, "val_top1"])
        with_retry(lambda: mlflow_client(uri).log_metric(parent_run_id, "best_val_top1", best), uri)
        set_tags(uri, parent_run_id, {f"best.{k}": v for k, v in df.iloc[0].items()
                                      if isinstance(k, str) and k.startswith("model.")})
    return md


def run_search(opts: StudyOptions, *, samples: int = 16, asha: bool = False, grace_period: int = 1,
               search_seed: int = 0) -> StudyResult:
    """Run (or resume) the search: ``samples`` trials, each trained with seed ``opts.seeds - 1``."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tdrl.train.presets import get_preset

    if samples < 1:
        raise ConfigError(f"--samples={samples} must be >= 1")
    base = get_preset(opts.preset).experiment().override({**COMMON, **opts.overrides})
    epochs = base.train.epochs
    kwargs: dict[str, Any] = {"metric": METRIC, "mode": "max", "num_samples": samples,
                              "search_alg": OptunaSearch(seed=search_seed)}
    if asha:
        kwargs["scheduler"] = ASHAScheduler(time_attr="epoch", max_t=max(epochs - 1, 1),
                                            grace_period=min(grace_period, max(epochs - 1, 1)), reduction_factor=2)
    space = {**search_space(base.model.backbone), "seed": 0}
    from tdrl.study.runner import check_study_data

    check_study_data(opts, COMMON)  # before Ray starts: no trial fails on missing data

    def after(res: StudyResult) -> pd.DataFrame:
        df = results_frame(res)
        out = Path(opts.tables_out or Path("runs/tables").resolve() / res.name)
        log_results(df, out, res.name, res.mlflow_uri, res.parent_run_id)
        log_search_report(res.mlflow_uri, res.experiment, res.parent_run_id, out, caption=res.name)
        return df

    return run_tune(study_name=NAME, title=TITLE, opts=opts, param_space=space, common=COMMON,
                    tune_config_kwargs=kwargs, after=after, trials=samples,
                    parent_params={"search.samples": samples, "search.asha": asha, "search.seed": search_seed,
                                   "study.preset": opts.preset})


def add_arguments(p) -> None:
    """``tdrl search``'s options (the study options, less ``--seeds`` and ``--rows``)."""
    from tdrl.study.cli import add_common_arguments

    add_common_arguments(p)
    p.add_argument("--samples", type=int, default=16, help="number of trials")
    p.add_argument("--asha", action="store_true", help="stop weak trials early (ASHA on the epoch)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    p.add_argument("--search-seed", type=int, default=0, help="Optuna sampler seed")


def run(args) -> int:
    from tdrl.study.cli import finish, parse_set

    opts = StudyOptions(preset=args.preset, data=args.data, seeds=1, name=args.name or f"search-{args.preset}",
                        storage=args.storage, mlflow_uri=args.mlflow_uri, overrides=parse_set(args.set),
                        max_concurrent=args.max_concurrent, tables_out=args.tables_out)
    if args.plan:  # print what would run, start nothing
        from tdrl.study.plan import print_plan, search_plan

        return print_plan(search_plan(opts, args.samples, cluster=args.cluster, gpu_hour_price=args.gpu_hour_price,
                                      clips_per_s=args.clips_per_s))
    result = run_search(opts, samples=args.samples, asha=args.asha, grace_period=args.grace_period,
                        search_seed=args.search_seed)
    return finish(result, "search")


def main(argv: list[str] | None = None) -> int:
    """``studies/search.py``: the same as ``tdrl search ...``."""
    import sys

    from tdrl.cli import main as tdrl_main

    return tdrl_main(["search", *(sys.argv[1:] if argv is None else argv)])
