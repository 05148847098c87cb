"""Slow elastic-training test (``pytest -m slow``): ``train.workers=2-3`` on a local two-node Ray cluster
(the head with 2 CPUs, node 2 with 1; three CPU workers share this machine's two cores), as a spot node
is reclaimed and replaced:

- node 2 is a "spot node": ``cluster/spot_drain.py`` watches a stand-in EC2 metadata server for it;
  the test announces a reclaim there, the watcher drains node 2 as a preemption, and the test kills
  node 2 outright (SIGKILL, as the cloud ends the instance) once the notice's time is up;
- the run goes on with two workers from the latest checkpoint: DDP with gradient accumulation over
  micro-batches, every optimiser step still one global batch of 3 x 4 clips;
- a replacement node joins: the run grows back to three workers.

With ``train.max_failures=0`` the run still finishes: the reclaim is charged to Ray Train's preemption
budget, not to ``max_failures`` (tdrl/train/trainer.py). Every epoch is in MLflow exactly once; the
epoch metric ``workers`` shows 3 -> 2 -> 3; ``step_clips_min``/``max`` show each step's global batch;
the loss curve continues where the checkpoint left it.

Like the other two-node tests, it runs the driver in a subprocess with ``RAY_ADDRESS`` set and ends
only the processes it started (their process groups and whatever still names its temp dirs)."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_faults_slow import _assert_each_epoch_once, _wait_for
from local_cluster import fatal_lines, wait_for_nodes
from local_cluster import free_port as _free_port, pids_naming as _pids_naming, stop_processes as _stop
from train_helpers import epoch_dirs, metric_steps, runs_of

from tdrl.train.cluster import ray_command

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
from metadata_stub import Metadata, aws_notice_in  # noqa: E402

pytestmark = pytest.mark.slow

DRIVER = r"""
import json, sys, ray
from tdrl.config.experiment import Experiment
from tdrl.train.trainer import fit
ray.init(_node_ip_address="127.0.0.1")  # RAY_ADDRESS: head (2 CPUs) + node 2 (1 CPU), both on 127.0.0.1
result = fit(Experiment.from_flat(json.loads(sys.argv[1])))
print("RESULT " + json.dumps({"epoch": result.metrics["epoch"], "run_id": result.mlflow_run_id}), flush=True)
"""


def _wait_for_nodes(address: str, env: dict[str, str], count: int, nodes: list[tuple[subprocess.Popen, Path]],
                    timeout: float = 600.0) -> None:
    """Until ``count`` nodes are alive (:func:`local_cluster.wait_for_nodes`); a node process that exited
    fails the test at once, with its raylet's fatal line."""
    def check() -> None:
        for proc, temp_dir in nodes:
            if proc.poll() is not None:
                raise AssertionError(f"`ray start` ({temp_dir}) exited with {proc.returncode}:\n"
                                     f"{fatal_lines(temp_dir)}")

    wait_for_nodes({**env, "RAY_ADDRESS": address}, count, check, timeout)


def _agent_ports() -> list[str]:
    """Free ports for a node's agents. Their defaults are fixed (the dashboard agent's HTTP port is
    52365): with another Ray instance on the machine holding them, the agent cannot bind, never writes
    its port file, and the raylet aborts after 15 s (``WaitForDashboardAgentPorts``)."""
    return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]


