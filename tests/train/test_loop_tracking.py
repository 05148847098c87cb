"""The per-worker loop logs every epoch's reported metrics, the learning rate of that epoch included,
to the driver's MLflow run (``_run["mlflow_run_id"]``), not to another run and not a subset.

The real loop in this process (Ray Train local mode, no Ray instance), two epochs on a 12-clip
synthetic set, an MLflow SQLite store in the test's folder; the driver's run comes from
``tracking.start_run`` as ``trainer.fit`` makes it.
"""

from __future__ import annotations

import pytest

from train_helpers import train_in_process

LR_PER_64, BATCH, STEPS = 0.4, 4, "1"  # lr 0.025, times 0.1 from epoch 1 on


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory) -> str:
    """2 classes, 4 training and 2 validation clips each, 4 frames of 32 px."""
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth-track")
    generate_synthetic(root, num_classes=2, train_per_class=4, val_per_class=2, frames=4, size=32, seed=0, workers=1)
    return str(root)


def test_every_epoch_reaches_the_drivers_mlflow_run(micro_data, tmp_path):
    from mlflow.tracking import MlflowClient

    from tdrl.train import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, resumed = tracking.start_run(uri, "tests", "tracked", {"train.epochs": 2})
    assert not resumed
    other, _ = tracking.start_run(uri, "tests", "bystander", {})
    reported = train_in_process(micro_data, tmp_path, run={"mlflow_uri": uri, "mlflow_run_id": run_id},
                                **{"train.epochs": 2, "train.batch_size": BATCH, "train.lr_per_64": LR_PER_64,
                                   "train.lr_steps": STEPS, "train.lr_gamma": 0.1})
    assert [m["epoch"] for m in reported] == [0, 1]
    lr = LR_PER_64 * BATCH / 64
    assert [m["lr"] for m in reported] == pytest.approx([lr, 0.1 * lr])  # each epoch's own lr, as trained
    client = MlflowClient(uri)
    for key in ("train_loss", "train_ce", "train_td", "train_top1", "val_top1", "val_top5", "val_loss", "lr"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert history == [(e, pytest.approx(m[key], rel=1e-6)) for e, m in enumerate(reported)], key
    assert client.get_run(other).data.metrics == {}  # nothing went to another run
