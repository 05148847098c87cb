"""Slow, real runs (``pytest -m slow``): the full smoke preset, and a two-node Ray cluster.

The two-node test starts its own cluster - a head and a second node, each a ``ray start --block``
process with 1 CPU and its own temp dir - and runs the training driver in a subprocess with
``RAY_ADDRESS`` set (the test session's own Ray must not be used). Cleanup ends exactly the
processes this test started (their process groups, then any Ray process still naming this
test's temp dirs) rather than ``ray stop``, which would also stop every other Ray on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_helpers import metric_steps, runs_of

pytestmark = pytest.mark.slow


def test_smoke_preset_two_workers_learns(ray_session, tmp_path, monkeypatch):
    """The smoke preset as ``tdrl train`` runs it (2 CPU workers), end to end, well above chance."""
    from tdrl.train.presets import get_preset, prepare_data
    from tdrl.train.trainer import fit, resolve

    monkeypatch.chdir(tmp_path)  # ./data/synth-smoke, ./runs and ./mlflow.db land in tmp_path
    preset = get_preset("smoke")
    exp = resolve(preset.experiment().override({"train.name": "smoke-test"}))
    assert exp.train.workers == 2
    prepare_data(preset, exp)
    result = fit(exp)
    chance = 100.0 / exp.model.num_classes
    assert result.metrics["val_top1"] >= 3 * chance, result.metrics  # 50% on 6 classes; it reaches ~90%
    runs = runs_of(result.mlflow_uri, exp.train.experiment)
    assert len(runs) == 1
    assert metric_steps(result.mlflow_uri, result.mlflow_run_id, "val_top1") == list(range(exp.train.epochs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_naming(marks: list[str]) -> list[int]:
    """Processes whose command line names one of this test's (unique) temp dirs."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in marks):
                pids.append(int(d.name))
    return pids


def _stop(procs: list[subprocess.Popen], marks: list[str]) -> None:
    """End the two nodes: SIGTERM their process groups, SIGKILL after a grace period (``ray start
    --block`` can sit on SIGTERM), then any straggler that still names our temp dirs."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.2)
    for pid in _pids_naming(marks):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


DRIVER = r"""
import json, sys, ray
from tdrl.config.experiment import Experiment
from tdrl.train.trainer import fit
ray.init()  # RAY_ADDRESS: the two-node cluster
nodes = [n for n in ray.nodes() if n["Alive"]]
exp = Experiment.from_flat(json.loads(sys.argv[1]))
result = fit(exp)
print("RESULT " + json.dumps({"nodes": len(nodes), "epoch": result.metrics["epoch"],
                              "run_id": result.mlflow_run_id, "path": result.path}))
"""


def _wait_for_nodes(address: str, env: dict[str, str], count: int, timeout: float = 90.0) -> None:
    probe = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                             env={**env, "RAY_ADDRESS": address})
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise AssertionError(f"the cluster at {address} did not reach {count} nodes in {timeout:.0f}s")


def test_two_node_cluster_one_worker_per_node(tiny_experiment, tmp_path):
    import tempfile

    port = _free_port()
    # Short temp dirs: Ray's Unix socket paths inside them must stay under ~107 characters.
    head_tmp, node_tmp = Path(tempfile.mkdtemp(prefix="tdrl-rh-")), Path(tempfile.mkdtemp(prefix="tdrl-rn-"))
    # Ray 2.60 clusters use token auth (~/.ray/auth_token); the second node and the driver need the mode.
    env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            ["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
             "--include-dashboard=false", f"--temp-dir={head_tmp}", "--disable-usage-stats", "--node-ip-address=127.0.0.1"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = f"127.0.0.1:{port}"
        _wait_for_nodes(address, env, 1)
        procs.append(subprocess.Popen(
            ["ray", "start", "--block", f"--address={address}", "--num-cpus=1", "--num-gpus=0",
             '--resources={"node2": 1}', f"--temp-dir={node_tmp}", "--node-ip-address=127.0.0.1"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, env, 2)
        # 1 CPU per node and 2 workers of 1 CPU each: Ray must place one worker on each node.
        exp = tiny_experiment(train__workers=2, train__batch_size=4, train__epochs=2, train__name="two-node")
        out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(exp.flatten())], capture_output=True,
                             text=True, timeout=420, env={**env, "RAY_ADDRESS": address}, cwd=tmp_path)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
        res = json.loads(lines[-1][len("RESULT "):])
        assert res["nodes"] == 2 and res["epoch"] == 1
        assert metric_steps(exp.train.mlflow_uri, res["run_id"], "train_loss") == [0, 1]
        assert len(runs_of(exp.train.mlflow_uri, "tests")) == 1
    finally:
        _stop(procs, [str(head_tmp), str(node_tmp)])
        import shutil

        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)
