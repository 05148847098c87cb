"""Measured table cells are the mean and sample std over seeds, checked on skewed data where mean and
median (and ddof 1 and 0) differ, so a changed statistic cannot pass; records keep each run's seed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tdrl.study.definitions import get_study
from tdrl.study.tables import build_table


def test_mean_and_sample_std_on_skewed_seeds():
    # ratio50: 40, 41, 48 -> mean 43, median 41; deviations -3, -2, 5 -> sample variance 38 / 2 = 19.
    records = pd.DataFrame({
        "row": ["ratio0", "ratio0", "ratio50", "ratio50", "ratio50"],
        "seed": ["0", "1", "0", "1", "2"],
        "top1": [30.0, 36.0, 40.0, 41.0, 48.0],
        "top5": [70.0, 71.0, 80.0, 81.0, 95.0],
    })
    t = build_table(get_study("table5"), records).set_index("key")
    assert t.loc["ratio50", "top1_mean"] == pytest.approx(43.0)
    assert t.loc["ratio50", "top1_std"] == pytest.approx(math.sqrt(19.0))
    assert t.loc["ratio50", "top5_mean"] == pytest.approx(256.0 / 3)
    assert t.loc["ratio50", "n"] == 3
    assert t.loc["ratio0", "top1_mean"] == pytest.approx(33.0) and t.loc["ratio0", "n"] == 2


def test_records_keep_each_runs_row_seed_and_metrics():
    """MLflow's run frame -> records: finished runs only, each with its row, seed (the table pairs rows by
    seed), metrics and run id, numbered 0..n-1; an empty frame still has the columns."""
    from tdrl.study.tables import runs_to_records

    runs = pd.DataFrame({"tags.tdrl.row": ["ratio0", "ratio50", "ratio50", "ratio50"],
                         "tags.tdrl.seed": ["3", "3", "9", "4"],
                         "metrics.val_top1": [30.0, 40.0, 1.0, 44.0], "metrics.val_top5": [70.0, 80.0, 2.0, 84.0],
                         "status": ["FINISHED", "FINISHED", "FAILED", "FINISHED"], "run_id": ["a", "b", "x", "c"]})
    rec = runs_to_records(runs)
    assert list(zip(rec["row"], rec["seed"], rec["top1"], rec["top5"], rec["run_id"])) == [
        ("ratio0", "3", 30.0, 70.0, "a"), ("ratio50", "3", 40.0, 80.0, "b"), ("ratio50", "4", 44.0, 84.0, "c")]
    assert list(rec.index) == [0, 1, 2] and "index" not in rec.columns
    empty = runs_to_records(pd.DataFrame())
    assert empty.empty and {"row", "seed", "top1", "top5", "status", "run_id"} <= set(empty.columns)
