"""A local multi-node Ray cluster of the slow tests' own: a head and further nodes, each a ``ray start
--block`` process (this Python's ``ray``, :func:`tdrl.train.cluster.ray_command`, so a venv that is
not activated works) on 127.0.0.1, with its own temp dir and free ports.

Drivers run in subprocesses with :attr:`LocalCluster.driver_env` (``RAY_ADDRESS`` set; the test
session's own Ray must not be used). Ray 2.60 clusters use token auth (``~/.ray/auth_token``): every
node and client gets ``RAY_AUTH_MODE=token``. Cleanup ends exactly the processes the cluster started
(their process groups, then any process that still names one of its temp dirs) rather than ``ray
stop``, which would stop every other Ray on the machine as well.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_naming(marks: list[str]) -> list[int]:
    """Processes (not this one) whose command line names one of ``marks`` (unique temp dirs)."""
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


def stop_processes(procs: list[subprocess.Popen], marks: list[str]) -> None:
    """SIGTERM the process groups ``procs`` lead, SIGKILL after a grace period (``ray start --block``
    can sit on SIGTERM), then SIGKILL any straggler that still names one of ``marks``."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.2)
    for pid in pids_naming(marks):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def fatal_lines(temp_dir: Path) -> str:
    """The raylet's fatal (``C``) log lines of a node's session: why a ``ray start`` died."""
    lines = []
    for f in sorted(temp_dir.glob("session_*/logs/raylet.out")):
        lines += [ln[:700] for ln in f.read_text(errors="replace").splitlines() if " C " in ln[:40]]
    return "\n".join(lines[-3:]) or "(no fatal raylet line)"


def wait_for_nodes(env: dict[str, str], count: int, check: Callable[[], None], timeout: float = 600.0) -> None:
    """Until ``count`` nodes of the cluster ``env``'s ``RAY_ADDRESS`` names are alive, calling ``check``
    (which raises when a node died) before each probe. A probe that hangs (a loaded machine: Ray's 5 s
    connection deadlines pass) is abandoned and tried again rather than failing the test."""
    probe = "import ray; ray.init(_node_ip_address='127.0.0.1'); print(sum(n['Alive'] for n in ray.nodes()))"
    deadline = time.time() + timeout
    while time.time() < deadline:
        check()
        try:
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)
    raise AssertionError(f"the cluster at {env['RAY_ADDRESS']} did not reach {count} nodes in {timeout:.0f}s")


# The raylet's fatal line when its agents (Python processes) did not write their ports within its
# fixed wait (15 s in Ray 2.60, not configurable): a start-up race a loaded machine loses, not a fault.
SLOW_AGENTS = "Timed out waiting for file"
START_TRIES = 5


@dataclass
class Node:
    args: list[str]  # of `ray start`, without the per-start ports and temp dir
    prefix: str
    proc: subprocess.Popen | None = None
    temp_dir: Path | None = None
    tries: int = 0
    stopped: bool = False  # by stop_node: its end is expected


