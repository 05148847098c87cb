"""Study charts: per row of a paper table, the measured result beside the paper's.

Two charts, both keeping the DataFrame's row order (the order of the paper's table):

- :func:`build_study_chart`: absolute accuracy, columns ``row`` (label, e.g. "+PEM"),
  ``measured_mean``, ``measured_std`` (NaN or 0 for a single seed) and ``paper`` (NaN where the
  paper gives no number);
- :func:`build_difference_chart`: each row's difference to its table's baseline, the quantity a
  synthetic benchmark and Something-Something V1 can share; columns ``row``, ``measured`` (paired
  mean difference), ``low``/``high`` (its 95 % interval, NaN with one seed) and ``paper``.
"""

from __future__ import annotations

import math
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from tdrl.train.tracking import log_artifacts

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("row", "measured_mean", "measured_std", "paper")
ARTIFACT_DIR = "figures"


def _check(df: "pd.DataFrame") -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"study chart: DataFrame lacks column(s) {', '.join(missing)}; "
                         f"expected {', '.join(COLUMNS)}, got {', '.join(map(str, df.columns))}")
    if len(df) == 0:
        raise ValueError("study chart: the DataFrame has no rows")


def build_study_chart(df: "pd.DataFrame", *, title: str = "", ylabel: str = "top-1 (%)",
                      measured_label: str = "measured (mean ± std)", paper_label: str = "paper") -> Figure:
    """Grouped bars, two per row: measured mean with a std error bar, and the paper's number.

    ``fig.axes[0]`` holds the bars: its two ``BarContainer`` s are the measured bars (with the
    error bars as ``.errorbar``) and the paper's, in that order.
    """
    _check(df)
    labels = [str(r) for r in df["row"]]
    mean = df["measured_mean"].astype(float).to_numpy()
    std = np.nan_to_num(df["measured_std"].astype(float).to_numpy(), nan=0.0)
    paper = df["paper"].astype(float).to_numpy()
    x = np.arange(len(labels))
    width = 0.38
    fig = Figure(figsize=(_width(labels, 1.1), 4.0), dpi=100)
    ax = fig.subplots()
    bars = ax.bar(x - width / 2, mean, width, yerr=std, capsize=3, label=measured_label, color="tab:blue")
    # NaN paper values draw no bar (matplotlib skips NaN heights), i.e. "the paper has no number".
    pbars = ax.bar(x + width / 2, paper, width, label=paper_label, color="tab:grey")
    for rect, value, err in zip(bars, mean, std):
        if math.isfinite(value):
            ax.annotate(f"{value:.1f}" + (f"±{err:.1f}" if err > 0 else ""), (rect.get_x() + rect.get_width() / 2,
                        value + err), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    for rect, value in zip(pbars, paper):
        if math.isfinite(value):
            ax.annotate(f"{value:.1f}", (rect.get_x() + rect.get_width() / 2, value), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
    _set_ticks(ax, x, labels)
    ax.set_ylabel(ylabel)
    # Headroom above the tallest bar/error bar so the legend and value labels never cover bars.
    tops = [v for v in np.concatenate([mean + std, paper]) if math.isfinite(v)]
    if tops and max(tops) > 0:
        ax.set_ylim(top=max(tops) * 1.25)
    return _finish(fig, ax, title)


DIFF_COLUMNS = ("row", "measured", "low", "high", "paper")


WRAP = 24  # labels longer than this (a search's configurations) are wrapped upright, not rotated


def _width(labels: list[str], per: float) -> float:
    """Figure width (inches): ``per`` per row, more for wrapped labels, at least 5."""
    wrapped = max(map(len, labels)) > WRAP
    return max(5.0, (max(per, 1.9) if wrapped else per) * len(labels) + 2.0)


def _set_ticks(ax, x, labels: list[str]) -> None:
    """Row labels under the bars: short ones as they are, mid-length ones rotated, long ones wrapped."""
    longest = max(map(len, labels))
    if longest > WRAP:
        ax.set_xticks(x, ["\n".join(textwrap.wrap(label, WRAP - 2)) for label in labels], fontsize=8)
    else:
        ax.set_xticks(x, labels, rotation=20 if longest > 8 else 0, ha="right" if longest > 8 else "center")


def _finish(fig: Figure, ax, title: str) -> Figure:
    """Legend, grid and wrapped title, shared by both charts."""
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, width=int(fig.get_figwidth() * 9))), fontsize=10)
    fig.tight_layout()
    return fig


