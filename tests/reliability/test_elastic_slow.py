"""Slow elastic-training test (``pytest -m slow``): ``train.workers=1-2`` on a local two-node Ray cluster
(head and node 2, 1 CPU each). Node 2 is stopped mid-run: the run goes on with one worker from the
latest checkpoint; node 2 is started again: the run grows back to two workers. Every epoch is in
MLflow exactly once, and the epoch metric ``workers`` shows the sizes 2 -> 1 -> 2 in that order.

Like the other two-node tests, it runs on tests/local_cluster.py: the driver in a subprocess with
``RAY_ADDRESS`` set, and only the processes the cluster started are ended."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest

from local_cluster import LocalCluster
from test_faults_slow import _assert_each_epoch_once, _wait_for
from train_helpers import epoch_dirs, metric_steps, runs_of

pytestmark = pytest.mark.slow

DRIVER = r"""
import json, sys, ray
from tdrl.config.experiment import Experiment
from tdrl.train.trainer import fit
ray.init(_node_ip_address="127.0.0.1")  # RAY_ADDRESS: head (1 CPU) + node 2 (1 CPU), both on 127.0.0.1
result = fit(Experiment.from_flat(json.loads(sys.argv[1])))
print("RESULT " + json.dumps({"epoch": result.metrics["epoch"], "run_id": result.mlflow_run_id}), flush=True)
"""


def _workers_by_epoch(uri: str, run_id: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(uri).get_metric_history(run_id, "workers")
    return [int(m.value) for m in sorted(history, key=lambda m: m.step)]


def test_elastic_run_shrinks_on_node_loss_and_grows_back(tiny_experiment, tmp_path):
    epochs = 24  # long enough that the return of node 2 is seen before the end (checked below)
    exp = tiny_experiment(train__workers="1-2", train__batch_size=4, train__epochs=epochs, train__name="elastic",
                          train__max_failures=6)
    run_dir = Path(exp.train.storage_path) / "elastic"
    log = tmp_path / "driver.log"
    # check every 5 s (Ray's default 60 s) whether the run can grow; Ray's resource view itself
    # refreshes every 20 s (its AutoscalingCoordinator's tick)
    with LocalCluster(env={"TDRL_ELASTIC_RESIZE_INTERVAL_S": "5"}) as cluster:  # head: 1 CPU
        node2 = cluster.add_node()
        t0 = time.time()
        driver = cluster.start_driver(DRIVER, [json.dumps(exp.flatten())], log, tmp_path)
        _wait_for(lambda: (run_dir / "epoch_0001").is_dir(), 600, "epoch 1's checkpoint", driver, log)
        time.sleep(1.0)  # into epoch 3
        done_before = epoch_dirs(run_dir)
        cluster.stop_node(node2)  # the whole second node, as a reclaimed spot instance
        t_lost = time.time() - t0
        # On one worker: a restart from the checkpoint, then a new checkpoint after it.
        _wait_for(lambda: len(re.findall(r"resumed from", log.read_text())) >= 1, 600, "the restart on one node",
                  driver, log)
        _wait_for(lambda: len(epoch_dirs(run_dir)) > len(done_before) + 1 or "RESULT " in log.read_text(), 600,
                  "an epoch on one worker", driver, log)
        cluster.add_node()  # node 2 comes back (a replacement node)
        t_back = time.time() - t0
        rc = driver.wait(timeout=1200)
        t_end = time.time() - t0
        text = log.read_text()
    assert rc == 0, text[-6000:]
    res = json.loads(next(ln for ln in text.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    uri = exp.train.mlflow_uri
    sizes = _workers_by_epoch(uri, res["run_id"])
    resumed = re.findall(r"resumed from \S*(epoch_\d{4})", text)
    print(f"node 2 lost at {t_lost:.0f}s, back at {t_back:.0f}s, run ended at {t_end:.0f}s; checkpoints when "
          f"lost: {done_before}; resumed from: {resumed}; workers by epoch: {sizes}")
    assert res["epoch"] == epochs - 1 and len(runs_of(uri, "tests")) == 1
    _assert_each_epoch_once(uri, res["run_id"], epochs)  # no epoch lost, none counted twice
    assert metric_steps(uri, res["run_id"], "workers") == list(range(epochs))
    # The sizes in order: two workers, then one after the loss, then two again after the return.
    assert [k for k, _ in itertools.groupby(sizes)] == [2, 1, 2], sizes
    # The first restart began after the newest checkpoint written before the stop: no finished epoch redone.
    assert resumed and resumed[0] == done_before[-1], (resumed, done_before)
