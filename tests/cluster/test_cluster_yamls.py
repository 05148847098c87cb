"""Offline checks of the cluster configs in cluster/.

The launcher YAMLs are validated the way Ray's own autoscaler tests do it: ``prepare_config``
(merges the provider's defaults.yaml shipped inside the installed ray package; no cloud API is
touched) followed by ``validate_config`` (jsonschema against ray/autoscaler/ray-schema.json).
That is a private API, pinned to the installed Ray: the tests skip with a reason if it is gone.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_YAMLS = ["aws.yaml", "gcp.yaml"]
ALL_CLUSTER_FILES = sorted(p.name for p in CLUSTER.iterdir() if p.suffix in {".yaml", ".yml"})

IMAGE = "rayproject/ray:2.60.0-py311-gpu"

try:  # Private autoscaler API (ray 2.60.0: ray/autoscaler/_private/util.py).
    from ray.autoscaler._private.util import prepare_config, validate_config
except ImportError as exc:  # pragma: no cover - depends on the installed ray
    prepare_config = validate_config = None
    _IMPORT_ERROR = f"ray.autoscaler._private.util.prepare_config/validate_config unavailable: {exc}"
else:
    _IMPORT_ERROR = ""

try:
    import jsonschema  # noqa: F401  (validate_config needs it)
except ImportError:  # pragma: no cover
    _IMPORT_ERROR = _IMPORT_ERROR or "jsonschema is not installed (needed by validate_config)"

needs_validator = pytest.mark.skipif(bool(_IMPORT_ERROR), reason=_IMPORT_ERROR or "ok")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail loudly if anything tries to reach a cloud (or any host) during these tests."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load(name: str) -> dict:
    with open(CLUSTER / name) as f:
        return yaml.safe_load(f)


def validated(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def gpu_worker_types(config: dict) -> dict:
    return {
        name: nt
        for name, nt in config["available_node_types"].items()
        if name != config["head_node_type"] and nt.get("resources", {}).get("GPU", 0) > 0
    }


# ---------------------------------------------------------------- launcher configs (aws, gcp)


@needs_validator
@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_yaml_validates_against_installed_schema(name):
    prepared = validated(load(name))
    # prepare_config merged the common setup commands into head/worker setup commands.
    assert any("pip install" in c and "-e ~/tdrl" in c for c in prepared["worker_setup_commands"])


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_node_types(name):
    cfg = load(name)
    types = cfg["available_node_types"]
    head = cfg["head_node_type"]
    assert head in types, "head_node_type must name an entry of available_node_types"
    assert types[head]["resources"].get("GPU", 0) == 0, "head is a CPU node"

    gpu_workers = gpu_worker_types(cfg)
    assert gpu_workers, "need an autoscaling GPU worker type"
    for wname, nt in gpu_workers.items():
        assert nt["min_workers"] == 0, wname
        assert isinstance(nt["max_workers"], int) and nt["max_workers"] > 0, wname
        assert nt["max_workers"] <= cfg["max_workers"], wname
    # Every node type spells its resources out as integers (bool is an int subclass: refuse it).
    for tname, nt in types.items():
        assert nt["resources"], f"{tname}: resources must be written explicitly"
        for key, value in nt["resources"].items():
            assert type(value) is int and value >= 0, f"{tname}.{key}={value!r}"
        assert "CPU" in nt["resources"], tname


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_docker_setup_and_mounts(name):
    cfg = load(name)
    docker = cfg["docker"]
    assert docker["image"] == IMAGE
    assert "ray-ml" not in yaml.safe_dump(cfg)
    run_options = (
        docker.get("run_options", [])
        + docker.get("head_run_options", [])
        + docker.get("worker_run_options", [])
    )
    assert any(o.startswith("--shm-size") for o in docker.get("head_run_options", []) + docker.get("run_options", []))
    assert any(o.startswith("--shm-size") for o in docker.get("worker_run_options", []) + docker.get("run_options", []))
    assert all(isinstance(o, str) for o in run_options)

    assert cfg["file_mounts"].get("~/tdrl") == ".", "working tree is synced to ~/tdrl"
    setup = " ; ".join(cfg["setup_commands"])
    assert "pip install" in setup and "-e ~/tdrl" in setup
    assert "torch" in setup and "torchvision" in setup
    # Install from the index: no local wheel paths / find-links into the user's machine.
    assert "--find-links" not in setup and "file://" not in setup


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_dashboard_bound_to_loopback(name):
    cfg = load(name)
    starts = " ".join(cfg["head_start_ray_commands"])
    assert "--head" in starts
    hosts = re.findall(r"--dashboard-host[= ](\S+)", starts)
    assert hosts == ["127.0.0.1"], hosts


def test_gcp_project_placeholder_is_explicit():
    cfg = load("gcp.yaml")
    assert cfg["provider"]["type"] == "gcp"
    assert cfg["provider"]["project_id"] == "YOUR_GCP_PROJECT"
    assert "YOUR_GCP_PROJECT" in (REPO / "docs" / "cluster.md").read_text()


def test_aws_provider():
    cfg = load("aws.yaml")
    assert cfg["provider"]["type"] == "aws"
    assert cfg["provider"]["region"]


# ---------------------------------------------------------------- negative tests


@needs_validator
def test_validator_rejects_unknown_key():
    cfg = load("aws.yaml")
    cfg["available_node_types"]["gpu_worker"]["gpus_per_node"] = 4
    with pytest.raises(Exception, match="gpus_per_node|Additional properties"):
        validated(cfg)


@needs_validator
def test_validator_rejects_unknown_top_level_key():
    cfg = load("gcp.yaml")
    cfg["head_start_commands"] = ["ray start --head"]  # typo of head_start_ray_commands
    with pytest.raises(Exception, match="head_start_commands|Additional properties"):
        validated(cfg)


@needs_validator
@pytest.mark.parametrize("bad", [0.5, "4", -1])
def test_validator_rejects_non_integer_resource(bad):
    # Note: jsonschema accepts 4.0 as an integer; test_launcher_node_types refuses floats itself.
    cfg = load("aws.yaml")
    cfg["available_node_types"]["gpu_worker"]["resources"]["GPU"] = bad
    with pytest.raises(Exception, match="integer|is not of type|minimum"):
        validated(cfg)


# ---------------------------------------------------------------- no credentials anywhere

SECRET_KEY_WORDS = ("aws_access_key", "access_key_id", "secret", "private_key", "token", "password", "credential")
SECRET_VALUE_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"aws_access_key",
        r"aws_secret",
        r"secret_access_key",
        r"private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
        r"\bASIA[0-9A-Z]{16}\b",  # AWS temporary access key id
        r"\bghp_[0-9A-Za-z]{20,}",  # GitHub token
        r"\bya29\.[0-9A-Za-z_-]{20,}",  # Google OAuth access token
        r"RAY_AUTH_TOKEN\s*[=:]",  # an inline Ray auth token
        r"auth_token",
        r"(?:secret|token|password)\s*[=:]\s*\S+",
        r"\.json[\"']?\s*$",  # a service-account key file referenced by path
    )
]


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield ("key", f"{path}.{k}", str(k))
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    elif node is not None:
        yield ("value", path, str(node))


@pytest.mark.parametrize("name", ALL_CLUSTER_FILES)
def test_no_credentials_in_cluster_files(name):
    text = (CLUSTER / name).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs
    for doc in docs:
        for kind, path, item in _walk(doc):
            low = item.lower()
            if kind == "key":
                assert not any(w in low for w in SECRET_KEY_WORDS), f"{name}: credential-looking key {path}"
            else:
                for pat in SECRET_VALUE_PATTERNS:
                    assert not pat.search(item), f"{name}: credential-looking value at {path}: {pat.pattern}"
    # The launcher must not be pointed at a private key or GCP credential file.
    for doc in docs:
        auth = doc.get("auth", {}) if isinstance(doc, dict) else {}
        assert "ssh_private_key" not in auth
        provider = doc.get("provider", {}) if isinstance(doc, dict) else {}
        assert "gcp_credentials" not in provider


def test_credential_scan_catches_a_planted_secret():
    planted = {"provider": {"type": "aws", "aws_secret_access_key": "x"}, "auth": {"ssh_private_key": "~/k.pem"}}
    hits = [p for kind, p, item in _walk(planted) if kind == "key" and any(w in item.lower() for w in SECRET_KEY_WORDS)]
    assert len(hits) == 2
    assert any(pat.search("AKIAABCDEFGHIJKLMNOP") for pat in SECRET_VALUE_PATTERNS)


# ---------------------------------------------------------------- KubeRay


def _kuberay_docs() -> dict:
    with open(CLUSTER / "kuberay.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    by_kind = {}
    for d in docs:
        assert "apiVersion" in d and "kind" in d and d.get("metadata", {}).get("name")
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def _containers(pod_template: dict) -> list:
    return pod_template["spec"]["containers"]


def test_kuberay_kinds():
    by_kind = _kuberay_docs()
    assert {"RayCluster", "RayJob"} <= set(by_kind)
    assert by_kind["RayCluster"][0]["apiVersion"] == "ray.io/v1"
    assert by_kind["RayJob"][0]["apiVersion"] == "ray.io/v1"


def test_kuberay_raycluster_autoscaling_gpu_group():
    rc = _kuberay_docs()["RayCluster"][0]
    spec = rc["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["rayVersion"] == "2.60.0"
    head_containers = _containers(spec["headGroupSpec"]["template"])
    assert all(c["image"] == IMAGE for c in head_containers)
    assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"

    groups = spec["workerGroupSpecs"]
    gpu_groups = [
        g for g in groups
        if any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in _containers(g["template"]))
    ]
    assert gpu_groups, "need a GPU worker group with nvidia.com/gpu limits"
    for g in gpu_groups:
        assert g["minReplicas"] == 0
        assert isinstance(g["maxReplicas"], int) and g["maxReplicas"] > 0
        assert g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"]
        for c in _containers(g["template"]):
            assert c["image"] == IMAGE
            res = c["resources"]
            gpus = res["limits"]["nvidia.com/gpu"]
            assert type(gpus) is int and gpus > 0
            assert res["requests"].get("nvidia.com/gpu", gpus) == gpus, "GPU requests must equal limits"

    # /dev/shm backed by memory in every pod (Ray's object store lives there).
    for tmpl in [spec["headGroupSpec"]["template"]] + [g["template"] for g in groups]:
        vols = {v["name"]: v for v in tmpl["spec"].get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for c in _containers(tmpl) for m in c.get("volumeMounts", [])}
        assert "/dev/shm" in mounts
        assert vols[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_kuberay_rayjob_runs_the_study():
    by_kind = _kuberay_docs()
    job = by_kind["RayJob"][0]["spec"]
    assert job["entrypoint"] == "python studies/ablation_ratio.py --preset paper"
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert runtime_env["working_dir"]
    assert "TDRL_STORAGE" in runtime_env.get("env_vars", {})
    # The job targets the RayCluster defined in this file (or brings its own cluster spec).
    if "clusterSelector" in job:
        names = {rc["metadata"]["name"] for rc in by_kind["RayCluster"]}
        assert job["clusterSelector"]["ray.io/cluster"] in names
        assert job.get("shutdownAfterJobFinishes", False) is False
    else:
        assert "rayClusterSpec" in job


# ---------------------------------------------------------------- spot GPU workers (elastic runs)


def _spot(cfg: dict) -> tuple[dict, dict]:
    """The on-demand and the spot GPU worker types of a launcher config."""
    gpu = gpu_worker_types(cfg)
    assert set(gpu) == {"gpu_worker", "gpu_worker_spot"}, sorted(gpu)
    return gpu["gpu_worker"], gpu["gpu_worker_spot"]


@needs_validator
@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_spot_worker_type_beside_the_on_demand_one(name):
    cfg = load(name)
    on_demand, spot = _spot(cfg)
    # The same node but for how it is bought: same resources, machine, image and disks.
    assert spot["resources"] == on_demand["resources"]
    differing = {k for k in set(on_demand["node_config"]) | set(spot["node_config"])
                 if on_demand["node_config"].get(k) != spot["node_config"].get(k)}
    assert differing == ({"InstanceMarketOptions"} if name == "aws.yaml" else {"scheduling"}), differing
    prepared = validated(cfg)  # the schema takes it, after Ray merged its defaults
    assert "gpu_worker_spot" in prepared["available_node_types"]


def test_aws_spot_market_options():
    on_demand, spot = _spot(load("aws.yaml"))
    assert "InstanceMarketOptions" not in on_demand["node_config"]
    market = spot["node_config"]["InstanceMarketOptions"]
    assert market["MarketType"] == "spot"
    # boto3's RunInstances values: a one-time request, terminated (not stopped) when reclaimed.
    assert market["SpotOptions"] == {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}


def test_gcp_spot_scheduling_is_a_mapping():
    on_demand, spot = _spot(load("gcp.yaml"))
    # The Compute API's Scheduling is an object; a list (as in Ray's own GCP examples) is not accepted.
    assert on_demand["node_config"]["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": False}
    assert spot["node_config"]["scheduling"] == {"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE",
                                                 "onHostMaintenance": "TERMINATE", "automaticRestart": False}


def test_kuberay_spot_group_mirrors_the_gpu_group():
    rc = _kuberay_docs()["RayCluster"][0]
    groups = {g["groupName"]: g for g in rc["spec"]["workerGroupSpecs"]}
    assert {"gpu-workers", "gpu-workers-spot"} <= set(groups)
    base, spot = groups["gpu-workers"], groups["gpu-workers-spot"]
    assert spot["rayStartParams"] == base["rayStartParams"] and spot["minReplicas"] == 0
    assert _containers(spot["template"]) == _containers(base["template"])
    terms = spot["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    keys = {e["key"]: e["values"] for t in terms["nodeSelectorTerms"] for e in t["matchExpressions"]}
    assert keys == {"cloud.google.com/gke-spot": ["true"], "eks.amazonaws.com/capacityType": ["SPOT"],
                    "karpenter.sh/capacity-type": ["spot"]}
    assert "affinity" not in base["template"]["spec"]  # the on-demand group goes anywhere
