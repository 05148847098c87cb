"""Study charts: per row of a paper table, the measured mean +- std beside the paper's number.

Input is a pandas DataFrame with columns ``row`` (label, e.g. "+PEM"), ``measured_mean``,
``measured_std`` (NaN or 0 for a single seed) and ``paper`` (NaN where the paper gives no number).
Bars keep the DataFrame's row order, the order of the paper's table.
"""

from __future__ import annotations

import math
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

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
    fig = Figure(figsize=(max(5.0, 1.1 * len(labels) + 2.0), 4.0), dpi=100)
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
    ax.set_xticks(x, labels, rotation=20 if max(map(len, labels)) > 8 else 0, ha="right" if max(map(len, labels)) > 8 else "center")
    ax.set_ylabel(ylabel)
    # Headroom above the tallest bar/error bar so the legend and value labels never cover bars.
    tops = [v for v in np.concatenate([mean + std, paper]) if math.isfinite(v)]
    if tops and max(tops) > 0:
        ax.set_ylim(top=max(tops) * 1.25)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, width=int(fig.get_figwidth() * 9))), fontsize=10)
    fig.tight_layout()
    return fig


def save_study_chart(df: "pd.DataFrame", out: str | Path, **kwargs) -> Path:
    """:func:`build_study_chart` written to PNG ``out``; keyword arguments go to the builder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_study_chart(df, **kwargs).savefig(out, dpi=100, format="png")
    return out


def log_study_chart(df: "pd.DataFrame", run_id: str, tracking_uri: str, name: str = "study_chart.png",
                    **kwargs) -> str:
    """Draw the chart and log it to MLflow run ``run_id`` as ``figures/<name>``; returns that artifact path."""
    from tdrl.train.tracking import log_artifacts

    with tempfile.TemporaryDirectory(prefix="tdrl-study-chart-") as tmp:
        png = save_study_chart(df, Path(tmp) / name, **kwargs)
        log_artifacts(tracking_uri, run_id, [png], artifact_path=ARTIFACT_DIR)
    return f"{ARTIFACT_DIR}/{name}"
