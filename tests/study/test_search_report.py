"""What a search learned, rebuilt from its MLflow runs: trials, fANOVA importances, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tdrl.cli import main
from tdrl.study.search_report import finished_trials, importances, optuna_study, ranked_trials, report_search
from tdrl.study.search_space import optuna_distributions, td_block_choices
from tdrl.train import tracking as T

KEYS = ["model.td_lambda", "model.td_ratio", "model.enhance_position", "model.td_position", "model.td_blocks",
        "model.mem_init"]


def _runs(n: int = 16, seed: int = 0) -> pd.DataFrame:
    """What ``tracking.child_runs`` returns for a search whose score depends on mem_init alone (+6
    points for zeros, +-0.3 noise), with one ASHA-stopped and one failed trial that must not count."""
    rng = np.random.default_rng(seed)
    blocks = list(td_block_choices("resnet18").values())
    rows = []
    for i in range(n):
        mem = ["last", "first", "zeros"][i % 3]
        rows.append({"run_id": f"r{i}", "status": "FINISHED", "start_time": 1000 + (n - i),  # started in reverse
                     "tags.tdrl.trial": f"t{i}", "params.model.backbone": "resnet18",
                     "params.model.td_lambda": str(10 ** rng.uniform(-5, -3)),
                     "params.model.td_ratio": str(0.125 * rng.integers(1, 9)),
                     "params.model.enhance_position": ["before", "after"][rng.integers(2)],
                     "params.model.td_position": ["before", "after"][rng.integers(2)],
                     "params.model.td_blocks": blocks[rng.integers(4)], "params.model.mem_init": mem,
                     "metrics.val_top1": 70.0 + 6.0 * (mem == "zeros") + rng.normal(0, 0.3)})
    rows.append({**rows[0], "run_id": "killed", "status": "KILLED", "metrics.val_top1": 20.0})
    rows.append({**rows[1], "run_id": "failed", "status": "FAILED", "metrics.val_top1": np.nan})
    return pd.DataFrame(rows)


def test_finished_trials_only_in_start_order_with_typed_values():
    runs = _runs(6)
    trials = finished_trials(runs, KEYS)
    assert list(trials["run_id"]) == ["r5", "r4", "r3", "r2", "r1", "r0"]  # by start time, killed/failed left out
    labels = {"model.td_blocks": {b: name for name, b in td_block_choices("resnet18").items()}}
    study = optuna_study(trials, optuna_distributions("resnet18"), labels)
    assert [t.user_attrs["run_id"] for t in study.trials] == ["r5", "r4", "r3", "r2", "r1", "r0"]
    first = study.trials[0].params  # named without the section, blocks by their label
    assert isinstance(first["td_lambda"], float) and first["td_lambda"] == float(runs.loc[5, "params.model.td_lambda"])
    assert first["td_blocks"] == labels["model.td_blocks"][runs.loc[5, "params.model.td_blocks"]]
    assert study.trials[0].value == pytest.approx(float(runs.loc[5, "metrics.val_top1"]))
    assert list(ranked_trials(runs, KEYS)["trial"])[0] in {"t2", "t5"}  # the zeros trials score highest


def test_a_value_outside_the_space_is_refused():
    runs = _runs(3)
    runs.loc[0, "params.model.mem_init"] = "middle"
    with pytest.raises(ValueError, match="'middle' is not one of the search's choices"):
        optuna_study(finished_trials(runs, KEYS), optuna_distributions("resnet18"))


def test_importances_find_the_parameter_the_score_depends_on(tmp_path):
    values, paths = report_search(_runs(), optuna_distributions("resnet18"), tmp_path, caption="search-t")
    assert set(values) == set(KEYS) and sum(values.values()) == pytest.approx(1.0)
    assert max(values, key=values.get) == "model.mem_init" and values["model.mem_init"] > 0.5
    for name in ("history", "importances", "parallel", "slice"):
        png = paths[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    md = paths["importance_md"].read_text()
    assert "| model.mem_init |" in md and "fANOVA" in md and "16 finished trials" in md
    # Against the same trials with their scores shuffled: mem_init's importance stands above noise,
    # and the noise level of each parameter is a real one (fANOVA gives some importance to each).
    table = pd.read_csv(paths["importance_csv"]).set_index("parameter")
    assert table.loc["model.mem_init", "above_null"] and table.loc["model.mem_init", "importance"] > \
        table.loc["model.mem_init", "null_q95"]
    assert (table["null_q95"] > 0.05).all() and "95% with scores shuffled" in md
    again = importances(optuna_study(finished_trials(_runs(), KEYS), optuna_distributions("resnet18")))
    assert {f"model.{k}": v for k, v in again.items()} == values  # seeded: two reports agree


def test_too_few_trials_say_so(tmp_path):
    values, paths = report_search(_runs(1), optuna_distributions("resnet18"), tmp_path)
    assert values == {} and "too few" in paths["importance_md"].read_text()


def test_tables_search_reads_the_newest_search_and_logs_on_its_parent(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, _ = T.find_or_create_run(uri, "tdrl-search", run_name="search-t", match={T.ROLE_TAG: "study"},
                                     tags={T.STUDY_RUN_TAG: "search-t"})
    client = T.mlflow_client(uri)
    for _, r in _runs(8).iterrows():
        if r["status"] != "FINISHED":
            continue
        run, _ = T.find_or_create_run(uri, "tdrl-search", run_name=r["run_id"], match={T.RUN_NAME_TAG: r["run_id"]},
                                      tags={T.TRIAL_TAG: r["tags.tdrl.trial"]}, parent_run_id=parent,
                                      params={k[7:]: v for k, v in r.items() if k.startswith("params.")})
        client.log_metric(run, "val_top1", float(r["metrics.val_top1"]))
        T.end_run(uri, run)
    out = tmp_path / "tables"
    assert main(["tables", "search", "--mlflow-uri", uri, "--out", str(out)]) == 0
    folder = out / "search-t"
    trials = pd.read_csv(folder / "search_trials.csv")
    assert len(trials) == 8 and trials["val_top1"].is_monotonic_decreasing
    md = (folder / "search_trials.md").read_text()  # readable: lambda to 3 digits, blocks by their name
    best = trials.iloc[0]
    name = {v: k for k, v in td_block_choices("resnet18").items()}[best["model.td_blocks"]]
    assert f"| {best['trial']} | {best['model.td_lambda']:.2e} | {best['model.td_ratio']} |" in md
    assert f"| {name} | {best['model.mem_init']} |" in md and "| trial | td_lambda | td_ratio |" in md
    assert "The search's trials, best first" in capsys.readouterr().out
    logged = {a.path for a in client.list_artifacts(parent, "search")}
    assert {"search/search_trials.csv", "search/search_importance.md", "search/search_slice.png"} <= logged
    metrics = T.get_run(uri, parent).data.metrics
    assert metrics["importance.model.mem_init"] == max(v for k, v in metrics.items() if k.startswith("importance."))
    assert main(["tables", "search", "--mlflow-uri", uri, "--out", str(out), "--name", "other"]) == 1
