"""The scripts the launcher YAMLs run on the nodes, run here as the nodes would run them.

- ``cluster/node_auth.sh``: the head makes the cluster's secrets once, a worker installs the copy the
  autoscaler brought it (or stops), both put them where Ray and MLflow read them; nothing outside the
  test's own HOME is touched.
- ``cluster/spot_drain.py``: against a stand-in instance-metadata server on 127.0.0.1 that answers as
  EC2 / Compute Engine document it, it drains only on a reclaim notice, with the notice's time left.
- ``cluster/mlflow_server.sh`` (slow; needs ``mlflow[auth]``): a real basic-auth MLflow server on
  127.0.0.1 refuses requests without the credentials, and tdrl's tracking client logs a run with the
  credentials file node_auth.sh wrote.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metadata_stub import Metadata, aws_notice_in

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"


def _node_auth(role: str, home: Path, auth_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    if auth_dir is not None:
        env["TDRL_AUTH_DIR"] = str(auth_dir)
    return subprocess.run(["bash", str(CLUSTER / "node_auth.sh"), role], env=env, capture_output=True, text=True,
                          timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_head_makes_the_secrets_once_and_installs_them(tmp_path):
    home = tmp_path / "head"
    out = _node_auth("head", home)
    assert out.returncode == 0, out.stderr
    secrets = home / ".tdrl-cluster-auth"
    token = (secrets / "ray_auth_token").read_text()
    password = (secrets / "mlflow_password").read_text()
    assert len(token) == 64 and int(token, 16) and len(password) == 64 and token != password
    assert (home / ".ray" / "auth_token").read_text() == token
    creds = (home / ".mlflow" / "credentials").read_text()
    assert creds == f"[mlflow]\nmlflow_tracking_username = tdrl\nmlflow_tracking_password = {password}\n"
    assert _mode(secrets) == 0o700
    for f in (secrets / "ray_auth_token", secrets / "mlflow_password", home / ".ray" / "auth_token",
              home / ".mlflow" / "credentials"):
        assert _mode(f) == 0o600, f
    # `ray up` again (the head's setup runs again): the same secrets, so running workers keep working.
    assert _node_auth("head", home).returncode == 0
    assert (home / ".ray" / "auth_token").read_text() == token
    assert (secrets / "mlflow_password").read_text() == password


def test_a_worker_installs_the_heads_copy_or_stops(tmp_path):
    head = tmp_path / "head"
    assert _node_auth("head", head).returncode == 0
    copied = tmp_path / "worker-copy"  # what the autoscaler's rsync of ~/.tdrl-cluster-auth brings
    copied.mkdir()
    for f in (head / ".tdrl-cluster-auth").iterdir():
        (copied / f.name).write_text(f.read_text())
    worker = tmp_path / "worker"
    out = _node_auth("worker", worker, copied)
    assert out.returncode == 0, out.stderr
    assert (worker / ".ray" / "auth_token").read_text() == (head / ".ray" / "auth_token").read_text()
    assert (worker / ".mlflow" / "credentials").read_text() == (head / ".mlflow" / "credentials").read_text()
    # A worker without the head's copy never makes a token of its own: it stops and says why.
    lone = tmp_path / "lone"
    out = _node_auth("worker", lone)
    assert out.returncode == 1 and "ray_auth_token is missing" in out.stderr and "node_auth.sh head" in out.stderr
    assert not (lone / ".ray" / "auth_token").exists()
    assert _node_auth("neither", lone).returncode == 2


# ---------------------------------------------------------------- spot_drain.py against a metadata stand-in


def _spot_drain():
    spec = importlib.util.spec_from_file_location("spot_drain", CLUSTER / "spot_drain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sd = _spot_drain()


@pytest.fixture
def metadata():
    m = Metadata()
    yield m
    m.close()


def test_aws_spot_node_drains_on_the_notice_with_its_time_left(metadata):
    metadata.routes = {"/latest/api/token": (200, "tok"), "/latest/meta-data/instance-life-cycle": (200, "spot")}
    drained: list[float] = []
    polls = []

    def sleep(_s: float) -> None:  # the notice appears after three polls
        polls.append(1)
        if len(polls) == 3:
            metadata.routes["/latest/meta-data/spot/instance-action"] = (200, aws_notice_in(118))

    assert sd.watch(sd.Aws(metadata.url), drained.append, sleep=sleep, max_polls=10) == "drained"
    assert len(polls) == 3 and len(drained) == 1 and 100 <= drained[0] <= 119, drained
    # IMDSv2: a session token first (PUT), then sent on every read.
    assert metadata.seen[0][:2] == ("PUT", "/latest/api/token")
    assert all(h.get("x-aws-ec2-metadata-token") == "tok" for m, p, h in metadata.seen if m == "GET")


def test_on_demand_nodes_and_quiet_spot_nodes_are_left_alone(metadata):
    metadata.routes = {"/latest/api/token": (200, "tok"), "/latest/meta-data/instance-life-cycle": (200, "on-demand")}
    drained: list[float] = []
    assert sd.watch(sd.Aws(metadata.url), drained.append, sleep=lambda s: None, max_polls=5) == "on-demand"
    metadata.routes["/latest/meta-data/instance-life-cycle"] = (200, "spot")  # no notice: 404 throughout
    assert sd.watch(sd.Aws(metadata.url), drained.append, sleep=lambda s: None, max_polls=5) == "gave up"
    assert drained == []
    # Not on a cloud at all (no metadata server): not a spot node.
    assert sd.watch(sd.Aws("http://127.0.0.1:9"), drained.append, sleep=lambda s: None, max_polls=1) == "on-demand"


def test_gcp_spot_vm_drains_on_preempted_with_the_30_s_notice(metadata):
    metadata.routes = {"/instance/scheduling/preemptible": (200, "TRUE"), "/instance/preempted": (200, "FALSE")}
    drained: list[float] = []

    def sleep(_s: float) -> None:
        metadata.routes["/instance/preempted"] = (200, "TRUE")

    assert sd.watch(sd.Gcp(metadata.url), drained.append, sleep=sleep, max_polls=5) == "drained"
    assert drained == [30.0]
    assert all(h.get("metadata-flavor") == "Google" for _, _, h in metadata.seen)
    metadata.routes["/instance/scheduling/preemptible"] = (200, "FALSE")
    assert sd.watch(sd.Gcp(metadata.url), drained.append, sleep=lambda s: None, max_polls=5) == "on-demand"


def test_the_drain_deadline_comes_before_the_reclaim():
    # Ray Train restarts the group at the deadline, while the node still lives (module docstring).
    assert sd.drain_deadline_s(120.0) == 110.0 and sd.drain_deadline_s(30.0, margin_s=10.0) == 20.0
    assert sd.drain_deadline_s(4.0) == 0.0  # a late notice: at once


def test_spot_drain_cli_on_an_on_demand_node_exits_at_once(metadata):
    metadata.routes = {"/instance/scheduling/preemptible": (200, "FALSE")}
    out = subprocess.run([sys.executable, str(CLUSTER / "spot_drain.py"), "--provider", "gcp", "--address",
                          "127.0.0.1:1", "--metadata-url", metadata.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "[spot_drain] on-demand" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------- mlflow_server.sh: its command (fast)


def _fake_mlflow_server(tmp_path, home, extra_env):
    """mlflow_server.sh with an ``mlflow`` stand-in on PATH that records its arguments and the auth settings."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "mlflow-call.txt"
    record.unlink(missing_ok=True)
    fake = bin_dir / "mlflow"
    fake.write_text(f"#!/usr/bin/env bash\n{{ echo \"$*\"; echo \"admin=$MLFLOW_AUTH_ADMIN_PASSWORD\";\n"
                    f"  echo \"key=$MLFLOW_FLASK_SERVER_SECRET_KEY\"; cat \"$MLFLOW_AUTH_CONFIG_PATH\"; }} > {record}\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update({"HOME": str(home), "PATH": f"{bin_dir}:{env['PATH']}", "TDRL_MLFLOW_HOST": "10.0.0.5", **extra_env})
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["bash", str(CLUSTER / "mlflow_server.sh"), "s3://b/mlartifacts"], env=env,
                         capture_output=True, text=True, timeout=60)
    deadline = time.time() + 30
    while out.returncode == 0 and not (record.is_file() and "authorization_function" in record.read_text()):
        assert time.time() < deadline, "the stand-in mlflow never ran"
        time.sleep(0.2)
    return out, (record.read_text() if record.is_file() else "")


