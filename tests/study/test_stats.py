"""Paired statistics against hand-worked cases, and the study table built from them."""

import math

import pandas as pd
import pytest

from tdrl.study.definitions import get_study
from tdrl.study.stats import fmt_difference, fmt_p, holm, paired_difference
from tdrl.study.tables import build_table, chart_frame, to_markdown


def test_three_seeds_by_hand():
    # d = [2, 3, 6]: mean 11/3, s_d = sqrt(13/3); t(0.975, 2 dof) = 4.302652729911275 (tables).
    d = paired_difference({0: 50.0, 1: 52.0, 2: 57.0}, {0: 48.0, 1: 49.0, 2: 51.0})
    mean, sd = 11 / 3, math.sqrt(13 / 3)
    half = 4.302652729911275 * sd / math.sqrt(3)
    assert d.n == 3 and d.mean == pytest.approx(mean)
    assert (d.low, d.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # Student's t with 2 dof has a closed-form tail: P(|T| > t) = 1 - t / sqrt(t^2 + 2).
    t = mean / (sd / math.sqrt(3))
    assert d.p == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert not d.significant  # the interval [-1.50, +8.84] contains 0
    assert fmt_difference(d) == "+3.7 [-1.5, +8.8]"


def test_significant_when_the_interval_excludes_zero():
    d = paired_difference({0: 51.0, 1: 52.0, 2: 53.0, 3: 52.0}, {0: 50.0, 1: 50.5, 2: 51.0, 3: 50.5})
    assert d.low > 0 and d.significant and d.p < 0.05
    assert fmt_difference(d).endswith(" *")
    worse = paired_difference({0: 40.0, 1: 41.0, 2: 40.5}, {0: 50.0, 1: 50.5, 2: 51.0})
    assert worse.high < 0 and worse.significant


def test_only_seeds_present_in_both_rows_are_paired():
    d = paired_difference({0: 10.0, 1: 20.0, 7: 99.0}, {0: 8.0, 1: 17.0, 2: 0.0})
    assert d.n == 2 and d.mean == pytest.approx(2.5)


def test_one_seed_gives_no_interval_and_says_so():
    d = paired_difference({3: 60.0}, {3: 55.5})
    assert d.n == 1 and d.mean == pytest.approx(4.5)
    assert math.isnan(d.low) and math.isnan(d.high) and math.isnan(d.p) and not d.significant
    assert fmt_difference(d) == "+4.5 (1 seed: no interval)"


def test_ties():
    same = paired_difference({0: 50.0, 1: 60.0}, {0: 48.0, 1: 58.0})  # every seed +2 exactly
    assert (same.mean, same.low, same.high, same.p) == (2.0, 2.0, 2.0, 0.0) and same.significant
    zero = paired_difference({0: 50.0, 1: 60.0}, {0: 50.0, 1: 60.0})
    assert (zero.mean, zero.low, zero.high, zero.p) == (0.0, 0.0, 0.0, 1.0) and not zero.significant


def test_no_pairs():
    d = paired_difference({0: 1.0}, {1: 1.0})
    assert d.n == 0 and math.isnan(d.mean)
    assert fmt_difference(d) == "–" and fmt_p(d.p) == "–"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0312) == "0.031"


def _records(rows: dict[str, dict[int, tuple[float, float]]], shared: dict[str, str] | None = None) -> pd.DataFrame:
    lines = []
    for row, by_seed in rows.items():
        for seed, (top1, train) in by_seed.items():
            lines.append({"row": row, "seed": str(seed), "top1": top1, "top5": top1 + 20, "train_top1": train,
                          "shared": (shared or {}).get(row, "")})
    return pd.DataFrame(lines)


