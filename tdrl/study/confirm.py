"""Confirming a search's winners with seeds it did not select on (``tdrl search --confirm K``).

The best of a few dozen trials, each trained once, is biased upward by the selection itself (the
winner's curse): with the bench preset's seed-to-seed spread (paired sd 0.5-5 points) the top trial's
score says little on its own. A confirmation re-trains the search's top ``K`` finished configurations
with seeds ``1 .. S`` (every search trial trains seed 0, so none of these seeds took part in the
choice), beside the TIM baseline with the same seeds, as a study of its own built at run time: the
rows are resolved, run, resumed, shared and tabulated like a paper table's (:mod:`tdrl.study.trials`).
A baseline run of the same configuration and seed that already finished in the same MLflow store
(Table 3's TIM rows, say) is shared, not trained again.

Which configurations are confirmed is decided once, when the confirmation starts, and kept in its
study folder (``confirm_candidates.json``): resuming it after the search has grown re-trains the
same rows, not a new top ``K``.

The result is ``confirm.md``/``confirm.csv``: each configuration's search score beside its confirmed
mean, the paired difference to the baseline with its 95 % interval, p and Holm's p over the ``K``
comparisons; and the usual table files (``confirm_<study run>.md``, chart) beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from tdrl.config.base import ConfigError
from tdrl.config.paths import join
from tdrl.study.definitions import PEM, TD, TIM_BASELINE, Row, Study
from tdrl.study.naming import experiment_name, sampled_label, tables_dir
from tdrl.study.search_report import finished_trials, search_backbone, typed_value
from tdrl.study.search_space import optuna_distributions, td_block_choices
from tdrl.study.stats import CONFIDENCE, TEST_NAME, Paired, fmt_difference, fmt_p
from tdrl.study.tables import find_parent_run, fmt_measured, report
from tdrl.study.trials import StudyOptions, StudyTrials, resolve_study, storage_of
from tdrl.train.tracking import child_runs, get_run, log_artifacts, tracking_uri

NAME = "confirm"
FIRST_SEED = 1  # every search trial trains seed 0 (tdrl.study.search): the confirmation's seeds start after it
CANDIDATES_FILE = "confirm_candidates.json"


@dataclass(frozen=True)
class Candidate:
    """One finished search trial chosen for confirmation."""

    rank: int  # 1 = the search's best
    score: float  # its val_top1 in the search (seed 0)
    values: Mapping[str, Any]  # the sampled keys, typed as the search space has them
    label: str  # the values as people read them (λ 1.7e-04, ratio 0.5, ...)
    run_id: str  # its MLflow run in the search


def top_candidates(runs: pd.DataFrame, k: int, backbone: str) -> list[Candidate]:
    """The ``k`` best FINISHED trials of a search (``runs``: its child runs, as
    :func:`tdrl.train.tracking.child_runs` returns them), best first; ties keep the start order."""
    dists = optuna_distributions(backbone)
    done = finished_trials(runs, list(dists))
    if len(done) < k:
        raise ConfigError(f"--confirm {k}: the search has {len(done)} finished trial(s); confirm at most that many, "
                          f"or let the search finish more (run the same search command again to resume it)")
    best = done.sort_values("value", ascending=False, kind="stable").head(k)
    blocks = {value: label for label, value in td_block_choices(backbone).items()}
    out = []
    for rank, (_, t) in enumerate(best.iterrows(), start=1):
        values = {key: typed_value(str(t[key]), d) for key, d in dists.items()}
        out.append(Candidate(rank, float(t["value"]), values, sampled_label(values, {"model.td_blocks": blocks}),
                             str(t["run_id"])))
    return out


def confirm_study(candidates: Sequence[Candidate], search_run: str) -> Study:
    """The confirmation as a study: the TIM baseline and one row per candidate (the full TDRL network
    with the candidate's sampled values), compared with the baseline seed by seed."""
    rows = [Row("baseline", "TIM baseline", {})]
    rows += [Row(f"top{c.rank}", f"#{c.rank} {c.label}", {**PEM, **TD, **c.values}) for c in candidates]
    return Study(name=NAME, title=f"Confirmation of search {search_run}'s top {len(candidates)} with fresh seeds",
                 row_header="configuration", rows=tuple(rows), common=TIM_BASELINE, script="search.py")


def candidates_state(candidates: Sequence[Candidate], search_run: str, finished: int) -> dict[str, Any]:
    """What a confirmation's folder keeps (``confirm_candidates.json``): the rows it re-trains."""
    return {"search_run": search_run, "finished_trials": finished,
            "candidates": [{**c.__dict__, "values": dict(c.values)} for c in candidates]}


def choose_candidates(opts: StudyOptions, search_run: str, k: int) -> tuple[list[Candidate], int]:
    """The top ``k`` of the search run ``search_run`` in the MLflow store of ``opts``, and how many
    trials it had finished. Refuses a search that is absent or ran another preset."""
    uri = tracking_uri(opts.mlflow_uri)
    experiment = experiment_name("search", opts.experiment_prefix)
    parent = find_parent_run(uri, experiment, search_run)
    if parent is None:
        raise ConfigError(f"--confirm: no search run named {search_run!r} in experiment {experiment} at {uri}; "
                          f"give the search's --name (and --mlflow-uri), or run the search first")
    preset = get_run(uri, parent).data.params.get("study.preset")
    if preset is not None and preset != opts.preset:
        raise ConfigError(f"--confirm: search {search_run} ran --preset {preset}, not {opts.preset}: confirm it "
                          f"under the preset it was searched with")
    runs = child_runs(uri, experiment, parent)
    candidates = top_candidates(runs, k, search_backbone(runs))
    return candidates, len(finished_trials(runs, list(candidates[0].values)))


def confirm_options(opts: StudyOptions, search_run: str, seeds: int) -> StudyOptions:
    """The confirmation's study options: the study run ``<search run>-confirm``, seeds
    ``FIRST_SEED .. FIRST_SEED + seeds - 1``, every row."""
    return replace(opts, name=f"{search_run}-confirm", seeds=seeds, first_seed=FIRST_SEED, rows=())


def resolve_confirm(opts: StudyOptions, search_run: str, k: int, seeds: int,
                    saved: Mapping[str, Any] | None = None) -> tuple[StudyTrials, list[Candidate], int]:
    """The confirmation's trials, its candidates and the search's finished trial count: from
    ``saved`` (:func:`candidates_state` of a confirmation that started) when given, else chosen now
    from the search's MLflow runs."""
    if k < 1:
        raise ConfigError(f"--confirm {k} must be >= 1")
    copts = confirm_options(opts, search_run, seeds)
    if saved:
        candidates = [Candidate(**c) for c in saved["candidates"]]
        finished = int(saved["finished_trials"])
        if saved["search_run"] != search_run or len(candidates) != k:
            raise ConfigError(f"confirmation {copts.name} re-trains the top {len(candidates)} of search "
                              f"{saved['search_run']}, not the top {k} of {search_run}: repeat --confirm "
                              f"{len(candidates)} to resume it (its folder {CANDIDATES_FILE} records the rows)")
    else:
        candidates, finished = choose_candidates(copts, search_run, k)
    return resolve_study(confirm_study(candidates, search_run), copts), candidates, finished


def confirm_frame(table: pd.DataFrame, candidates: Sequence[Candidate]) -> pd.DataFrame:
    """One line per row of the confirmation's table (:func:`tdrl.study.tables.build_table`), with the
    search's own score of each candidate beside what the fresh seeds measured."""
    score = {f"top{c.rank}": c.score for c in candidates}
    trial = {f"top{c.rank}": c.run_id for c in candidates}
    out = table[["key", "row", "top1_mean", "top1_std", "n", "diff_n", "diff_mean", "diff_low", "diff_high",
                 "diff_p", "diff_p_holm", "train_top1_mean"]].copy()
    out.insert(2, "search_top1", [score.get(key, float("nan")) for key in out["key"]])
    out["search_run_id"] = [trial.get(key, "") for key in out["key"]]
    return out


def confirm_markdown(frame: pd.DataFrame, *, search_run: str, finished: int, seeds: Sequence[int],
                     caption: str = "") -> str:
    """The confirmation table: search score (one seed, selected) beside the confirmed mean (fresh seeds)."""
    head = ["configuration", "search top-1 (seed 0)", "confirmed top-1", "Δ vs baseline [95% CI]", "p", "p Holm",
            "train top-1", "seeds"]
    lines = [f"**Search {search_run}: its top {len(frame) - 1} of {finished} finished trials, re-trained with "
             f"seeds {seeds[0]}-{seeds[-1]}**" + (f" — {caption}" if caption else ""), "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, t in frame.iterrows():
        base = t["key"] == "baseline"
        diff = Paired(int(t["diff_n"]), t["diff_mean"], t["diff_low"], t["diff_high"], t["diff_p"])
        search = "" if math.isnan(t["search_top1"]) else f"{t['search_top1']:.1f}"
        lines.append("| " + " | ".join([
            str(t["row"]) + (" (baseline)" if base else ""), search, fmt_measured(t["top1_mean"], t["top1_std"]),
            "" if base else fmt_difference(diff), "" if base else fmt_p(t["diff_p"]),
            "" if base else fmt_p(t["diff_p_holm"]), fmt_measured(t["train_top1_mean"], float("nan")),
            str(int(t["n"]))]) + " |")
    lines += ["", f"Search top-1: the trial's last-epoch validation top-1 in the search (seed 0), the best of "
              f"{finished} trials, so biased upward by the choice. Confirmed: mean ± std over seeds the search never "
              f"trained; Δ is paired by seed with the TIM baseline ({CONFIDENCE:.0%} t interval, {TEST_NAME}); p "
              f"Holm adjusts over the {len(frame) - 1} comparisons. * marks an interval that excludes 0."]
    return "\n".join(lines) + "\n"


def write_confirm(frame: pd.DataFrame, out_dir: str | Path, **kw: Any) -> dict[str, Path]:
    """``confirm.md`` and ``confirm.csv`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / "confirm.md", out / "confirm.csv"
    md.write_text(confirm_markdown(frame, **kw))
    frame.to_csv(csv, index=False)
    return {"markdown": md, "csv": csv}


def run_confirm(opts: StudyOptions, search_run: str, k: int, seeds: int) -> Any:
    """Run (or resume) the confirmation of ``search_run``'s top ``k`` with ``seeds`` fresh seeds; a
    :class:`tdrl.study.runner.StudyResult` whose table is :func:`confirm_frame`'s."""
    # Ray (through the runner): seconds to import, not on the path of `tdrl search --help` or --plan
    from tdrl.study.runner import StudyResult, grid_space, prepare_study_data, read_state, run_tune, write_state

    # Which rows it trains is decided once: a resumed confirmation reads them from its folder.
    study_dir = join(storage_of(opts), confirm_options(opts, search_run, seeds).name)
    saved = read_state(study_dir, CANDIDATES_FILE)
    trials, candidates, finished = resolve_confirm(opts, search_run, k, seeds, saved)
    trials = prepare_study_data(trials)  # refused before Ray starts: no trial fails on it
    if saved is None:
        write_state(trials.study_dir, candidates_state(candidates, search_run, finished), CANDIDATES_FILE)

    def after(res: StudyResult) -> pd.DataFrame:
        out = tables_dir(res.name, opts.tables_out)
        table, _, _ = report(trials.study, res.mlflow_uri, out, experiment=res.experiment,
                                    parent_run_id=res.parent_run_id)
        frame = confirm_frame(table, candidates)
        paths = write_confirm(frame, out, search_run=search_run, finished=finished, seeds=trials.seeds,
                              caption=res.name)
        print(paths["markdown"].read_text())
        log_artifacts(res.mlflow_uri, res.parent_run_id, paths.values(), artifact_path="tables")
        return frame

    return run_tune(trials, param_space=grid_space(trials), count=len(trials.trials), after=after,
                    parent_params={"confirm.search_run": search_run, "confirm.k": k, "confirm.search_trials": finished})
