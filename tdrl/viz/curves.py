"""Learning curves of one training run, read back from MLflow: loss, top-1 and the TD term per epoch.

The training loop logs one point per metric per epoch with ``step = epoch`` (``tdrl.train.tracking``):
``train_loss`` (CE + lambda * TD), ``train_ce``, ``train_td`` (the unweighted TD term), ``train_top1``,
``val_loss``, ``val_top1``, ``val_top5``. Panels show whichever of them the run has, so a run that
stopped early or an older run with fewer metrics still gets a figure.

:func:`log_learning_curves` is for the end of a training run: it draws the figure and stores the
PNG as an artifact of the same run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tdrl.config.base import InputError
from tdrl.train.tracking import SCORE, get_run, log_artifacts, mlflow_client, with_retry

# panel title -> (metric keys drawn in it, y label)
PANELS: dict[str, tuple[tuple[str, ...], str]] = {
    "loss": (("train_loss", "train_ce", "val_loss"), "loss"),
    "top-1 / top-5": (("train_top1", SCORE, "val_top5"), "accuracy (%)"),
    "TD term": (("train_td",), "TD term (sum over blocks)"),
}
ARTIFACT_DIR = "figures"
ARTIFACT_NAME = "learning_curves.png"

History = Mapping[str, Sequence[tuple[int, float]]]  # metric -> [(epoch, value), ...]


def fetch_history(run_id: str, tracking_uri: str, metrics: Sequence[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch ``(step, value)`` pairs of ``metrics`` (default: all panels' metrics) of run ``run_id``.

    If a step was logged more than once, the last-logged value wins; missing metrics are left out.
    """
    get_run(tracking_uri, run_id)  # fails with MLflow's own "run not found" message naming the id
    client = mlflow_client(tracking_uri)
    wanted = metrics or [m for keys, _ in PANELS.values() for m in keys]
    out: dict[str, list[tuple[int, float]]] = {}
    for key in wanted:
        history = with_retry(lambda: client.get_metric_history(run_id, key), tracking_uri)
        points = sorted(history, key=lambda m: (m.step, m.timestamp))
        by_step = {m.step: m.value for m in points}
        if by_step:
            out[key] = sorted(by_step.items())
    return out


def build_curves_figure(history: History, *, title: str = "") -> Figure:
    """Three panels side by side (loss, top-1, TD term) against epoch; ``fig.axes`` has the three panels."""
    fig = Figure(figsize=(12, 3.6), dpi=100)
    axes = fig.subplots(1, len(PANELS))
    for ax, (panel, (keys, ylabel)) in zip(axes, PANELS.items()):
        drawn = 0
        for key in keys:
            points = history.get(key) or []
            if not points:
                continue
            # Epochs are 0-based in the log; show them 1-based as training prints them.
            ax.plot([s + 1 for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=key)
            drawn += 1
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_learning_curves(run_id: str, tracking_uri: str, out: str | Path) -> Path:
    """Draw the curves of run ``run_id`` to PNG ``out``; returns the path."""
    history = fetch_history(run_id, tracking_uri)
    if not history:
        raise InputError(f"MLflow run {run_id} at {tracking_uri} has no per-epoch metrics "
                         f"({', '.join(k for keys, _ in PANELS.values() for k in keys)})")
    name = get_run(tracking_uri, run_id).info.run_name or ""
    fig = build_curves_figure(history, title=f"{name} (MLflow run {run_id})" if name else f"MLflow run {run_id}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, format="png")
    return out


def log_learning_curves(run_id: str, tracking_uri: str) -> str:
    """Draw run ``run_id``'s curves and log the PNG to that run as ``figures/learning_curves.png``.

    Returns the artifact path. Works on a finished or running run (it uses the client, not the
    active-run context, so it can be called from the driver after the workers ended).
    """
    with tempfile.TemporaryDirectory(prefix="tdrl-curves-") as tmp:
        png = save_learning_curves(run_id, tracking_uri, Path(tmp) / ARTIFACT_NAME)
        log_artifacts(tracking_uri, run_id, [png], artifact_path=ARTIFACT_DIR)
    return f"{ARTIFACT_DIR}/{ARTIFACT_NAME}"
