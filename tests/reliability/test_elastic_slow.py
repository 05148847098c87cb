"""Slow elastic-training test (``pytest -m slow``): ``train.workers=1-2`` on a local two-node Ray cluster
(head and node 2, 1 CPU each). Node 2 is stopped mid-run: the run goes on with one worker from the
latest checkpoint; node 2 is started again: the run grows back to two workers. Every epoch is in
MLflow exactly once, and the epoch metric ``workers`` shows the sizes 2 -> 1 -> 2 in that order.

Like the other two-node tests, it runs the driver in a subprocess with ``RAY_ADDRESS`` set and ends
only the processes it started (their process groups and whatever still names its temp dirs)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_faults_slow import _assert_each_epoch_once, _wait_for
from test_slow_runs import _free_port, _stop
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


def _fatal_lines(temp_dir: Path) -> str:
    """The raylet's fatal (``C``) log lines of a node's session: why a `ray start` died."""
    lines = []
    for f in sorted(temp_dir.glob("session_*/logs/raylet.out")):
        lines += [ln[:300] for ln in f.read_text(errors="replace").splitlines() if " C " in ln[:40]]
    return "\n".join(lines[-3:]) or "(no fatal raylet line)"


def _wait_for_nodes(address: str, env: dict[str, str], count: int, nodes: list[tuple[subprocess.Popen, Path]],
                    timeout: float = 600.0) -> None:
    """Until ``count`` nodes are alive. A probe that hangs (a loaded machine: Ray's 5 s connection
    deadlines pass) is abandoned and tried again rather than failing the test; a node process that
    exited fails it at once, with its raylet's fatal line."""
    probe = "import ray; ray.init(_node_ip_address='127.0.0.1'); print(sum(n['Alive'] for n in ray.nodes()))"
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc, temp_dir in nodes:
            if proc.poll() is not None:
                raise AssertionError(f"`ray start` ({temp_dir}) exited with {proc.returncode}:\n{_fatal_lines(temp_dir)}")
        try:
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                                 env={**env, "RAY_ADDRESS": address})
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)
    raise AssertionError(f"the cluster at {address} did not reach {count} nodes in {timeout:.0f}s")


def _start_node(address: str, temp_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        ["ray", "start", "--block", f"--address={address}", "--num-cpus=1", "--num-gpus=0",
         f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _workers_by_epoch(uri: str, run_id: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(uri).get_metric_history(run_id, "workers")
    return [int(m.value) for m in sorted(history, key=lambda m: m.step)]


def test_elastic_run_shrinks_on_node_loss_and_grows_back(tiny_experiment, tmp_path):
    port = _free_port()
    head_tmp = Path(tempfile.mkdtemp(prefix="tdrl-eh-"))
    node_tmps = [Path(tempfile.mkdtemp(prefix="tdrl-en-")) for _ in range(2)]  # node 2, then its return
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_AUTH_MODE": "token",
           # check every 5 s (Ray's default 60 s) whether the run can grow; Ray's resource view itself
           # refreshes every 20 s (its AutoscalingCoordinator's tick)
           "TDRL_ELASTIC_RESIZE_INTERVAL_S": "5"}
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    epochs = 24  # long enough that the return of node 2 is seen before the end (checked below)
    exp = tiny_experiment(train__workers="1-2", train__batch_size=4, train__epochs=epochs, train__name="elastic",
                          train__max_failures=6)
    run_dir = Path(exp.train.storage_path) / "elastic"
    log = tmp_path / "driver.log"
    marks = [str(head_tmp), *map(str, node_tmps)]
    try:
        procs.append(subprocess.Popen(
            ["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
             "--include-dashboard=false", f"--temp-dir={head_tmp}", "--disable-usage-stats",
             "--node-ip-address=127.0.0.1"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = f"127.0.0.1:{port}"
        _wait_for_nodes(address, env, 1, [(procs[0], head_tmp)])
        node2 = _start_node(address, node_tmps[0], env)
        procs.append(node2)
        _wait_for_nodes(address, env, 2, [(procs[0], head_tmp), (node2, node_tmps[0])])
        t0 = time.time()
        with open(log, "w") as out:
            driver = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(exp.flatten())],
                                      env={**env, "RAY_ADDRESS": address}, cwd=tmp_path, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(driver)
        _wait_for(lambda: (run_dir / "epoch_0001").is_dir(), 600, "epoch 1's checkpoint", driver, log)
        time.sleep(1.0)  # into epoch 3
        done_before = epoch_dirs(run_dir)
        _stop([node2], [str(node_tmps[0])])  # the whole second node, as a reclaimed spot instance
        t_lost = time.time() - t0
        # On one worker: a restart from the checkpoint, then a new checkpoint after it.
        _wait_for(lambda: len(re.findall(r"resumed from", log.read_text())) >= 1, 600, "the restart on one node",
                  driver, log)
        _wait_for(lambda: len(epoch_dirs(run_dir)) > len(done_before) + 1 or "RESULT " in log.read_text(), 600,
                  "an epoch on one worker", driver, log)
        procs.append(_start_node(address, node_tmps[1], env))  # node 2 comes back (a replacement node)
        t_back = time.time() - t0
        rc = driver.wait(timeout=1200)
        t_end = time.time() - t0
        text = log.read_text()
    finally:
        _stop(procs, marks)
        import shutil

        for d in [head_tmp, *node_tmps]:
            shutil.rmtree(d, ignore_errors=True)
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
