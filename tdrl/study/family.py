"""Every component comparison of several studies as one family: Holm across tables, and seeds needed.

A table's own Holm column (:mod:`tdrl.study.tables`) controls false positives among that table's
comparisons. A reader who scans all the studies looks at one larger family, so this module puts
every comparison of a component with its table's baseline in one list and adjusts the p-values over
all of them together (:func:`tdrl.study.stats.holm`). Two rules decide what the family holds:

- reference rows (TSN) are not components of the method and are left out;
- a comparison that appears in several tables (Table 5's 50 % is Table 4's "+TDLoss", with the same
  runs, shared by configuration hash) is one comparison: entries whose row and baseline have the same
  value for every seed are merged, and the merged line names every table it appears in.

For planning, each comparison also carries the standard deviation of its paired differences, the
power its number of seeds had to detect a true difference of ``effect`` points (two-sided paired
t-test at 5 %), the seeds that would give a 95 % interval of ``± effect`` points, and the seeds for
80 % power at ``effect``, all from :mod:`tdrl.study.stats`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from tdrl.study.stats import Paired, fmt_difference, fmt_p, holm, paired_difference, paired_power, seeds_for_halfwidth, seeds_for_power


@dataclass(frozen=True)
class Entry:
    """One row of one table compared with that table's baseline: top-1 by seed for both."""

    study: str
    row: str  # the row's label as the table prints it
    values: Mapping[int, float]
    baseline: Mapping[int, float]


FAMILY_COLUMNS = ["comparison", "n", "diff_mean", "diff_low", "diff_high", "diff_sd", "p", "p_holm_table",
                  "p_holm_family", "power", "seeds_ci", "seeds_power"]


def _key(e: Entry) -> tuple:
    return tuple(sorted(e.values.items())), tuple(sorted(e.baseline.items()))


def family_frame(entries: Sequence[Entry], table_holm: Mapping[tuple[str, str], float] | None = None,
                 effect: float = 1.0) -> pd.DataFrame:
    """One line per distinct comparison, in the order first seen; ``table_holm`` maps ``(study, row)``
    to that table's own Holm-adjusted p (shown beside the family's). Comparisons without a p-value
    (one seed) stay in the list with NaN and are not counted in the family; rows without runs are left out."""
    merged: dict[tuple, list[Entry]] = {}
    for e in entries:
        if set(e.values) & set(e.baseline):  # a row without paired runs is no comparison made
            merged.setdefault(_key(e), []).append(e)
    lines = []
    for group in merged.values():
        first = group[0]
        d = paired_difference(first.values, first.baseline)
        seeds = sorted(set(first.values) & set(first.baseline))
        diffs = [first.values[s] - first.baseline[s] for s in seeds]
        sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        usable = len(diffs) > 1 and sd > 0
        in_table = [table_holm.get((e.study, e.row), float("nan")) for e in group] if table_holm else []
        lines.append({
            "comparison": " = ".join(f"{e.study} {e.row}" for e in group), "n": d.n, "diff_mean": d.mean,
            "diff_low": d.low, "diff_high": d.high, "diff_sd": sd, "p": d.p,
            # the same comparison in several tables: its least favourable table-wise adjustment
            "p_holm_table": max(in_table) if in_table else float("nan"),
            "power": paired_power(d.n, effect, sd) if usable else float("nan"),
            "seeds_ci": seeds_for_halfwidth(sd, effect) if usable else float("nan"),
            "seeds_power": seeds_for_power(effect, sd) if usable else float("nan"),
        })
    for line, adjusted in zip(lines, holm([line["p"] for line in lines])):
        line["p_holm_family"] = adjusted
    return pd.DataFrame(lines, columns=FAMILY_COLUMNS)


def family_markdown(frame: pd.DataFrame, effect: float = 1.0) -> str:
    """The family as a Markdown table with a note saying what each column is."""

    def count(v: float) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))

    head = ["comparison (study row)", "seeds", "Δ [95% CI]", "sd of Δ", "p", "p Holm (table)",
            f"p Holm (all {int(frame['p'].notna().sum())})", f"power at {effect:+g}",
            f"seeds for ±{effect:g}", f"seeds for 80 % power at {effect:+g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, t in frame.iterrows():
        diff = fmt_difference(Paired(int(t["n"]), t["diff_mean"], t["diff_low"], t["diff_high"], t["p"]))
        power = "–" if math.isnan(t["power"]) else f"{t['power']:.0%}"
        sd = "–" if math.isnan(t["diff_sd"]) else f"{t['diff_sd']:.1f}"
        lines.append("| " + " | ".join([t["comparison"], str(int(t["n"])), diff, sd, fmt_p(t["p"]),
                                         fmt_p(t["p_holm_table"]), fmt_p(t["p_holm_family"]), power,
                                         count(t["seeds_ci"]), count(t["seeds_power"])]) + " |")
    note = (f"Every comparison of a component with its table's baseline, once (rows with the same runs in "
            f"several tables are merged; TSN reference rows left out). p: paired t-test; p Holm (table): "
            f"adjusted within its table; p Holm (all): adjusted over this whole family. Power: the chance "
            f"that this many seeds detect a true difference of {effect:+g} point at 5 % (two-sided paired "
            f"t-test) given the measured sd of the paired differences; seeds for ±{effect:g}: a 95 % interval "
            f"of ±{effect:g} point at that sd.")
    return "\n".join(lines) + "\n\n" + note + "\n"