class LocalCluster:
    """``with LocalCluster() as cluster:`` starts the head and waits for it; ``add_node()``,
    ``stop_node(node)``, ``start_driver(...)`` while it runs; leaving the block stops every process it
    started and removes the nodes' temp dirs.

    ``head_cpus`` / ``head_resources``: the head's shape (each added node has 1 CPU unless told);
    ``dashboard``: start the dashboard and job server (for ``ray job submit``) on a free port;
    ``env``: extra environment for every node and driver.
    """

    def __init__(self, head_cpus: int = 1, head_resources: dict[str, float] | None = None,
                 dashboard: bool = False, env: dict[str, str] | None = None) -> None:
        from tdrl.train.cluster import ray_command

        self.ray = ray_command()
        self.head_cpus, self.head_resources, self.with_dashboard = head_cpus, head_resources, dashboard
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_port = free_port() if dashboard else None
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}" if dashboard else None
        self.env = {**os.environ, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_AUTH_MODE": "token",
                    **(env or {})}
        self.env.pop("RAY_ADDRESS", None)
        self.driver_env = {**self.env, "RAY_ADDRESS": self.address}
        self.nodes: list[Node] = []
        self.drivers: list[subprocess.Popen] = []
        self._temp_dirs: list[Path] = []

    # --- nodes --------------------------------------------------------------------------------------

    def _launch(self, node: Node) -> None:
        # Short temp dirs: Ray's Unix socket paths inside them must stay under ~107 characters.
        node.temp_dir = Path(tempfile.mkdtemp(prefix=node.prefix))
        self._temp_dirs.append(node.temp_dir)
        node.tries += 1
        # Every port a node opens is a free one of its own: Ray's fixed defaults (the agent's 52365, the
        # client server's 10001, the autoscaler's metrics 44217) may be held by another Ray on the
        # machine (a job submitted to this head would reach that Ray's job agent on 52365).
        ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                 f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]
        node.proc = subprocess.Popen([*self.ray, "start", "--block", *node.args, *ports,
                                      f"--temp-dir={node.temp_dir}", "--num-gpus=0", "--node-ip-address=127.0.0.1"],
                                     env={**self.env, "AUTOSCALER_METRIC_PORT": str(free_port())},
                                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _start(self, args: list[str], prefix: str) -> Node:
        node = Node(args, prefix)
        self._launch(node)
        self.nodes.append(node)
        self.wait_for_nodes(sum(not n.stopped for n in self.nodes))
        return node

    def start_head(self) -> Node:
        args = ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}", "--disable-usage-stats",
                f"--ray-client-server-port={free_port()}"]
        if self.head_resources:
            args.append(f"--resources={json.dumps(self.head_resources)}")
        if self.with_dashboard:
            args += ["--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
        else:
            args.append("--include-dashboard=false")
        head = self._start(args, "tdrl-rh-")
        if self.with_dashboard:
            self._wait_for_dashboard()
        return head

    def add_node(self, cpus: int = 1, resources: dict[str, float] | None = None) -> Node:
        """One more node; returns once the cluster counts it (and every other node not stopped) alive."""
        args = [f"--address={self.address}", f"--num-cpus={cpus}"]
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        return self._start(args, "tdrl-rn-")

    def stop_node(self, node: Node) -> None:
        """The whole node goes (raylet, its workers, everything), as a reclaimed spot instance does."""
        node.stopped = True
        stop_processes([node.proc], [str(node.temp_dir)])

    def wait_for_nodes(self, count: int, timeout: float = 600.0) -> None:
        """Until ``count`` nodes are alive (:func:`wait_for_nodes`); a node that died (see
        ``_check_running``) is started again or fails the test at once."""
        wait_for_nodes(self.driver_env, count, self._check_running, timeout)

    def _check_running(self) -> None:
        """A node that exited unasked is started again if its raylet only lost the agents' start-up race
        (``SLOW_AGENTS``, at most ``START_TRIES`` starts); any other exit fails the test with its fatal line."""
        for node in self.nodes:
            if node.stopped or node.proc.poll() is None:
                continue
            fatal = fatal_lines(node.temp_dir)
            if SLOW_AGENTS not in fatal or node.tries >= START_TRIES:
                raise AssertionError(f"`ray start` ({node.temp_dir}, start {node.tries}) exited with "
                                     f"{node.proc.returncode}:\n{fatal}")
            stop_processes([node.proc], [str(node.temp_dir)])  # whatever of it is left
            self._launch(node)

    def _wait_for_dashboard(self, timeout: float = 300.0) -> None:
        """Until the job server answers (any HTTP status: with token auth it may refuse an anonymous probe)."""
        import urllib.error
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_running()
            try:
                urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"the dashboard at {self.dashboard} did not answer in {timeout:.0f}s")

    # --- drivers and the whole cluster ----------------------------------------------------------------

    def start_driver(self, code: str, args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
        """``python -u -c code *args`` against this cluster, in its own process group, its output in ``log``;
        ended with the cluster if it still runs then."""
        with open(log, "w") as out:
            # -u: tests read the log while the driver runs; block-buffered it would fill only at the end
            proc = subprocess.Popen([sys.executable, "-u", "-c", code, *args], env=self.driver_env, cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.drivers.append(proc)
        return proc

    def stop(self) -> None:
        stop_processes(self.drivers, [])
        stop_processes([n.proc for n in self.nodes], [str(d) for d in self._temp_dirs])
        for d in self._temp_dirs:
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        try:
            self.start_head()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