def _start_node(address: str, temp_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*ray_command(), "start", "--block", f"--address={address}", "--num-cpus=1", "--num-gpus=0",
         f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", *_agent_ports()],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_node(proc: subprocess.Popen, temp_dir: Path) -> None:
    """The node ends as an instance the cloud takes away: SIGKILL, no SIGTERM (whose handler in
    ``ray start --block`` would drain the node itself), its process group and all that names its dir."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    for pid in _pids_naming([str(temp_dir)]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _by_epoch(uri: str, run_id: str, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(uri).get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def test_elastic_run_goes_3_2_3_through_a_spot_reclaim_without_spending_max_failures(tiny_experiment, tmp_path):
    port = _free_port()
    head_tmp = Path(tempfile.mkdtemp(prefix="tdrl-eh-"))
    node_tmps = [Path(tempfile.mkdtemp(prefix="tdrl-en-")) for _ in range(2)]  # node 2, then its replacement
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_AUTH_MODE": "token",
           # Ray's memory monitor kills workers when the *machine* passes 95 % of its memory: on a shared
           # machine other processes put it there and it killed this test's tiny workers
           "RAY_memory_monitor_refresh_ms": "0",
           # check every 5 s (Ray's default 60 s) whether the run can grow; Ray's resource view itself
           # refreshes every 20 s (its AutoscalingCoordinator's tick)
           "TDRL_ELASTIC_RESIZE_INTERVAL_S": "5"}
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    epochs, workers, batch = 40, 3, 4  # long enough that the replacement is seen before the end (checked):
    # with 20, the replacement node (started 84 s after the loss) joined only after the last epoch
    notice_s = 15  # the reclaim notice's lead time (EC2 gives 120 s; shorter keeps the test short)
    exp = tiny_experiment(train__workers=f"2-{workers}", train__batch_size=batch, train__epochs=epochs,
                          train__name="elastic", train__max_failures=0)
    run_dir = Path(exp.train.storage_path) / "elastic"
    log, watch_log = tmp_path / "driver.log", tmp_path / "spot_drain.log"
    marks = [str(head_tmp), *map(str, node_tmps)]
    metadata = Metadata()  # node 2's EC2: a spot instance, no reclaim scheduled yet
    metadata.routes = {"/latest/api/token": (200, "t"), "/latest/meta-data/instance-life-cycle": (200, "spot")}
    try:
        procs.append(subprocess.Popen(
            [*ray_command(), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
             "--include-dashboard=false", f"--temp-dir={head_tmp}", "--disable-usage-stats",
             "--node-ip-address=127.0.0.1", *_agent_ports()],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = f"127.0.0.1:{port}"
        _wait_for_nodes(address, env, 1, [(procs[0], head_tmp)])
        node2 = _start_node(address, node_tmps[0], env)
        procs.append(node2)
        _wait_for_nodes(address, env, 2, [(procs[0], head_tmp), (node2, node_tmps[0])])
        with open(watch_log, "w") as out:  # as worker_start_ray_commands start it on a spot node
            procs.append(subprocess.Popen(
                [sys.executable, str(REPO / "cluster" / "spot_drain.py"), "--provider", "aws", "--address", address,
                 "--metadata-url", metadata.url, "--temp-dir", str(node_tmps[0]),
                 "--poll-s", "1"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        t0 = time.time()
        with open(log, "w") as out:
            # -u: the test reads the log while the run goes on ("resumed from"); block-buffered, a fast run's
            # lines reached the file only at its end, after the replacement node could still make a difference
            driver = subprocess.Popen([sys.executable, "-u", "-c", DRIVER, json.dumps(exp.flatten())],
                                      env={**env, "RAY_ADDRESS": address}, cwd=tmp_path, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(driver)
        _wait_for(lambda: (run_dir / "epoch_0002").is_dir(), 900, "epoch 3's checkpoint", driver, log)
        # EC2 schedules the reclaim; the watcher drains node 2 as a preemption.
        metadata.routes["/latest/meta-data/spot/instance-action"] = (200, aws_notice_in(notice_s))
        t_notice = time.time()
        _wait_for(lambda: "drained as a preemption" in watch_log.read_text(), 120, "the watcher's drain", driver,
                  watch_log)
        time.sleep(max(0.0, t_notice + notice_s - time.time()))
        _kill_node(node2, node_tmps[0])  # the instance is gone
        t_lost = time.time() - t0
        # On two workers: a restart from the newest checkpoint there is at that moment, then an epoch.
        seen_at_restart: list[str] = []

        def restarted() -> bool:
            if re.findall(r"resumed from", log.read_text()):
                seen_at_restart.extend(epoch_dirs(run_dir))
                return True
            return False

        _wait_for(restarted, 900, "the restart on two workers", driver, log)
        _wait_for(lambda: len(epoch_dirs(run_dir)) > len(seen_at_restart) or "RESULT " in log.read_text(), 900,
                  "an epoch on two workers", driver, log)
        procs.append(_start_node(address, node_tmps[1], env))  # the autoscaler's replacement node
        t_back = time.time() - t0
        rc = driver.wait(timeout=2400)
        t_end = time.time() - t0
        text = log.read_text()
    finally:
        metadata.close()
        _stop(procs, marks)
        import shutil

        for d in [head_tmp, *node_tmps]:
            shutil.rmtree(d, ignore_errors=True)
    assert rc == 0, text[-6000:]  # max_failures=0: nothing was charged to it
    res = json.loads(next(ln for ln in text.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    uri, run_id = exp.train.mlflow_uri, res["run_id"]
    sizes = [int(v) for v in _by_epoch(uri, run_id, "workers")]
    losses = _by_epoch(uri, run_id, "train_loss")
    resumed = re.findall(r"resumed from \S*(epoch_\d{4})", text)
    print(f"notice at {t_notice - t0:.0f}s, node 2 killed at {t_lost:.0f}s, replacement at {t_back:.0f}s, run "
          f"ended at {t_end:.0f}s; checkpoints at the first restart: {seen_at_restart}; resumed from: {resumed}; "
          f"workers by epoch: {sizes}; train_loss by epoch: {[round(x, 3) for x in losses]}")
    assert res["epoch"] == epochs - 1 and len(runs_of(uri, "tests")) == 1
    _assert_each_epoch_once(uri, run_id, epochs)  # no epoch lost, none counted twice
    assert metric_steps(uri, run_id, "workers") == list(range(epochs))
    # The sizes in order: three workers, two after the reclaim, three again after the replacement.
    assert [k for k, _ in itertools.groupby(sizes)] == [3, 2, 3], sizes
    # Every optimiser step of every epoch, on three workers or two, trained one global batch of 3 x 4.
    assert set(_by_epoch(uri, run_id, "step_clips_min")) == {workers * batch}
    assert set(_by_epoch(uri, run_id, "step_clips_max")) == {workers * batch}
    # The first restart began from the newest checkpoint there was: no finished epoch trained again.
    assert resumed and seen_at_restart and resumed[0] == seen_at_restart[-1], (resumed, seen_at_restart)
    # The loss curve goes on where it was at each resize, not from the start: the run had learnt
    # something before the first resize, and the first epoch of each new size keeps at least half of it.
    for r in (i for i in range(1, epochs) if sizes[i] != sizes[i - 1]):
        assert losses[r - 1] < losses[0], (r, losses)
        assert losses[0] - losses[r] >= 0.5 * (losses[0] - losses[r - 1]), (r, losses)
    assert losses[-1] < losses[0]
