"""Study test fixtures: a tiny synthetic set and a real `ray start` head for the slow tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from study_helpers import TINY_SYNTH


@pytest.fixture(scope="session")
def study_data(tmp_path_factory) -> str:
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("study-synth")
    generate_synthetic(root, workers=2, **TINY_SYNTH)
    return str(root)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real local Ray head (`ray start --head`, job server on 127.0.0.1) with token auth and the
    TRAIN_DRIVER resource. Torn down by killing the processes this fixture started (their process
    group), not with `ray stop`, which would also stop other Ray instances on the machine."""
    tmp = tmp_path_factory.mktemp("ray-head")
    temp_dir = Path("/tmp") / f"tdrl-head-{os.getpid()}-{int(time.time())}"  # short: socket paths are limited
    port, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    cmd = ["ray", "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
           "--resources", json.dumps({"TRAIN_DRIVER": 4}), "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dash), "--temp-dir", str(temp_dir), "--disable-usage-stats"]
    log = open(tmp / "ray-start.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pgid = proc.pid
    try:
        assert proc.wait(timeout=120) == 0, (tmp / "ray-start.log").read_text()[-3000:]
        yield {"gcs": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env, "tmp": tmp}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        log.close()