def build_difference_chart(df: "pd.DataFrame", *, title: str = "",
                           ylabel: str = "top-1 difference to the baseline (points)") -> Figure:
    """Grouped bars per row: measured paired difference (error bar = its 95 % interval) and the paper's.

    ``fig.axes[0]`` holds two ``BarContainer`` s, measured (interval as ``.errorbar``) then paper.
    """
    missing = [c for c in DIFF_COLUMNS if c not in df.columns]
    if missing or len(df) == 0:
        raise ValueError(f"difference chart: needs rows and columns {', '.join(DIFF_COLUMNS)}; "
                         f"got {len(df)} rows and {', '.join(map(str, df.columns))}")
    labels = [str(r) for r in df["row"]]
    measured = df["measured"].astype(float).to_numpy()
    low = df["low"].astype(float).to_numpy()
    high = df["high"].astype(float).to_numpy()
    paper = df["paper"].astype(float).to_numpy()
    has_ci = np.isfinite(low) & np.isfinite(high)
    err = np.vstack([np.where(has_ci, measured - low, 0.0), np.where(has_ci, high - measured, 0.0)])
    x = np.arange(len(labels))
    width = 0.38
    fig = Figure(figsize=(_width(labels, 1.2), 4.0), dpi=100)
    ax = fig.subplots()
    bars = ax.bar(x - width / 2, np.nan_to_num(measured), width, yerr=err, capsize=3, color="tab:blue",
                  label="measured (paired mean, 95% CI)")
    ax.bar(x + width / 2, paper, width, color="tab:grey", label="paper (SSv1)")
    for rect, value, ok, hi, lo in zip(bars, measured, has_ci, high, low):
        if math.isfinite(value):
            top = (hi if value >= 0 else lo) if ok else value
            ax.annotate(f"{value:+.1f}", (rect.get_x() + rect.get_width() / 2, top), ha="center",
                        va="bottom" if value >= 0 else "top", fontsize=7,
                        xytext=(0, 2 if value >= 0 else -2), textcoords="offset points")
    ax.axhline(0.0, color="black", linewidth=0.8)
    _set_ticks(ax, x, labels)
    ax.set_ylabel(ylabel)
    spread = [abs(v) for v in np.concatenate([low, high, measured, paper]) if math.isfinite(v)]
    if spread:
        lim = max(spread) * 1.35 + 0.5
        ax.set_ylim(-lim, lim)
    return _finish(fig, ax, title)


def save_difference_chart(df: "pd.DataFrame", out: str | Path, **kwargs) -> Path:
    """:func:`build_difference_chart` written to PNG ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_difference_chart(df, **kwargs).savefig(out, dpi=100, format="png")
    return out


def save_study_chart(df: "pd.DataFrame", out: str | Path, **kwargs) -> Path:
    """:func:`build_study_chart` written to PNG ``out``; keyword arguments go to the builder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_study_chart(df, **kwargs).savefig(out, dpi=100, format="png")
    return out


def log_study_chart(df: "pd.DataFrame", run_id: str, tracking_uri: str, name: str = "study_chart.png",
                    **kwargs) -> str:
    """Draw the chart and log it to MLflow run ``run_id`` as ``figures/<name>``; returns that artifact path."""
    with tempfile.TemporaryDirectory(prefix="tdrl-study-chart-") as tmp:
        png = save_study_chart(df, Path(tmp) / name, **kwargs)
        log_artifacts(tracking_uri, run_id, [png], artifact_path=ARTIFACT_DIR)
    return f"{ARTIFACT_DIR}/{name}"
