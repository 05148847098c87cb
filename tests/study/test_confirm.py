"""Confirming a search's winners: which trials, which seeds, which rows, and the table that reports them."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from tdrl.config.base import ConfigError
from tdrl.study.confirm import (FIRST_SEED, Candidate, candidates_state, choose_candidates, confirm_frame,
                                confirm_markdown, confirm_study, resolve_confirm, top_candidates)
from tdrl.study.definitions import get_study
from tdrl.study.search_space import td_block_choices
from tdrl.study.tables import build_table
from tdrl.study.trials import StudyOptions, resolve_study
from tdrl.train import tracking as T

BLOCKS = td_block_choices("resnet18")


def _trial(i: int, score: float, start: int, status: str = "FINISHED", **params: str) -> dict:
    values = {"td_lambda": "0.000172199", "td_ratio": "0.5", "enhance_position": "after", "td_position": "after",
              "td_blocks": BLOCKS["s3-4"], "mem_init": "last", **params}
    return {"run_id": f"r{i}", "status": status, "start_time": start, "tags.tdrl.trial": f"t{i}",
            "params.model.backbone": "resnet18", **{f"params.model.{k}": v for k, v in values.items()},
            "metrics.val_top1": score}


def _runs() -> pd.DataFrame:
    return pd.DataFrame([
        _trial(0, 70.0, 1),
        _trial(1, 73.5, 2, td_lambda="1e-05", mem_init="zeros", td_blocks=BLOCKS["s4"]),
        _trial(2, 72.0, 3, td_ratio="0.125"),
        _trial(3, 73.5, 4, td_lambda="0.0009"),  # ties with r1, started later
        _trial(4, 99.0, 5, status="KILLED"),  # stopped early by ASHA: never a candidate
    ])


def test_top_candidates_best_first_typed_ties_in_start_order():
    best = top_candidates(_runs(), 3, "resnet18")
    assert [(c.rank, c.run_id, c.score) for c in best] == [(1, "r1", 73.5), (2, "r3", 73.5), (3, "r2", 72.0)]
    assert best[0].values == {"model.td_lambda": 1e-05, "model.td_ratio": 0.5, "model.enhance_position": "after",
                              "model.td_position": "after", "model.td_blocks": "layer4.-1", "model.mem_init": "zeros"}
    assert best[0].label == "λ 1.0e-05, ratio 0.5, PEM after, TD after, at s4, m0 zeros"
    with pytest.raises(ConfigError, match="the search has 4 finished trial"):
        top_candidates(_runs(), 5, "resnet18")


def _candidates() -> list[Candidate]:
    return top_candidates(_runs(), 2, "resnet18")


def test_rows_are_the_tim_baseline_and_the_full_network_with_each_candidates_values(tmp_path):
    opts = StudyOptions(preset="smoke", storage=str(tmp_path / "runs"), mlflow_uri=f"sqlite:///{tmp_path}/m.db")
    saved = candidates_state(_candidates(), "search-smoke", 4)
    trials, cands, finished = resolve_confirm(opts, "search-smoke", 2, 3, saved)
    assert finished == 4 and [c.run_id for c in cands] == ["r1", "r3"]
    assert trials.study_run == "search-smoke-confirm" and trials.experiment == "tdrl-confirm"
    assert trials.seeds == [1, 2, 3] == sorted({t.seed for t in trials.trials}) and FIRST_SEED == 1
    assert [(t.row, t.seed) for t in trials.trials][:4] == [("baseline", 1), ("baseline", 2), ("baseline", 3),
                                                            ("top1", 1)]
    by_row = {t.row: t.flat for t in trials.trials if t.seed == 1}
    assert (by_row["baseline"]["model.enhance"], by_row["baseline"]["model.td_ratio"]) == ("none", 0.0)
    assert by_row["baseline"]["model.temporal"] == "tim"
    top1 = by_row["top1"]
    assert top1["model.enhance"] == "pem" and top1["model.td_lambda"] == 1e-05 and top1["model.mem_init"] == "zeros"
    assert top1["model.td_blocks"] == "layer4.-1" and top1["model.td_ratio"] == 0.5
    assert by_row["top2"]["model.td_lambda"] == 0.0009
    assert trials.parent_params()["study.first_seed"] == 1
    # The baseline is Table 4's TIM baseline, seed for seed: a finished run of it is shared, not trained.
    t4 = resolve_study(get_study("table4"), StudyOptions(preset="smoke", seeds=4, storage=str(tmp_path / "other"),
                                                         mlflow_uri=opts.mlflow_uri))
    t4_hash = {t.seed: t.config_hash for t in t4.trials if t.row == "baseline"}
    assert all(t.config_hash == t4_hash[t.seed] for t in trials.trials if t.row == "baseline")
    assert len({t.config_hash for t in trials.trials}) == 3  # one per row (the seed is matched beside it)


def test_a_resumed_confirmation_keeps_its_rows_and_refuses_others(tmp_path):
    opts = StudyOptions(preset="smoke", storage=str(tmp_path / "runs"), mlflow_uri=f"sqlite:///{tmp_path}/m.db")
    saved = candidates_state(_candidates(), "search-smoke", 4)
    with pytest.raises(ConfigError, match="re-trains the top 2 of search search-smoke, not the top 3"):
        resolve_confirm(opts, "search-smoke", 3, 3, saved)
    with pytest.raises(ConfigError, match="--confirm 0 must be >= 1"):
        resolve_confirm(opts, "search-smoke", 0, 3, saved)


def test_candidates_come_from_the_named_search_in_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    opts = StudyOptions(preset="bench", mlflow_uri=uri)
    with pytest.raises(ConfigError, match="no search run named 'search-bench' in experiment tdrl-search"):
        choose_candidates(opts, "search-bench", 1)
    parent, _ = T.find_or_create_run(uri, "tdrl-search", run_name="search-bench",
                                     match={T.STUDY_RUN_TAG: "search-bench", T.ROLE_TAG: "study"},
                                     params={"study.preset": "bench"})
    client = T.mlflow_client(uri)
    exp_id = client.get_experiment_by_name("tdrl-search").experiment_id
    for i, (lam, score) in enumerate([("0.0002", 71.0), ("3e-05", 74.0), ("0.0007", 72.5)]):
        run = client.create_run(exp_id, tags={T.PARENT_TAG: parent, T.TRIAL_TAG: f"t{i}"})
        for k, v in {"model.backbone": "resnet18", "model.td_lambda": lam, "model.td_ratio": "0.25",
                     "model.enhance_position": "before", "model.td_position": "after",
                     "model.td_blocks": BLOCKS["s2-4"], "model.mem_init": "first"}.items():
            client.log_param(run.info.run_id, k, v)
        client.log_metric(run.info.run_id, "val_top1", score)
        client.set_terminated(run.info.run_id, "FINISHED")
    cands, finished = choose_candidates(opts, "search-bench", 2)
    assert finished == 3 and [(c.score, c.values["model.td_lambda"]) for c in cands] == [(74.0, 3e-05), (72.5, 7e-04)]
    with pytest.raises(ConfigError, match="ran --preset bench, not smoke"):
        choose_candidates(StudyOptions(preset="smoke", mlflow_uri=uri), "search-bench", 1)


def test_the_table_puts_the_search_score_beside_the_paired_confirmation():
    cands = _candidates()
    study = confirm_study(cands, "search-x")
    base = [70.0, 71.0, 72.0]
    top1 = [72.0, 74.0, 73.0]  # differences 2, 3, 1
    top2 = [69.0, 72.0, 71.5]  # differences -1, 1, -0.5
    records = pd.DataFrame([{"row": row, "seed": s + 1, "top1": v, "top5": float("nan"), "train_top1": 80.0,
                             "shared": ""}
                            for row, vals in (("baseline", base), ("top1", top1), ("top2", top2))
                            for s, v in enumerate(vals)])
    frame = confirm_frame(build_table(study, records), cands).set_index("key")
    assert math.isnan(frame.loc["baseline", "search_top1"]) and frame.loc["top1", "search_top1"] == 73.5
    assert frame.loc["top1", "search_run_id"] == "r1" and frame.loc["top1", "top1_mean"] == pytest.approx(73.0)
    p1 = sps.ttest_rel(top1, base).pvalue
    p2 = sps.ttest_rel(top2, base).pvalue
    assert frame.loc["top1", "diff_mean"] == pytest.approx(2.0) and frame.loc["top1", "diff_p"] == pytest.approx(p1)
    # Holm over the two comparisons: the smaller p doubled, the larger kept if larger
    assert frame.loc["top1", "diff_p_holm"] == pytest.approx(min(1.0, 2 * p1))
    assert frame.loc["top2", "diff_p_holm"] == pytest.approx(max(min(1.0, 2 * p1), p2))
    md = confirm_markdown(frame.reset_index(), search_run="search-x", finished=4, seeds=[1, 2, 3])
    assert "its top 2 of 4 finished trials, re-trained with seeds 1-3" in md
    line = next(x for x in md.splitlines() if x.startswith("| #1 "))
    # differences 2, 3, 1: mean 2, sd 1, t(0.975, 2) = 4.303 -> 2 -+ 4.303 / sqrt(3) = [-0.48, +4.48]
    assert "| 73.5 | 73.0 ± 1.0 | +2.0 [-0.5, +4.5] | " in line and line.endswith("| 80.0 | 3 |")
    assert "TIM baseline (baseline) |  | 71.0 ± 1.0 |" in md


@pytest.mark.slow
def test_search_then_confirm_end_to_end(study_data, tmp_path, ray_session):
    """A 2-trial smoke search, then ``--confirm 1 --seeds 2``: the baseline and the winner trained with
    seeds 1-2 under their own parent run, the table on disk and on the parent, and the same command
    again resumes it with nothing to train (minutes: four tiny Tune runs)."""
    from study_helpers import TINY

    from tdrl.cli import main as tdrl_main
    from tdrl.study.runner import read_state

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--preset", "smoke", "--data", study_data, "--name", "s", "--storage", str(tmp_path / "runs"),
              "--mlflow-uri", uri, "--tables-out", str(tmp_path / "tables")]
    for k, v in TINY.items():
        common += ["--set", f"{k}={v}"]
    assert tdrl_main(["search", *common, "--samples", "2"]) == 0
    assert tdrl_main(["search", *common, "--confirm", "1", "--seeds", "2"]) == 0
    client = T.mlflow_client(uri)
    exp = client.get_experiment_by_name("tdrl-confirm")
    runs = [r for r in client.search_runs([exp.experiment_id]) if T.PARENT_TAG in r.data.tags]
    assert sorted((r.data.tags[T.ROW_TAG], r.data.tags[T.SEED_TAG]) for r in runs) == [
        ("baseline", "1"), ("baseline", "2"), ("top1", "1"), ("top1", "2")]
    saved = read_state(str(tmp_path / "runs" / "s-confirm"), "confirm_candidates.json")
    search_runs = {r.info.run_id: r for r in client.search_runs([client.get_experiment_by_name("tdrl-search")
                                                                   .experiment_id])}
    best = search_runs[saved["candidates"][0]["run_id"]]
    assert saved["candidates"][0]["score"] == max(r.data.metrics.get("val_top1", -1) for r in search_runs.values())
    top1 = next(r for r in runs if r.data.tags[T.ROW_TAG] == "top1")
    assert top1.data.params["model.td_lambda"] == best.data.params["model.td_lambda"]
    frame = pd.read_csv(tmp_path / "tables" / "confirm.csv").set_index("key")
    assert frame.loc["top1", "search_top1"] == pytest.approx(saved["candidates"][0]["score"])
    assert frame.loc["top1", "n"] == 2 and frame.loc["top1", "diff_n"] == 2
    parent = runs[0].data.tags[T.PARENT_TAG]
    assert {"tables/confirm.md", "tables/confirm.csv"} <= {a.path for a in client.list_artifacts(parent, "tables")}
    assert tdrl_main(["search", *common, "--confirm", "1", "--seeds", "2"]) == 0  # resumed: nothing new
    assert len([r for r in client.search_runs([exp.experiment_id]) if T.PARENT_TAG in r.data.tags]) == 4
