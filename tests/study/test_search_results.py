"""The search's results on the parent run: files under ``tables/``, the best trial's metric and tags
(through tdrl.train.tracking, on a real SQLite store)."""

from __future__ import annotations

import pandas as pd

from tdrl.study.search import log_results
from tdrl.train import tracking


def test_results_are_logged_on_the_parent_run(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, _ = tracking.find_or_create_run(uri, "tdrl-search", run_name="search-smoke", match={"k": "v"})
    df = pd.DataFrame([{"trial": "t2", "model.td_lambda": 3e-4, "model.mem_init": "first", "seed": 0,
                        "val_top1": 61.5, "val_top5": 90.0, "epochs": 2, "error": False},
                       {"trial": "t1", "model.td_lambda": 1e-5, "model.mem_init": "last", "seed": 0,
                        "val_top1": 40.0, "val_top5": 80.0, "epochs": 2, "error": False}])
    md = log_results(df, tmp_path / "out", "search-smoke", uri, parent)
    assert "search-smoke" in capsys.readouterr().out
    assert md == tmp_path / "out" / "search.md" and "| t2 |" in md.read_text()
    assert pd.read_csv(tmp_path / "out" / "search.csv")["trial"].tolist() == ["t2", "t1"]
    client = tracking.mlflow_client(uri)
    assert sorted(a.path for a in client.list_artifacts(parent, "tables")) == ["tables/search.csv",
                                                                             "tables/search.md"]
    run = tracking.get_run(uri, parent)
    assert run.data.metrics["best_val_top1"] == 61.5
    best = {k: v for k, v in run.data.tags.items() if k.startswith("best.")}
    assert best == {"best.model.td_lambda": "0.0003", "best.model.mem_init": "first"}


def test_no_best_when_no_trial_reported(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, _ = tracking.find_or_create_run(uri, "tdrl-search", run_name="s", match={"k": "v"})
    df = pd.DataFrame([{"trial": "t1", "model.td_lambda": 1e-5, "val_top1": float("nan"), "error": True}])
    log_results(df, tmp_path / "out", "s", uri, parent)
    run = tracking.get_run(uri, parent)
    assert "best_val_top1" not in run.data.metrics
    assert not any(k.startswith("best.") for k in run.data.tags)
    assert len(tracking.mlflow_client(uri).list_artifacts(parent, "tables")) == 2
