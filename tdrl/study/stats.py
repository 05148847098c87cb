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

A table makes several such comparisons (each row against one baseline), so it also reports each p
adjusted for the family of its comparisons by Holm's step-down method (:func:`holm`): it controls the
probability of any false rejection among them at the nominal level, for any dependence between the
tests (the rows share the baseline's runs), and rejects at least what Bonferroni rejects.

Edge cases, stated rather than guessed: with one pair there is no interval and no p-value
(``n = 1``); with no pair every field is NaN; when every pair differs by exactly the same amount
(``s_d = 0``, "ties") the interval collapses to that amount and the p-value is 1 if it is 0, else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

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


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order; NaN stays NaN and is not counted in the family.

    With the m valid p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the i-th adjusted value is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``: the smallest is multiplied by m, the next by m - 1, ...,
    and the running maximum keeps the adjusted values in the order of the raw ones.
    """
    valid = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(valid)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for j, (p, i) in enumerate(valid):  # j = 0 is the smallest: factor m
        running = max(running, min(1.0, (m - j) * p))
        out[i] = running
    return out


def paired_power(n: int, effect: float, sd: float, confidence: float = CONFIDENCE) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs to detect a true mean difference ``effect``
    when the differences have standard deviation ``sd``: the probability that a noncentral t with
    ``n - 1`` degrees of freedom and noncentrality ``effect / (sd / sqrt(n))`` falls beyond the test's
    critical value on either side."""
    from scipy import stats  # scipy: seconds to import, off the light commands' path

    if n < 2:
        return float("nan")
    df, nc = n - 1, effect / (sd / math.sqrt(n))
    crit = float(stats.t.ppf(0.5 + confidence / 2, df))
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_for_halfwidth(sd: float, halfwidth: float, confidence: float = CONFIDENCE, limit: int = 10_000) -> int:
    """The fewest pairs whose t interval of the mean difference is at most ``± halfwidth``, for
    differences of standard deviation ``sd``: the smallest n >= 2 with t_{n-1} sd / sqrt(n) <= halfwidth."""
    from scipy import stats  # scipy: seconds to import, off the light commands' path

    for n in range(2, limit + 1):
        if float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n) <= halfwidth:
            return n
    raise ValueError(f"more than {limit} pairs needed for ±{halfwidth} at sd {sd}")


def seeds_for_power(effect: float, sd: float, power: float = 0.8, confidence: float = CONFIDENCE,
                    limit: int = 10_000) -> int:
    """The fewest pairs for which :func:`paired_power` reaches ``power`` at a true difference ``effect``."""
    for n in range(2, limit + 1):
        if paired_power(n, effect, sd, confidence) >= power:
            return n
    raise ValueError(f"more than {limit} pairs needed for power {power} at effect {effect}, sd {sd}")


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
