"""A remote dataset staged on every training node before the workers form their process group.

Staging inside the training loop (``build_dataset`` on each worker) made the ranks that were ready
wait in DDP's first collective for the node still downloading; a fresh or replacement node could
outlast the process group's timeout (``TorchConfig.timeout_s``, 1800 s) and fail the whole group.
Here staging (:func:`tdrl.data.staging.stage`, once per node under its lock) happens before any
process group exists, in two places:

1. the driver, before the TorchTrainer fits (:func:`stage_on_nodes`): one Ray task per alive node
   that can host a training worker, pinned to it (``NodeAffinitySchedulingStrategy``, not soft) and
   asking no CPU, so it runs beside whatever holds the node. The driver waits for them all and
   prints one line per node; a bad source (a corrupted shard, a missing manifest) stops the run
   here, with the error naming the node and the file, before a worker starts or a retry is spent;
2. each worker-group start (:class:`StagingTorchConfig`): Ray Train calls the backend's ``on_start``
   when it starts a worker group - the first time, after a failure, on an elastic resize - and
   this backend has every worker stage before the torch process group is set up. On a node staged
   in step 1 that is one marker check and one metadata request; a node the autoscaler added after
   step 1 (on an autoscaling cluster the GPU nodes usually come up only when the trainer asks for
   them) or a replacement for a lost one copies the data here, while nobody waits in a collective.

The training loop's own ``build_dataset`` then finds the marker and reads the local copy.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from ray.train.torch import TorchConfig

from tdrl.config.base import InputError
from tdrl.config.paths import is_uri
from tdrl.data.staging import StagingError, stage, summary


def stage_here(uri: str) -> dict[str, Any]:
    """Stage ``uri`` on this node (a task or a worker); returns what was done, for the driver's line."""
    staged = stage(uri)
    host = socket.gethostname()
    if staged.copied_files:  # the process that copied says so; the node's other workers found it done
        sys.__stdout__.write(f"[tdrl] {host}: {summary(uri, staged)}\n")
        sys.__stdout__.flush()
    return {"host": host, "path": str(staged.path), "files": staged.files, "copied_files": staged.copied_files,
            "copied_bytes": staged.copied_bytes, "seconds": staged.seconds, "shards": staged.shards,
            "copied_shards": staged.copied_shards}


def _can_host(node: Mapping[str, Any], resources: Mapping[str, float]) -> bool:
    total = node.get("Resources", {})
    return bool(node.get("Alive")) and all(total.get(k, 0) >= v for k, v in resources.items())


def stage_on_nodes(uri: str, resources: Mapping[str, float]) -> list[dict[str, Any]]:
    """Stage ``uri`` on every alive node whose resources can hold one worker (``resources``, e.g.
    ``{"CPU": 8, "GPU": 1}``), one pinned Ray task per node, and wait; returns one dict per node.
    Without Ray (a local-mode run), stages this machine."""
    # Ray is imported only when a run stages on its nodes (local-mode runs stage this machine)
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        return [stage_here(uri)]
    nodes = [n for n in ray.nodes() if _can_host(n, resources)]
    if not nodes:
        print(f"[tdrl] {uri}: no node can host a worker yet; each node stages it when its workers start", flush=True)
        return []
    task = ray.remote(num_cpus=0, max_retries=0)(stage_here)
    refs = {n["NodeManagerAddress"]: task.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False), name="tdrl-stage").remote(uri)
        for n in nodes}
    results = []
    for address, ref in refs.items():
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            if isinstance(cause, InputError):  # a bad source: the node, the file and what to do
                raise StagingError(f"staging on node {address}: {cause}") from None
            raise
    copied = sum(r["copied_files"] > 0 for r in results)
    print(f"[tdrl] {uri}: staged on {len(results)} node(s) before the workers start ({copied} copied, "
          f"{len(results) - copied} had it)", flush=True)
    return results


_TorchBackend = TorchConfig().backend_cls  # Ray's own torch backend class, extended below


class _StagingBackend(_TorchBackend):
    """Ray's torch backend, staging the data on every worker before the process group forms."""

    def on_start(self, worker_group, backend_config: "StagingTorchConfig") -> None:
        if backend_config.data_root:
            worker_group.execute(stage_here, backend_config.data_root)
        super().on_start(worker_group, backend_config)


@dataclass
class StagingTorchConfig(TorchConfig):
    """``TorchConfig`` whose worker groups stage ``data_root`` (a URI) before forming the process group."""

    data_root: str = ""

    @property
    def backend_cls(self):
        return _StagingBackend


def torch_config(backend: str, data_root: str) -> TorchConfig:
    """The run's ``TorchConfig``: staging first when the data root is remote."""
    return StagingTorchConfig(backend=backend, data_root=data_root) if is_uri(data_root) else TorchConfig(backend=backend)