def test_mlflow_server_command_from_the_heads_secrets_or_the_kuberay_secret(tmp_path):
    # Launcher YAMLs: node_auth.sh's files; bound to the head's address, never 0.0.0.0.
    home = tmp_path / "head"
    assert _node_auth("head", home).returncode == 0
    out, call = _fake_mlflow_server(tmp_path, home, {})
    assert out.returncode == 0 and out.stdout.strip().endswith("MLFLOW_TRACKING_URI=http://10.0.0.5:5000")
    password = (home / ".tdrl-cluster-auth" / "mlflow_password").read_text()
    assert "server --app-name basic-auth --host 10.0.0.5 --port 5000" in call
    assert f"admin={password}" in call and "admin_username = tdrl" in call
    assert "default_permission = NO_PERMISSIONS" in call
    # KubeRay: no files; the Secret's username and password from the pod's environment.
    out, call = _fake_mlflow_server(tmp_path, tmp_path / "pod", {"MLFLOW_TRACKING_USERNAME": "alice",
                                                                 "MLFLOW_TRACKING_PASSWORD": "s3cret"})
    assert out.returncode == 0, out.stderr
    assert "admin=s3cret" in call and "admin_username = alice" in call and len(call.split("key=")[1].split()[0]) == 64
    # Neither: refused, saying where the password comes from.
    out, _ = _fake_mlflow_server(tmp_path, tmp_path / "bare", {})
    assert out.returncode == 1 and "node_auth.sh head" in out.stderr and "tdrl-mlflow" in out.stderr


