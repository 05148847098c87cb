"""The family of comparisons across studies, and the planning figures (power, seeds needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tdrl.study.definitions import get_study
from tdrl.study.family import Entry, family_frame, family_markdown
from tdrl.study.stats import paired_difference, paired_power, seeds_for_halfwidth, seeds_for_power
from tdrl.study.tables import family_entries, report_family, write_outputs, build_table


def test_seeds_for_a_halfwidth_by_hand():
    # t_{0.975, 14} = 2.1448: 2.1448 * 1.8 / sqrt(15) = 0.997 <= 1; t_{0.975, 13} = 2.1604:
    # 2.1604 * 1.8 / sqrt(14) = 1.039 > 1. So 15 seeds give +-1 point at sd 1.8, 14 do not.
    assert seeds_for_halfwidth(1.8, 1.0) == 15
    # sd 0.5: n = 4 gives 3.1824 * 0.5 / 2 = 0.80 <= 1, n = 3 gives 4.3027 * 0.5 / sqrt(3) = 1.24.
    assert seeds_for_halfwidth(0.5, 1.0) == 4


def test_power_is_the_size_at_no_effect_and_matches_a_simulation():
    assert paired_power(5, 0.0, 1.3) == pytest.approx(0.05, abs=1e-9)
    # Monte Carlo of the paired t-test itself: 5 pairs, true difference 1, sd 1.3.
    rng = np.random.default_rng(0)
    d = rng.normal(1.0, 1.3, size=(200_000, 5))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(5))
    rejected = float(np.mean(np.abs(t) > 2.7764451051977987))  # t_{0.975, 4}
    assert paired_power(5, 1.0, 1.3) == pytest.approx(rejected, abs=0.005)
    n = seeds_for_power(1.0, 1.8)
    assert paired_power(n, 1.0, 1.8) >= 0.8 > paired_power(n - 1, 1.0, 1.8)


def _entry(study, row, diffs, base=(50.0, 52.0, 51.0)):
    return Entry(study, row, {s: base[s] + d for s, d in enumerate(diffs)}, dict(enumerate(base)))


def test_family_merges_shared_comparisons_and_adjusts_over_all():
    a = _entry("table4", "+TDLoss", (1.0, 2.0, 1.5))
    same = _entry("table5", "+50% TDLoss", (1.0, 2.0, 1.5))  # the same runs in another table
    b = _entry("table5", "+25% TDLoss", (-1.0, 0.5, 0.2))
    c = _entry("meminit", "zeros", (3.0, 3.2, 2.9))
    frame = family_frame([a, b, same, c], {("table4", "+TDLoss"): 0.2, ("table5", "+50% TDLoss"): 0.3})
    assert list(frame["comparison"]) == ["table4 +TDLoss = table5 +50% TDLoss", "table5 +25% TDLoss", "meminit zeros"]
    p = [paired_difference(e.values, e.baseline).p for e in (a, b, c)]
    order = np.argsort(p)  # Holm over three by hand: x3, x2, x1 as a running maximum
    expected, running = [0.0] * 3, 0.0
    for factor, i in zip((3, 2, 1), order):
        running = max(running, min(1.0, factor * p[i]))
        expected[i] = running
    assert list(frame["p_holm_family"]) == pytest.approx(expected)
    assert frame.loc[0, "p_holm_table"] == 0.3  # the larger of its two tables' adjustments
    assert frame.loc[0, "diff_sd"] == pytest.approx(0.5) and frame.loc[0, "n"] == 3
    assert frame.loc[0, "seeds_ci"] == seeds_for_halfwidth(0.5, 1.0)
    md = family_markdown(frame)
    assert "| table5 +25% TDLoss | 3 |" in md and "p Holm (all 3)" in md


def test_family_from_tables_leaves_out_baseline_and_references(tmp_path):
    study = get_study("table4")
    lines = [{"row": r, "seed": s, "top1": 50.0 + s + (i if r != "baseline" else 0) + 0.3 * s * (r == "pem")}
             for i, r in enumerate(["baseline", "tsn", "pem", "td"]) for s in range(3)]
    records = pd.DataFrame(lines)
    rows = [e.row for e in family_entries(study, records)]
    assert rows == ["+MEM [11]", "+PEM", "+TDLoss", "+PEM+TDLoss"]  # no TSN, no baseline
    write_outputs(study, build_table(study, records), tmp_path, records=records)
    md = report_family([study, get_study("table5")], tmp_path, tmp_path)  # table5 has no runs file: skipped
    text = md.read_text()
    assert "table4 +PEM |" in text and "| table4 TSN" not in text and "table5" not in text
    fam = pd.read_csv(tmp_path / "family.csv")
    # +MEM and +PEM+TDLoss have no runs: no comparison was made, so neither is in the family (nor merged
    # with the other as two empty rows). +TDLoss is a constant shift: p 0, sd 0, no planning figures.
    assert list(fam["comparison"]) == ["table4 +PEM", "table4 +TDLoss"]
    assert fam.loc[1, "p"] == 0.0 and math.isnan(fam.loc[1, "seeds_ci"])
