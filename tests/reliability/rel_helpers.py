"""Helpers of the reliability suite: an MLflow server in a subprocess, `tdrl` in a subprocess with
Ray guarded, and the process-group bookkeeping the fault tests need."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs `tdrl ARGS...` with ray.init replaced by a tripwire: if anything tries to start or join Ray,
# the process exits 99 with RAY-INIT-CALLED, so a refusal "before any cluster work" is observable.
GUARDED_TDRL = r"""
import sys, ray
def _tripwire(*a, **k):
    print("RAY-INIT-CALLED", flush=True)
    raise SystemExit(99)
ray.init = _tripwire
from tdrl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_guarded_tdrl(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-c", GUARDED_TDRL, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


class MlflowServer:
    """``mlflow server --host 127.0.0.1`` on a fixed port with a sqlite store, in its own process group
    so that stopping it ends its web workers too. ``start``/``stop`` may be called repeatedly."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        log = open(self.folder / f"server-{self.starts}.log", "w")
        self.starts += 1
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
               "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=self.folder)
        log.close()
        wait_http(f"{self.uri}/health", timeout, self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        kill_group(self.proc, grace=5.0)
        self.proc = None


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
