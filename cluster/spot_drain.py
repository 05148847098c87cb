"""Drain this Ray worker node as a *preemption* when its cloud announces a spot reclaim.

Started in the background on every worker of cluster/aws.yaml and cluster/gcp.yaml (their
``worker_start_ray_commands``), right after ``ray start``::

    python ~/tdrl/cluster/spot_drain.py --provider aws --address $RAY_HEAD_IP:6379

Why: a reclaimed spot node otherwise just disappears, and Ray Train charges the dead workers to
``train.max_failures`` like a crash, so a long spot run ends after a few reclaims. A node drained with
reason ``DRAIN_NODE_REASON_PREEMPTION`` before it dies is a preemption to Ray (2.60): Ray Train lets
the surviving ranks run until the deadline, then restarts the group from the latest checkpoint and
charges the restart to ``FailureConfig.max_preemption_failures`` (unlimited; tdrl/train/trainer.py),
not to ``max_failures`` (docs/training.md, "Elastic runs").

What it watches (the providers' documented instance metadata):

- AWS: ``/latest/meta-data/instance-life-cycle`` (``spot`` or not: an on-demand node exits at once),
  then ``/latest/meta-data/spot/instance-action`` every ``--poll-s`` seconds: 404 until EC2 schedules
  the reclaim, then ``{"action": "terminate", "time": "...Z"}`` two minutes ahead (IMDSv2 token).
- GCP: ``instance/scheduling/preemptible`` (``TRUE`` for Spot VMs, else exit), then
  ``instance/preempted`` (``TRUE`` once preempted; 30 s before the VM stops).

Then it finds this node among the cluster's alive nodes (its IP, and ``--temp-dir`` where several
share one IP, as in the tests) and asks the GCS to drain it, the deadline ``--margin-s`` (10 s) before
the reclaim. The margin is what makes the loss a preemption: at the deadline Ray Train stops the
group and restarts it as a preemption while the node still lives; with the deadline at the reclaim
itself the surviving ranks' collectives fail on the dead peer (connection reset) in the same instant,
and a worker error seen before the dead worker's is charged to ``max_failures`` (seen in the slow
test). Ray's ``ray drain-node`` does the same; it is called in-process to find the node by address
first.
Stdlib only, but Ray (on the node anyway).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Callable

AWS_METADATA = "http://169.254.169.254"
GCP_METADATA = "http://metadata.google.internal/computeMetadata/v1"
GCP_NOTICE_S = 30  # a Spot VM's preemption notice (Compute Engine docs)
REASON = "DRAIN_NODE_REASON_PREEMPTION"


def _get(url: str, headers: dict[str, str], method: str = "GET", timeout: float = 5.0) -> tuple[int, str]:
    """(HTTP status, body); 0 when the metadata server cannot be reached."""
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


class Aws:
    """EC2 instance metadata (IMDSv2: a session token on every request)."""

    def __init__(self, base: str = AWS_METADATA) -> None:
        self.base = base.rstrip("/")
        self._token = ""

    def _headers(self) -> dict[str, str]:
        if not self._token:
            status, body = _get(f"{self.base}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
                                method="PUT")
            self._token = body if status == 200 else ""
        return {"X-aws-ec2-metadata-token": self._token} if self._token else {}

    def is_spot(self) -> bool:
        status, body = _get(f"{self.base}/latest/meta-data/instance-life-cycle", self._headers())
        return status == 200 and body.strip() == "spot"

    def notice(self, now: float) -> float | None:
        """Seconds left before the reclaim, once announced; else None."""
        status, body = _get(f"{self.base}/latest/meta-data/spot/instance-action", self._headers())
        if status == 401:  # the session token expired
            self._token = ""
        if status != 200:
            return None
        try:
            when = dt.datetime.strptime(json.loads(body)["time"], "%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, KeyError, TypeError):
            return 120.0  # announced, time unreadable: EC2's notice is two minutes
        return max(0.0, when.replace(tzinfo=dt.timezone.utc).timestamp() - now)


class Gcp:
    """Compute Engine metadata server."""

    headers = {"Metadata-Flavor": "Google"}

    def __init__(self, base: str = GCP_METADATA) -> None:
        self.base = base.rstrip("/")

    def is_spot(self) -> bool:
        status, body = _get(f"{self.base}/instance/scheduling/preemptible", self.headers)
        return status == 200 and body.strip().upper() == "TRUE"

    def notice(self, now: float) -> float | None:
        status, body = _get(f"{self.base}/instance/preempted", self.headers)
        return float(GCP_NOTICE_S) if status == 200 and body.strip().upper() == "TRUE" else None


def this_node(address: str, node_ip: str, temp_dir: str | None) -> str:
    """The hex id of the alive, non-head Ray node at ``node_ip`` (and ``temp_dir``, when given)."""
    from ray._raylet import GcsClient

    nodes = GcsClient(address=address).get_all_node_info()
    found = [nid.hex() for nid, info in nodes.items()
             if info.state == 0 and not info.is_head_node and info.node_manager_address == node_ip
             and (temp_dir is None or os.path.realpath(info.temp_dir) == os.path.realpath(temp_dir))]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} alive worker nodes at {node_ip}"
                           f"{' with temp dir ' + temp_dir if temp_dir else ''}; expected this one")
    return found[0]


def drain(address: str, node_id: str, seconds_left: float, message: str) -> None:
    """Ask the GCS to drain ``node_id`` as a preemption, deadline ``seconds_left`` from now."""
    from ray._raylet import GcsClient
    from ray.core.generated import autoscaler_pb2

    deadline_ms = int((time.time() + seconds_left) * 1000)
    accepted, why = GcsClient(address=address).drain_node(
        node_id, autoscaler_pb2.DrainNodeReason.Value(REASON), message, deadline_ms)
    if not accepted:
        raise RuntimeError(f"the GCS refused to drain node {node_id}: {why}")


DRAIN_MARGIN_S = 10.0


def drain_deadline_s(seconds_left: float, margin_s: float = DRAIN_MARGIN_S) -> float:
    """Seconds from now to the drain deadline: ``margin_s`` before the reclaim, never in the past."""
    return max(0.0, seconds_left - margin_s)


def watch(cloud: Aws | Gcp, on_notice: Callable[[float], None], poll_s: float = 5.0,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
          max_polls: int | None = None) -> str:
    """Poll ``cloud`` until it announces a reclaim, then call ``on_notice(seconds_left)``. Returns
    ``"on-demand"`` (not a spot node: nothing to watch), ``"drained"`` or ``"gave up"`` (max_polls)."""
    if not cloud.is_spot():
        return "on-demand"
    polls = 0
    while max_polls is None or polls < max_polls:
        left = cloud.notice(clock())
        if left is not None:
            on_notice(left)
            return "drained"
        polls += 1
        sleep(poll_s)
    return "gave up"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--provider", choices=("aws", "gcp"), required=True)
    ap.add_argument("--address", required=True, help="the GCS address, HEAD_IP:6379")
    ap.add_argument("--metadata-url", help="the instance metadata base URL (tests point it at a local server)")
    ap.add_argument("--node-ip", help="this node's Ray address (default: Ray's own choice)")
    ap.add_argument("--temp-dir", help="this node's Ray temp dir, where several nodes share an IP")
    ap.add_argument("--poll-s", type=float, default=5.0)
    ap.add_argument("--margin-s", type=float, default=DRAIN_MARGIN_S,
                    help="drain deadline this long before the reclaim (default %(default)s)")
    args = ap.parse_args(argv)
    cloud = (Aws if args.provider == "aws" else Gcp)(*([args.metadata_url] if args.metadata_url else []))

    def on_notice(left: float) -> None:
        import ray

        ip = args.node_ip or ray.util.get_node_ip_address()
        node = this_node(args.address, ip, args.temp_dir)
        deadline = drain_deadline_s(left, args.margin_s)
        drain(args.address, node, deadline, f"{args.provider} spot reclaim notice: {left:.0f} s left")
        print(f"[spot_drain] node {node} ({ip}) drained as a preemption, deadline in {deadline:.0f} s "
              f"(reclaim in {left:.0f} s)", flush=True)

    outcome = watch(cloud, on_notice, poll_s=args.poll_s)
    print(f"[spot_drain] {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
