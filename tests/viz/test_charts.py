"""Learning curves from an MLflow run and the study bar chart."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tdrl.viz.curves import build_curves_figure, fetch_history, log_learning_curves, save_learning_curves
from tdrl.viz.study_chart import build_difference_chart, build_study_chart, log_study_chart, save_study_chart

from .helpers import check_png

METRICS = {"train_loss": 1.6, "train_ce": 1.5, "train_td": 2.0, "train_top1": 30.0,
           "val_loss": 1.7, "val_top1": 25.0, "val_top5": 80.0}


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    """A run in a fresh SQLite store with 3 epochs logged the way the training loop logs them."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from tdrl.train.tracking import experiment_id

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(experiment_id(uri, "viz-test")).info.run_id
    for epoch in range(3):
        client.log_batch(run_id, metrics=[Metric(k, v - 0.1 * epoch, 0, epoch) for k, v in METRICS.items()])
    return uri, run_id


def test_history_and_figure(mlflow_run, tmp_path):
    uri, run_id = mlflow_run
    history = fetch_history(run_id, uri)
    assert set(history) == set(METRICS)
    assert [s for s, _ in history["train_td"]] == [0, 1, 2]
    assert history["val_top1"][2][1] == pytest.approx(24.8)
    fig = build_curves_figure(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "top-1 / top-5", "TD term"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3, 1]
    xs, ys = fig.axes[2].get_lines()[0].get_data()
    assert list(xs) == [1, 2, 3] and list(ys) == pytest.approx([2.0, 1.9, 1.8])
    out = save_learning_curves(run_id, uri, tmp_path / "curves.png")
    check_png(out, fig, 100)


def test_partial_history_marks_missing_panels():
    fig = build_curves_figure({"train_loss": [(0, 1.0), (1, 0.5)]})
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 0, 0]
    assert "not logged" in [t.get_text() for t in fig.axes[2].texts]


def test_log_artifacts(mlflow_run):
    from mlflow.tracking import MlflowClient

    uri, run_id = mlflow_run
    assert log_learning_curves(run_id, uri) == "figures/learning_curves.png"
    df = pd.DataFrame({"row": ["baseline", "+PEM"], "measured_mean": [40.0, 42.0],
                       "measured_std": [1.0, 0.5], "paper": [46.1, 48.7]})
    assert log_study_chart(df, run_id, uri, name="table4.png", title="Table 4") == "figures/table4.png"
    names = {f.path for f in MlflowClient(tracking_uri=uri).list_artifacts(run_id, "figures")}
    assert names == {"figures/learning_curves.png", "figures/table4.png"}


def test_curves_cli(mlflow_run, tmp_path, capsys):
    from tdrl.cli import main

    uri, run_id = mlflow_run
    assert main(["visualize", "curves", "--run-id", run_id, "--mlflow-uri", uri, "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["visualize", "curves", "--run-id", "0" * 32, "--mlflow-uri", uri, "--out", str(tmp_path / "d.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tdrl visualize curves: error: ") and "not found" in err and "Traceback" not in err
    # --log also stores the PNG on the run (log_learning_curves), where docs/figures.md says it goes.
    assert main(["visualize", "curves", "--run-id", run_id, "--mlflow-uri", uri, "--out", str(tmp_path / "e.png"),
                 "--log"]) == 0
    from tdrl.train.tracking import mlflow_client

    assert "figures/learning_curves.png" in {f.path for f in mlflow_client(uri).list_artifacts(run_id, "figures")}


def test_study_chart_bars_errorbars_and_missing_paper(tmp_path):
    df = pd.DataFrame({"row": ["0", "1e-4", "2e-4", "extra"], "measured_mean": [40.0, 41.5, 42.0, 39.0],
                       "measured_std": [0.5, float("nan"), 1.2, 0.0], "paper": [46.1, 47.9, 48.4, np.nan]})
    fig = build_study_chart(df, title="Table 7")
    ax = fig.axes[0]
    from matplotlib.container import BarContainer

    measured, paper = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [r.get_height() for r in measured] == [40.0, 41.5, 42.0, 39.0]
    heights = [r.get_height() for r in paper]
    assert heights[:3] == [46.1, 47.9, 48.4] and math.isnan(heights[3])
    # error bars: one segment per row, half-length = std (NaN std drawn as 0)
    segs = measured.errorbar.lines[2][0].get_segments()
    assert [round(s[1][1] - s[0][1], 6) / 2 for s in segs] == [0.5, 0.0, 1.2, 0.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1e-4", "2e-4", "extra"]
    check_png(save_study_chart(df, tmp_path / "s.png", title="Table 7"), fig, 100)
    with pytest.raises(ValueError, match="paper"):
        build_study_chart(df.drop(columns=["paper"]))


def test_difference_chart_names_the_paper_only_where_it_has_numbers():
    df = pd.DataFrame({"row": ["#1", "#2"], "measured": [-1.0, 1.1], "low": [-2.8, -3.4], "high": [0.7, 5.5],
                       "paper": [np.nan, np.nan]})
    legend = build_difference_chart(df).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["measured (paired mean, 95% CI)"]
    legend = build_difference_chart(df.assign(paper=[0.5, np.nan])).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["measured (paired mean, 95% CI)", "paper (SSv1)"]