# ---------------------------------------------------------------- mlflow_server.sh: a real server (slow)


def _wait_http(url: str, timeout: float = 600.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without credentials)
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise AssertionError(f"no MLflow server at {url} after {timeout:.0f}s")


@pytest.mark.slow
def test_mlflow_server_refuses_anonymous_requests_and_takes_the_nodes_credentials(tmp_path):
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    import socket
    import urllib.error
    import urllib.request

    home = tmp_path / "home"
    assert _node_auth("head", home).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # One server process: on a loaded 2-core machine uvicorn's supervisor kills slow-starting workers.
    env = {**os.environ, "HOME": str(home), "TDRL_MLFLOW_HOST": "127.0.0.1", "TDRL_MLFLOW_PORT": str(port),
           "TDRL_MLFLOW_WORKERS": "1"}
    out = subprocess.run(["bash", str(CLUSTER / "mlflow_server.sh"), (tmp_path / "artifacts").as_uri()], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    uri = f"http://127.0.0.1:{port}"
    assert out.stdout.strip().splitlines()[-1] == f"MLFLOW_TRACKING_URI={uri}"
    pid = int((home / "mlflow.pid").read_text())
    try:
        _wait_http(f"{uri}/health")
        # Without credentials: 401, for the API and the UI alike.
        for path in ("/api/2.0/mlflow/experiments/search?max_results=1", "/"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(uri + path, timeout=30)
            assert err.value.code == 401, path
        # With the credentials file node_auth.sh wrote (as every node has it): tdrl logs a run.
        code = ("import mlflow; mlflow.set_tracking_uri(%r); mlflow.set_experiment('auth-check');\n"
                "with mlflow.start_run() as r: mlflow.log_metric('x', 1.0)\n"
                "print(mlflow.get_run(r.info.run_id).data.metrics)") % uri
        logged = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HOME": str(home)},
                                capture_output=True, text=True, timeout=900)
        assert logged.returncode == 0 and "{'x': 1.0}" in logged.stdout, logged.stderr[-3000:]
        # A wrong password is refused.
        wrong = home.parent / "wrong"
        (wrong / ".mlflow").mkdir(parents=True)
        (wrong / ".mlflow" / "credentials").write_text("[mlflow]\nmlflow_tracking_username = tdrl\n"
                                                       "mlflow_tracking_password = guess\n")
        refused = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HOME": str(wrong),
                                                                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                                 capture_output=True, text=True, timeout=900)
        assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    finally:
        os.killpg(pid, 15)  # setsid: the server leads its own process group
        deadline = time.time() + 60
        while time.time() < deadline and subprocess.run(["pgrep", "-g", str(pid)], capture_output=True).stdout:
            time.sleep(1)
