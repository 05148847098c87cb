"""Table formatting from synthetic run records (no MLflow, no Ray)."""

from __future__ import annotations

import math

import pandas as pd

from tdrl.study.definitions import get_study
from tdrl.study.tables import build_table, fmt_measured, runs_to_records, to_markdown, write_outputs


def records():
    return pd.DataFrame({
        "row": ["ratio0", "ratio0", "ratio0", "ratio50", "ratio50", "ratio100", "unknown"],
        "seed": ["0", "1", "2", "0", "1", "0", "0"],
        "top1": [40.0, 42.0, 44.0, 50.0, 52.0, 47.0, 99.0],
        "top5": [80.0, 80.0, 80.0, 90.0, 91.0, 88.0, 99.0],
    })


def test_mean_std_n_per_row():
    t = build_table(get_study("table5"), records()).set_index("key")
    assert list(t.index) == ["ratio0", "ratio25", "ratio50", "ratio75", "ratio100"]
    assert t.loc["ratio0", "top1_mean"] == 42.0 and t.loc["ratio0", "top1_std"] == 2.0  # ddof=1
    assert t.loc["ratio0", "n"] == 3
    assert t.loc["ratio50", "top1_mean"] == 51.0 and math.isclose(t.loc["ratio50", "top1_std"], math.sqrt(2))
    assert t.loc["ratio100", "n"] == 1 and math.isnan(t.loc["ratio100", "top1_std"])
    assert t.loc["ratio25", "n"] == 0 and math.isnan(t.loc["ratio25", "top1_mean"])
    assert t.loc["ratio50", "paper_top1"] == 48.4
    assert math.isnan(t.loc["ratio50", "paper_top5"])


def test_markdown_has_paper_column_and_layout():
    s = get_study("table5")
    md = to_markdown(s, build_table(s, records()))
    lines = md.splitlines()
    assert "Table 5" in lines[0]
    assert lines[2] == ("| Method | Top-1 paper | Top-1 measured | Top-5 paper | Top-5 measured | Δ paper | "
                        "Δ measured [95% CI] | p | p Holm | Train top-1 | seeds |")
    assert "| baseline (baseline) | 46.1 | 42.0 ± 2.0 | – | 80.0 ± 0.0 |  |  |  |  | – | 3 |" in lines
    assert "| +25% TDLoss | 47.7 | – | – | – | +1.6 | – | – | – | – | 0 |" in lines
    # ratio50 - ratio0 over seeds 0 and 1: d = (10, 10), a tie -> degenerate interval, p = 0 (Holm: 1 x 0).
    assert ("| +50% TDLoss | 48.4 | 51.0 ± 1.4 | – | 90.5 ± 0.7 | +2.3 | +10.0 [+10.0, +10.0] * | <0.001 | <0.001 "
            "| – | 2 |") in lines
    assert "| +100% TDLoss | 47.3 | 47.0 | – | 88.0 | +1.2 | +7.0 (1 seed: no interval) | – | – | – | 1 |" in lines


def test_fmt_measured():
    assert fmt_measured(48.44, 0.26) == "48.4 ± 0.3"
    assert fmt_measured(48.44, float("nan")) == "48.4"
    assert fmt_measured(float("nan"), float("nan")) == "–"


def test_runs_to_records_keeps_finished_only():
    runs = pd.DataFrame({"tags.tdrl.row": ["a", "b"], "tags.tdrl.seed": ["0", "0"],
                         "metrics.val_top1": [1.0, 2.0], "metrics.val_top5": [3.0, 4.0],
                         "status": ["FINISHED", "FAILED"], "run_id": ["x", "y"]})
    rec = runs_to_records(runs)
    assert list(rec["row"]) == ["a"] and list(rec["top1"]) == [1.0]
    assert runs_to_records(pd.DataFrame()).empty


def test_write_outputs(tmp_path):
    s = get_study("table6")
    t = build_table(s, pd.DataFrame({"row": ["tm", "pem_after"], "top1": [30.0, 35.0], "top5": [70.0, 75.0]}))
    paths = write_outputs(s, t, tmp_path)
    assert paths["png"].stat().st_size > 1000
    back = pd.read_csv(paths["csv"])
    assert list(back["row"]) == [r.label for r in s.rows]
    assert "PEM A. TM" in paths["markdown"].read_text()


def test_frame_markdown():
    from tdrl.study.tables import frame_markdown

    md = frame_markdown(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x", "y"]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x |", "| – | y |"]
