"""The per-run CSV, the shared column, the chart's rows and title of ``tdrl tables`` (no MLflow, no
Ray); each test kills mutants that a mutmut run of tables.py left alive (docs/testing.md)."""

from __future__ import annotations

import math

import pandas as pd

from tdrl.study.definitions import get_study
from tdrl.study.tables import build_table, chart_frame, runs_to_records, save_chart, write_outputs


def mlflow_runs() -> pd.DataFrame:
    """What ``mlflow.search_runs`` returns for a table5 study: tags and metrics as columns."""
    return pd.DataFrame({
        "tags.tdrl.row": ["ratio0", "ratio0", "ratio50", "ratio50", "ratio50"],
        "tags.tdrl.seed": ["10", "2", "2", "10", "3"],
        "metrics.val_top1": [40.0, 42.0, 47.0, 45.0, 99.0],
        "metrics.val_top5": [80.0, 81.0, 88.0, 86.0, 99.0],
        "metrics.train_top1": [60.0, 62.0, 70.0, 66.0, 99.0],
        "tags.tdrl.shared_study": [None, None, "table6", None, None],
        "status": ["FINISHED", "FINISHED", "FINISHED", "FINISHED", "FAILED"],
        "run_id": ["a", "b", "c", "d", "e"],
    })


def test_runs_csv_has_one_line_per_run_in_row_and_numeric_seed_order(tmp_path):
    s = get_study("table5")
    recs = runs_to_records(mlflow_runs())
    paths = write_outputs(s, build_table(s, recs), tmp_path / "new" / "folder", records=recs)  # parents made
    runs = pd.read_csv(paths["runs"], keep_default_na=False)
    assert paths["runs"] == tmp_path / "new" / "folder" / "table5_runs.csv"
    assert list(runs.columns) == ["row", "seed", "top1", "top5", "train_top1", "shared", "run_id"]
    assert runs[["row", "seed", "run_id"]].values.tolist() == [["ratio0", 2, "b"], ["ratio0", 10, "a"],
                                                                ["ratio50", 2, "c"], ["ratio50", 10, "d"]]
    assert runs["top1"].tolist() == [42.0, 40.0, 47.0, 45.0]
    assert runs["shared"].tolist() == ["", "", "table6", ""]


def test_shared_runs_are_named_per_row_and_missing_tags_are_empty():
    recs = runs_to_records(mlflow_runs())
    assert recs["shared"].tolist() == ["", "", "table6", ""]  # None in MLflow's frame -> "", never "None"
    t = build_table(get_study("table5"), recs).set_index("key")
    assert t.loc["ratio50", "shared"] == "table6" and t.loc["ratio0", "shared"] == ""
    assert t.loc["ratio50", "diff_mean"] == 5.0  # (47 - 42 + 45 - 40) / 2, paired by seed


def test_chart_rows_leave_out_the_baseline_and_references():
    s = get_study("table3")  # baseline "baseline", reference "tsn"
    recs = pd.DataFrame({"row": ["baseline", "baseline", "pem", "pem", "tsn", "tsn"], "seed": [0, 1, 0, 1, 0, 1],
                         "top1": [40.0, 42.0, 44.0, 47.0, 30.0, 31.0]})
    c = chart_frame(s, build_table(s, recs))
    assert c["row"].tolist() == ["+PEM", "+TDLoss", "+PEM+TDLoss"]
    assert c["measured"].iloc[0] == 4.5 and math.isnan(c["measured"].iloc[1])
    assert c["paper"].tolist() == [48.1 - 45.6, 47.5 - 45.6, 48.4 - 45.6]


def test_chart_title_is_the_given_one_else_the_studys(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("tdrl.viz.study_chart.save_difference_chart",
                        lambda df, path, **kw: seen.append(kw["title"]) or path)
    s = get_study("table6")
    t = build_table(s, pd.DataFrame({"row": ["tm"], "seed": [0], "top1": [30.0]}))
    save_chart(s, t, tmp_path / "a.png")
    save_chart(s, t, tmp_path / "b.png", title="mine")
    assert seen == [s.title, "mine"]


def test_one_experiment_per_study():
    from tdrl.study.naming import experiment_name

    assert experiment_name(get_study("ratio").name) == "tdrl-table5"
    assert experiment_name(get_study("table3").name, "bench") == "bench-table3"
