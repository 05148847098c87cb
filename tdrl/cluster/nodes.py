"""The node types of a cluster file, at full scale, as the planner counts and prices them.

Two kinds of file:

- a Ray cluster-launcher YAML (cluster/aws.yaml, cluster/gcp.yaml): the head once, each worker type at
  its ``max_workers``, the worker total capped by the top-level ``max_workers`` (types with more worker
  slots first: what a study would ask the autoscaler for). The instance type comes from
  ``node_config`` (``InstanceType`` / ``machineType``); a type is spot when bought so (AWS
  ``InstanceMarketOptions.MarketType: spot``, GCP ``scheduling.provisioningModel: SPOT`` or
  ``preemptible``).
- a KubeRay manifest (cluster/kuberay.yaml): the RayCluster's head group once and each worker group at
  its ``maxReplicas``, CPUs and GPUs from ``rayStartParams`` (else the container's requests). The GPU
  model comes from the ``nvidia.com/gpu.product`` node label the group selects (``nodeSelector`` or a
  required node-affinity term; GKE's ``cloud.google.com/gke-accelerator`` too); spot when its required
  affinity selects a spot label. A pod runs on
  whatever instance the Kubernetes cluster gives it, so there is no instance price: ``--gpu-hour-price``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tdrl.cluster.instances import INSTANCES, KUBERAY_GPU_PRODUCTS, InstanceType, gpu_model
from tdrl.config.base import ConfigError

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"  # GKE's own: nvidia-a100-80gb, nvidia-h100-80gb, ...
# Node labels that mark spot capacity on GKE, EKS managed node groups and Karpenter, with the value.
SPOT_LABELS = {"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-preemptible": "true",
               "eks.amazonaws.com/capacityType": "SPOT", "karpenter.sh/capacity-type": "spot"}


@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    count: int  # nodes of this type at full scale (the head: 1)
    resources: Mapping[str, float] = field(default_factory=dict)  # custom resources (TRAIN_DRIVER)
    instance: str = ""  # the cloud instance type, when the file names one
    head: bool = False
    gpu: str = ""  # GPU model (instances.GPUS key); "" without GPUs, "?" when the file does not say
    spot: bool = False

    @property
    def instance_type(self) -> InstanceType | None:
        return INSTANCES.get(self.instance)

    def price(self) -> float | None:
        """USD per node-hour: the instance's on-demand or spot price, None when not in the table."""
        inst = self.instance_type
        return inst.price(self.spot) if inst else None


def is_spot(node_config: Mapping[str, Any]) -> bool:
    """Whether a launcher node type's ``node_config`` buys spot capacity (AWS or GCP)."""
    market = (node_config.get("InstanceMarketOptions") or {}).get("MarketType", "")
    sched = node_config.get("scheduling") or {}
    if isinstance(sched, list):  # Ray's own GCP examples write a list of one mapping
        sched = {k: v for item in sched for k, v in item.items()}
    return (str(market).lower() == "spot" or str(sched.get("provisioningModel", "")).upper() == "SPOT"
            or bool(sched.get("preemptible")))


def read_cluster(path: str | Path) -> list[NodeType]:
    """The node types of a launcher YAML or a KubeRay manifest at full scale (module docstring)."""
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--cluster {path}: cannot read it ({type(exc).__name__}: {exc})") from exc
    clusters = [d for d in docs if isinstance(d, dict) and d.get("kind") == "RayCluster"]
    if clusters:
        return _kuberay(clusters[0], path)
    try:
        cfg = docs[0]
        return _launcher(cfg["available_node_types"], cfg["head_node_type"], cfg.get("max_workers"))
    except (IndexError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--cluster {path}: not a Ray cluster-launcher YAML with available_node_types and "
                          f"head_node_type, nor a KubeRay RayCluster ({type(exc).__name__}: {exc}); see "
                          f"cluster/aws.yaml, cluster/kuberay.yaml") from exc


def _launcher(types: Mapping[str, Any], head: str, max_workers: Any) -> list[NodeType]:
    nodes = []
    for name, spec in types.items():
        res = dict(spec.get("resources") or {})
        conf = spec.get("node_config") or {}
        inst = str(conf.get("InstanceType") or conf.get("machineType") or "")
        cpus, gpus = float(res.pop("CPU", 0)), float(res.pop("GPU", 0))
        known = INSTANCES.get(inst)
        model = (known.gpu if known else "?") if gpus > 0 else ""
        nodes.append(NodeType(name, cpus, gpus, 1 if name == head else int(spec.get("max_workers", 0)),
                              {k: float(v) for k, v in res.items()}, inst, name == head, model, is_spot(conf)))
    budget = int(max_workers if max_workers is not None else sum(n.count for n in nodes if not n.head))
    capped = []
    for n in sorted(nodes, key=lambda n: (not n.head, -n.gpus, -n.cpus)):
        if not n.head:
            n = NodeType(n.name, n.cpus, n.gpus, min(n.count, budget), n.resources, n.instance, False, n.gpu, n.spot)
            budget -= n.count
        capped.append(n)
    return capped


def _selected(pod_spec: Mapping[str, Any], key: str) -> list[str]:
    """Values a pod requires for node label ``key`` (nodeSelector, or required affinity ``In``)."""
    values = [str(pod_spec["nodeSelector"][key])] if key in (pod_spec.get("nodeSelector") or {}) else []
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for e in term.get("matchExpressions") or []:
            if e.get("key") == key and e.get("operator") == "In":
                values += [str(v) for v in e.get("values") or []]
    return values


def _kuberay_group(name: str, group: Mapping[str, Any], count: int, head: bool) -> NodeType:
    params = group.get("rayStartParams") or {}
    pod = (group.get("template") or {}).get("spec") or {}
    requests = ((pod.get("containers") or [{}])[0].get("resources") or {})
    limits, asks = requests.get("limits") or {}, requests.get("requests") or {}
    cpus = float(params.get("num-cpus", asks.get("cpu", limits.get("cpu", 0))))
    gpus = float(params.get("num-gpus", limits.get("nvidia.com/gpu", asks.get("nvidia.com/gpu", 0))))
    products = _selected(pod, GPU_PRODUCT_LABEL) + _selected(pod, GKE_ACCELERATOR_LABEL)
    model = ""
    if gpus > 0:
        models = {KUBERAY_GPU_PRODUCTS.get(p, gpu_model(p)) for p in products}
        model = models.pop() if len(models) == 1 else "?"
    spot = any(SPOT_LABELS.get(k) is not None and SPOT_LABELS[k] in _selected(pod, k) for k in SPOT_LABELS)
    return NodeType(name, cpus, gpus, count, {}, "", head, model, spot)


def _kuberay(rc: Mapping[str, Any], path: str | Path) -> list[NodeType]:
    spec = rc.get("spec") or {}
    if "headGroupSpec" not in spec:
        raise ConfigError(f"--cluster {path}: the RayCluster has no spec.headGroupSpec")
    nodes = [_kuberay_group("head", spec["headGroupSpec"], 1, True)]
    for g in spec.get("workerGroupSpecs") or []:
        nodes.append(_kuberay_group(str(g.get("groupName", "workers")), g,
                                    int(g.get("maxReplicas", g.get("replicas", 0))), False))
    return sorted(nodes, key=lambda n: (not n.head, -n.gpus, -n.cpus))