def test_table_pairs_rows_with_the_baseline_by_seed():
    study = get_study("table4")
    recs = _records({
        "baseline": {0: (60.0, 90.0), 1: (62.0, 92.0), 2: (70.0, 95.0)},
        "pem": {0: (63.0, 85.0), 1: (64.0, 86.0), 2: (74.0, 90.0)},  # d = 3, 2, 4
        "tsn": {0: (45.0, 80.0), 1: (44.0, 81.0), 2: (46.0, 82.0)},
        "td": {1: (61.0, 91.0)},  # one seed only
    }, shared={"td": "table5"})
    t = build_table(study, recs).set_index("key")
    # Mean, not median: the baseline's values are skewed (median 62, mean 64).
    assert t.loc["baseline", "top1_mean"] == pytest.approx(64.0)
    assert t.loc["baseline", "top1_std"] == pytest.approx(math.sqrt(((60 - 64) ** 2 + 4 + 36) / 2))
    assert t.loc["pem", "diff_mean"] == pytest.approx(3.0) and t.loc["pem", "diff_n"] == 3
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # s_d of (3, 2, 4) is 1
    assert t.loc["pem", "diff_low"] == pytest.approx(3 - half) and t.loc["pem", "diff_high"] == pytest.approx(3 + half)
    assert bool(t.loc["pem", "significant"])
    assert t.loc["pem", "train_top1_mean"] == pytest.approx(87.0)
    assert t.loc["pem", "paper_diff"] == pytest.approx(48.7 - 46.1)
    assert t.loc["tsn", "diff_mean"] == pytest.approx(-19.0) and math.isnan(t.loc["tsn", "paper_diff"])
    assert t.loc["td", "n"] == 1 and t.loc["td", "diff_n"] == 1 and math.isnan(t.loc["td", "diff_low"])
    assert t.loc["td", "shared"] == "table5" and t.loc["pem", "shared"] == ""
    assert t.loc["mem", "n"] == 0 and math.isnan(t.loc["mem", "diff_mean"])

    md = to_markdown(study, build_table(study, recs))
    assert "| baseline [11] (baseline) | 46.1 | 64.0 ± 5.3 | 74.7 |" in md
    # p by hand: t = 3 / (1 / sqrt 3), 2 dof -> 1 - t / sqrt(t^2 + 2) = 0.035. Holm over the two rows with
    # a p (TSN: d = -15, -18, -24, t = 19 / (sqrt 21 / sqrt 3) = 7.18, p = 0.0189): TSN's is the smaller,
    # x2 = 0.038; PEM's x1 = 0.035 is raised to that running maximum, 0.038.
    assert ("| +PEM | 48.7 | 67.0 ± 6.1 | 77.8 | 87.0 ± 6.1 | +2.6 | +3.0 [+0.5, +5.5] * | 0.035 | 0.038 | 87.0 "
            "| 3 |") in md
    assert "(1 seed: no interval)" in md and "1 (shared: table5)" in md and "paired t-test" in md

    chart = chart_frame(study, build_table(study, recs))
    assert list(chart["row"]) == [r.label for r in study.rows if r.key not in ("baseline", "tsn")]
    pem = chart[chart["row"] == "+PEM"].iloc[0]
    assert pem["measured"] == pytest.approx(3.0) and pem["paper"] == pytest.approx(2.6)


def test_outputs_hold_the_same_numbers_and_every_run(tmp_path):
    from tdrl.study.tables import write_outputs

    study = get_study("table7")
    recs = _records({"lambda0": {1: (50.0, 60.0), 0: (52.0, 61.0)}, "lambda1e-4": {0: (55.0, 58.0), 1: (51.0, 57.0)}})
    recs["run_id"] = [f"r{i}" for i in range(len(recs))]
    table = build_table(study, recs)
    paths = write_outputs(study, table, tmp_path, records=recs)
    back = pd.read_csv(paths["csv"]).set_index("key")
    assert back.loc["lambda1e-4", "diff_mean"] == pytest.approx(2.0)  # (55-52 + 51-50) / 2
    assert back.loc["lambda1e-4", "train_top1_mean"] == pytest.approx(57.5)
    runs = pd.read_csv(paths["runs"])
    assert list(zip(runs["row"], runs["seed"])) == [("lambda0", 0), ("lambda0", 1), ("lambda1e-4", 0), ("lambda1e-4", 1)]
    assert "+2.0 [" in paths["markdown"].read_text()
    assert paths["png"].stat().st_size > 5000


def test_holm_by_hand():
    # Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, but never below
    # the previous adjusted value: 0.06). Returned in the input's order; NaN is not in the family.
    adjusted = holm([0.01, 0.04, float("nan"), 0.03, 0.005])
    assert adjusted[:2] == [pytest.approx(0.03), pytest.approx(0.06)]
    assert math.isnan(adjusted[2])
    assert adjusted[3:] == [pytest.approx(0.06), pytest.approx(0.02)]
    assert holm([0.4, 0.6]) == [pytest.approx(0.8), pytest.approx(0.8)]  # capped at 1 only above 1
    assert holm([0.7, 0.9]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2] and holm([]) == []


def test_holm_column_over_the_rows_compared_with_the_baseline():
    """Table 4's TSN, MEM and PEM rows against the baseline, seeds 0-2 (TD rows without runs): a
    family of three p-values, each the paired t-test's, adjusted by hand from them."""
    base = {0: 50.0, 1: 52.0, 2: 51.0}
    rows = {"tsn": {0: 20.0, 1: 23.0, 2: 21.0}, "mem": {0: 45.0, 1: 48.0, 2: 44.0}, "pem": {0: 51.0, 1: 52.5, 2: 51.0}}
    lines = [{"row": r, "seed": s, "top1": v} for r, seeds in {"baseline": base, **rows}.items() for s, v in seeds.items()]
    t = build_table(get_study("table4"), pd.DataFrame(lines)).set_index("key")
    p = {r: paired_difference(rows[r], base).p for r in rows}
    order = sorted(p, key=p.get)  # smallest first: x3, then x2, then x1, as a running maximum
    expected, running = {}, 0.0
    for factor, r in zip((3, 2, 1), order):
        running = max(running, min(1.0, factor * p[r]))
        expected[r] = running
    for r in rows:
        assert t.loc[r, "diff_p"] == pytest.approx(p[r])
        assert t.loc[r, "diff_p_holm"] == pytest.approx(expected[r])
    assert math.isnan(t.loc["baseline", "diff_p_holm"]) and math.isnan(t.loc["td", "diff_p_holm"])
    assert t.loc["pem", "diff_p_holm"] >= t.loc["pem", "diff_p"]
