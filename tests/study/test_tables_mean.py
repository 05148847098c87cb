"""Measured table cells are the mean and sample std over seeds, checked on skewed data where mean and
median (and ddof 1 and 0) differ, so a changed statistic cannot pass."""

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
