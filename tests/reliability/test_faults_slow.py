"""Slow fault tests (``pytest -m slow``): a Ray node stopped mid-run, and the MLflow tracking server
stopped and restarted during a run. Both run the training driver in a subprocess (its own Ray
instance or cluster, its own environment) and stop only the processes they started.

The other faults of docs/reliability.md are covered where they already live: a worker killed
mid-epoch in tests/train/test_train_ray.py, the study driver killed and resumed in
tests/study/test_study_cluster.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_cluster import LocalCluster
from rel_helpers import MlflowServer, kill_group
from train_helpers import epoch_dirs, metric_steps, runs_of

pytestmark = pytest.mark.slow

KEYS = ("epoch", "train_loss", "train_ce", "train_td", "train_top1", "val_loss", "val_top1", "val_top5", "lr",
        "clips_per_s", "skipped", "epoch_time_s")


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def _assert_each_epoch_once(uri: str, run_id: str, epochs: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for key in KEYS:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(epochs)), f"{key}: steps {sorted(steps)}"  # none lost, none twice


# --- the MLflow server goes away and comes back ---------------------------------------------------

LOCAL_DRIVER = r"""
import json, sys
from tdrl.config.experiment import Experiment
from tdrl.train.trainer import fit
result = fit(Experiment.from_flat(json.loads(sys.argv[1])))  # starts its own local Ray
print("RESULT " + json.dumps({"epoch": result.metrics["epoch"], "run_id": result.mlflow_run_id}), flush=True)
"""


@pytest.mark.parametrize("mode", ["tdrl-queue", "mlflow-client-retry"])
def test_mlflow_server_restart_during_training(tiny_experiment, tmp_path, mode):
    """Kill the server once epoch 0 is logged, restart it on the same port ~10 s later. Training goes
    on (tdrl-queue: MLflow's own HTTP retries off, so tdrl queues the points) or waits inside MLflow's
    client retry (default settings); at the end every metric has each epoch exactly once."""
    epochs = 16  # ~1 s each here: the outage (~15 s with the restart) falls inside training
    server = MlflowServer(tmp_path / "mlflow-server")
    server.start()
    exp = tiny_experiment(train__epochs=epochs, train__mlflow_uri=server.uri, train__name="mlflow-restart")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "TDRL_MLFLOW_FLUSH_TIMEOUT_S": "180"})
    if mode == "tdrl-queue":
        env.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"})
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen([sys.executable, "-c", LOCAL_DRIVER, json.dumps(exp.flatten())], env=env,
                                  cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    run_dir = Path(exp.train.storage_path) / "mlflow-restart"
    down_at = up_at = 0.0
    during: list[str] = []
    try:
        def epoch0_logged():
            if not (run_dir / "epoch_0000").is_dir():
                return False
            runs = runs_of(server.uri, "tests")
            return bool(runs) and 0 in metric_steps(server.uri, runs[0].info.run_id, "train_loss")

        _wait_for(epoch0_logged, 300, "epoch 0 in MLflow", driver, log)
        server.stop()
        down_at = time.time()
        time.sleep(10)
        during = epoch_dirs(run_dir)  # epochs checkpointed while the server was away
        server.start()  # same port, same store
        up_at = time.time()
        rc = driver.wait(timeout=480)
    finally:
        if driver.poll() is None:
            kill_group(driver)
        text = log.read_text()
        server.stop()
        server.start()
    assert rc == 0, text[-6000:]
    res = json.loads(next(ln for ln in text.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    print(f"{mode}: server down {up_at - down_at:.0f}s; checkpoints {epoch_dirs(run_dir)}; "
          f"queued warnings: {text.count('queued, sent when it is back')}; checkpoints while down: {during}")
    assert res["epoch"] == epochs - 1
    assert len(during) >= 2, "no epoch finished while the server was away: the outage missed the run"
    assert len(runs_of(server.uri, "tests")) == 1
    _assert_each_epoch_once(server.uri, res["run_id"], epochs)
    from mlflow.tracking import MlflowClient

    assert MlflowClient(server.uri).get_run(res["run_id"]).info.status == "FINISHED"
    assert "resumed from" not in text, "the outage must not have cost a worker restart"
    if mode == "tdrl-queue":
        assert "queued, sent when it is back" in text, text[-4000:]
    server.stop()


# --- a whole Ray node stops --------------------------------------------------------------------------

NODE_DRIVER = r"""
import json, sys, threading, time, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tdrl.config.experiment import Experiment
from tdrl.train.trainer import fit
ray.init()  # RAY_ADDRESS: head (1 CPU) + node 2 (1 CPU)
head = ray.get_runtime_context().get_node_id()
node2 = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head)

@ray.remote(num_cpus=1)
class Blocker:
    def ready(self):
        return True

# Hold the head's CPU so the training worker must start on node 2; free it once node 2 is gone,
# as an autoscaler would bring capacity back.
blocker = Blocker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote()
ray.get(blocker.ready.remote())

def release():
    while node2 in {n["NodeID"] for n in ray.nodes() if n["Alive"]}:
        time.sleep(0.5)
    print("NODE2-LOST", flush=True)
    ray.kill(blocker)

threading.Thread(target=release, daemon=True).start()
result = fit(Experiment.from_flat(json.loads(sys.argv[1])))
print("RESULT " + json.dumps({"epoch": result.metrics["epoch"], "run_id": result.mlflow_run_id}), flush=True)
"""


def test_ray_node_stopped_mid_run_resumes_on_the_remaining_node(tiny_experiment, tmp_path):
    epochs = 5
    exp = tiny_experiment(train__epochs=epochs, train__name="node-stop", train__max_failures=2)
    run_dir = Path(exp.train.storage_path) / "node-stop"
    log = tmp_path / "driver.log"
    with LocalCluster() as cluster:  # head: 1 CPU
        node2 = cluster.add_node()
        driver = cluster.start_driver(NODE_DRIVER, [json.dumps(exp.flatten())], log, tmp_path)
        _wait_for(lambda: (run_dir / "epoch_0001").is_dir(), 360, "epoch 1's checkpoint", driver, log)
        time.sleep(1.0)  # mid-way through epoch 2
        done_before = epoch_dirs(run_dir)
        cluster.stop_node(node2)  # the whole second node: raylet, its workers, everything
        rc = driver.wait(timeout=480)
        text = log.read_text()
    assert rc == 0, text[-6000:]
    assert "NODE2-LOST" in text, text[-4000:]
    resumed = re.findall(r"resumed from \S*(epoch_\d{4})", text)
    print(f"checkpoints when node 2 stopped: {done_before}; resumed from: {resumed}")
    assert resumed, "the run did not restart from a checkpoint:\n" + text[-4000:]
    # Finished epochs are not redone: the restart began after the newest checkpoint written before the stop.
    assert resumed[-1] == done_before[-1], (resumed, done_before)
    res = json.loads(next(ln for ln in text.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert res["epoch"] == epochs - 1
    assert len(runs_of(exp.train.mlflow_uri, "tests")) == 1
    _assert_each_epoch_once(exp.train.mlflow_uri, res["run_id"], epochs)
