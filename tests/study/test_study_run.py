"""A reduced Table 5 study end to end on the shared 2-CPU session Ray (CI), and the full smoke study (slow)."""

from __future__ import annotations

import time

import pytest

from study_helpers import TINY, child_runs

pytestmark = pytest.mark.usefixtures("ray_session")


def test_table5_reduced_study_end_to_end(study_data, tmp_path, capsys):
    """2 rows x 2 seeds, 1 epoch: one FINISHED MLflow child run per row and seed, and a table with
    the paper's column; `tdrl tables` reads the same runs back."""
    from mlflow.tracking import MlflowClient

    from tdrl.cli import main as tdrl_main
    from tdrl.study.runner import run_study
    from tdrl.study.trials import StudyOptions

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    opts = StudyOptions(preset="smoke", data=study_data, seeds=2, name="t5-ci", storage=str(tmp_path / "runs"),
                        mlflow_uri=uri, rows=("ratio0", "ratio50"), overrides=dict(TINY),
                        tables_out=str(tmp_path / "tables"), verbose=0)
    t0 = time.time()
    res = run_study("table5", opts)
    print(f"reduced study: {time.time() - t0:.0f}s")
    assert res.errors == 0
    runs = child_runs(uri, "tdrl-table5")
    keys = sorted((r.data.tags["tdrl.row"], r.data.tags["tdrl.seed"]) for r in runs)
    assert keys == [("ratio0", "0"), ("ratio0", "1"), ("ratio50", "0"), ("ratio50", "1")]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {res.parent_run_id}
    assert {r.data.tags["tdrl.table"] for r in runs} == {"Table 5: TDLoss Ratio (%)"}
    assert {r.data.params["model.td_ratio"] for r in runs} == {"0.0", "0.5"}
    assert all(r.data.params["model.enhance"] == "none" for r in runs)
    # The table: paper numbers beside the measured ones, which are the runs' own last-epoch values.
    t = res.table.set_index("key")
    assert t.loc["ratio0", "paper_top1"] == 46.1 and t.loc["ratio50", "paper_top1"] == 48.4
    assert t.loc["ratio0", "n"] == 2 and t.loc["ratio50", "n"] == 2 and t.loc["ratio25", "n"] == 0
    measured = [r.data.metrics["val_top1"] for r in runs if r.data.tags["tdrl.row"] == "ratio50"]
    assert t.loc["ratio50", "top1_mean"] == pytest.approx(sum(measured) / 2)
    md = (tmp_path / "tables" / "table5.md").read_text()
    assert "| Method | Top-1 paper | Top-1 measured |" in md and "| +50% TDLoss | 48.4 |" in md
    arts = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(res.parent_run_id, "tables")}
    assert arts == {"tables/table5.md", "tables/table5.csv", "tables/table5.png", "tables/table5_runs.csv"}
    parent = MlflowClient(tracking_uri=uri).get_run(res.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["tdrl.role"] == "study"
    # The parent records the study's network (Table 5: no PEM), not the preset's (smoke: PEM).
    assert parent.data.params["base.model.enhance"] == "none" and parent.data.params["base.model.temporal"] == "tim"
    # Every trial trains what the parent records (--set included), but for its row's keys, seed and name.
    own = {"model.td_ratio", "train.seed", "train.name", "train.use_gpu"}
    for r in runs:
        assert {k: v for k, v in r.data.params.items() if k not in own} == {
            k[5:]: v for k, v in parent.data.params.items() if k.startswith("base.") and k[5:] not in own}
    assert {r.data.params["train.epochs"] for r in runs} == {"1"}
    # Tune's own config carries each trial's row values (one route for grids and searches).
    configs = {(r.config["row"], r.config["seed"]): r.config for r in res.result_grid}
    assert configs[("ratio50", 1)]["model.td_ratio"] == 0.5 and configs[("ratio0", 0)]["model.td_ratio"] == 0.0

    # Running the same study again restores it: nothing re-runs, no new MLflow runs.
    res2 = run_study("table5", opts)
    assert res2.resumed and res2.parent_run_id == res.parent_run_id
    assert len(child_runs(uri, "tdrl-table5")) == 4

    capsys.readouterr()
    assert tdrl_main(["tables", "table5", "--mlflow-uri", uri, "--out", str(tmp_path / "t2"), "--no-log"]) == 0
    out = capsys.readouterr().out
    assert "Table 5: TDLoss Ratio" in out and "| baseline (baseline) | 46.1 |" in out
    assert "paired t-test" in out and "Δ measured [95% CI]" in out

    # Table 7's lambda 0 and 2e-4 rows are Table 5's ratio 0 and 50 %: shared, not trained again.
    t7 = run_study("table7", StudyOptions(**{**opts.__dict__, "name": "t7-ci", "rows": ("lambda0", "lambda2e-4")}))
    assert t7.errors == 0
    shared = child_runs(uri, "tdrl-table7")
    assert len(shared) == 4 and all(r.info.status == "FINISHED" for r in shared)
    source = {(r.data.tags["tdrl.row"], r.data.tags["tdrl.seed"]): r for r in runs}
    pairs = {"lambda0": "ratio0", "lambda2e-4": "ratio50"}
    for r in shared:
        src = source[(pairs[r.data.tags["tdrl.row"]], r.data.tags["tdrl.seed"])]
        assert r.data.tags["tdrl.shared_from"] == src.info.run_id and r.data.tags["tdrl.shared_study"] == "table5"
        assert r.data.metrics["val_top1"] == src.data.metrics["val_top1"]
        assert r.data.tags["tdrl.config_hash"] == src.data.tags["tdrl.config_hash"]
    assert not (tmp_path / "runs" / "t7-ci" / "train").exists()  # no Ray Train run was started
    t7t = t7.table.set_index("key")
    assert t7t.loc["lambda0", "shared"] == "table5" and t7t.loc["lambda2e-4", "n"] == 2


@pytest.mark.slow
def test_table5_full_smoke_study(tmp_path):
    """The full smoke Table 5 (5 rows, the smoke preset as is) on 2 CPUs."""
    from tdrl.data.synthetic import generate_synthetic
    from tdrl.study.runner import run_study
    from tdrl.study.trials import StudyOptions
    from tdrl.train.presets import get_preset

    data = tmp_path / "synth-smoke"
    generate_synthetic(data, **get_preset("smoke").synthetic)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t0 = time.time()
    res = run_study("table5", StudyOptions(preset="smoke", data=str(data), name="t5-smoke",
                                           storage=str(tmp_path / "runs"), mlflow_uri=uri,
                                           tables_out=str(tmp_path / "tables"), verbose=0))
    print(f"full smoke Table 5: {time.time() - t0:.0f}s")
    assert res.errors == 0
    runs = child_runs(uri, "tdrl-table5")
    assert sorted(r.data.tags["tdrl.row"] for r in runs) == sorted(["ratio0", "ratio25", "ratio50", "ratio75",
                                                                      "ratio100"])
    assert res.table["n"].tolist() == [1] * 5
    assert res.table["paper_top1"].tolist() == [46.1, 47.7, 48.4, 47.8, 47.3]
