"""Paired statistics of a study row against its table's baseline, over seeds.

Every row of a study runs with the same seeds, and a seed fixes the same things in every row: the
data order, the augmentation draws, the backbone's initial weights and the training-time random
stream (``tdrl.train.loop`` re-seeds after building the model). So row and baseline runs of one
seed form a pair, and the question "does this component help" is answered by the differences
``d_s = row_s - baseline_s``:

- mean difference ``d̄`` over the seeds present in both rows;
- its 95 % confidence interval ``d̄ ± t_{0.975, n-1} · s_d / √n`` (Student's t with n-1 degrees of
  freedom, ``s_d`` the sample standard deviation of the differences);
- a two-sided paired t-test's p-value (``scipy.stats.ttest_rel``; the same t statistic);
- ``significant``: the interval excludes 0 (equivalently p < 0.05).

Edge cases, stated rather than guessed: with one pair there is no interval and no p-value
(``n = 1``); with no pair every field is NaN; when every pair differs by exactly the same amount
(``s_d = 0``, "ties") the interval collapses to that amount and the p-value is 1 if it is 0, else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

TEST_NAME = "paired t-test, two-sided"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Paired:
    """A row's difference to the baseline over the seeds both have."""

    n: int  # pairs (seeds present in both)
    mean: float  # mean difference, row - baseline (points)
    low: float  # CI bounds; NaN with fewer than 2 pairs
    high: float
    p: float  # NaN with fewer than 2 pairs

    @property
    def significant(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


def paired_difference(row: Mapping[int, float], baseline: Mapping[int, float],
                      confidence: float = CONFIDENCE) -> Paired:
    """Paired statistics of ``row`` minus ``baseline``, both keyed by seed."""
    from scipy import stats  # seconds to import: not on the path of `tdrl tables --help`

    nan = float("nan")
    seeds = sorted(set(row) & set(baseline))
    diffs = [float(row[s]) - float(baseline[s]) for s in seeds]
    n = len(diffs)
    if n == 0:
        return Paired(0, nan, nan, nan, nan)
    mean = sum(diffs) / n
    if n == 1:
        return Paired(1, mean, nan, nan, nan)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:  # ties: every seed moved by the same amount
        return Paired(n, mean, mean, mean, 1.0 if mean == 0.0 else 0.0)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_rel([row[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return Paired(n, mean, mean - half, mean + half, p)


def fmt_difference(d: Paired, digits: int = 1) -> str:
    """``+2.3 [+0.4, +4.2] *``; ``+2.3 (1 seed: no interval)``; ``–`` without pairs."""
    if d.n == 0 or math.isnan(d.mean):
        return "–"
    if d.n == 1:
        return f"{d.mean:+.{digits}f} (1 seed: no interval)"
    mark = " *" if d.significant else ""
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]{mark}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
