"""The same seed and configuration on CPU give the same metrics twice (a tiny 1-epoch run)."""

from __future__ import annotations

import pytest

from train_helpers import metric_steps

pytestmark = pytest.mark.usefixtures("ray_session")

TIMING = {"clips_per_s", "epoch_time_s"}  # wall-clock measurements, not results


def test_same_seed_same_metrics_twice(tiny_experiment):
    from tdrl.train.trainer import fit

    results = [fit(tiny_experiment(train__epochs=1, train__seed=3, train__name=f"det{i}")) for i in (0, 1)]
    a, b = ({k: v for k, v in r.metrics.items() if k not in TIMING} for r in results)
    assert a == b  # exact: same losses to the last bit, same accuracies
    assert a["train_loss"] > 0 and "val_top1" in a
    # MLflow holds each run's single epoch once.
    for r in results:
        assert metric_steps(r.mlflow_uri, r.mlflow_run_id, "train_loss") == [0]
