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


SECRET_REFERENCES = {"secretKeyRef"}  # {name, key} of a Secret the cluster holds


def _secret_references(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in SECRET_REFERENCES:
                yield v
            else:
                yield from _secret_references(v)
    elif isinstance(node, list):
        for v in node:
            yield from _secret_references(v)


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
                if item in SECRET_REFERENCES:  # a Kubernetes Secret named by reference: no value here
                    continue
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


def test_secret_references_name_a_secret_and_carry_no_value():
    refs = [r for d in yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()) if d for r in _secret_references(d)]
    assert refs
    for r in refs:
        assert set(r) == {"name", "key"}, r


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


def test_kuberay_on_demand_group_stays_off_spot_nodes():
    groups = {g["groupName"]: g for g in _kuberay_docs()["RayCluster"][0]["spec"]["workerGroupSpecs"]}
    spot_terms = (groups["gpu-workers-spot"]["template"]["spec"]["affinity"]["nodeAffinity"]
                  ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"])
    terms = (groups["gpu-workers"]["template"]["spec"]["affinity"]["nodeAffinity"]
             ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"])
    # One term: its expressions are ANDed, so a node must pass every exclusion.
    assert len(terms) == 1
    excluded = {e["key"]: set(e["values"]) for e in terms[0]["matchExpressions"] if e["operator"] == "NotIn"}
    assert len(excluded) == len(terms[0]["matchExpressions"])
    # Every label the spot group selects on is excluded with the same value.
    for t in spot_terms:
        for e in t["matchExpressions"]:
            assert e["operator"] == "In" and set(e["values"]) <= excluded.get(e["key"], set()), e
    # No toleration lets the on-demand pods onto tainted spot nodes either.
    tolerations = groups["gpu-workers"]["template"]["spec"].get("tolerations", [])
    assert not any("spot" in t.get("key", "") for t in tolerations)


# ---------------------------------------------------------------- images that boot (issue 22, point 5)

# The NVIDIA driver each CUDA build of PyTorch's wheels needs (the driver the CUDA toolkit shipped with,
# NVIDIA's CUDA release notes, Table 3: 12.6 -> 560.28, 12.8 -> 570.26, 13.0 -> 580.65).
MIN_DRIVER = {"cu126": 560, "cu128": 570, "cu130": 580}
TORCH_PIN = re.compile(r"\btorch==(\d+\.\d+\.\d+)\+(cu\d+)")
VISION_PIN = re.compile(r"\btorchvision==(\d+\.\d+\.\d+)\+(cu\d+)")
DRIVER_MIN = re.compile(r'"\$\{v%%\.\*\}" -lt (\d+)')


def _pins(text: str) -> tuple[set, set]:
    return set(TORCH_PIN.findall(text)), set(VISION_PIN.findall(text))


def _driver_checks(name: str) -> list[str]:
    """The driver-check commands of a cluster file: each GPU worker type's initialization_commands (the
    launcher YAMLs) or each GPU worker pod's postStart hook (KubeRay)."""
    if name == "kuberay.yaml":
        groups = _kuberay_docs()["RayCluster"][0]["spec"]["workerGroupSpecs"]
        return [c["lifecycle"]["postStart"]["exec"]["command"][-1]
                for g in groups for c in _containers(g["template"])]
    return [" ; ".join(nt.get("initialization_commands", [])) for nt in gpu_worker_types(load(name)).values()]


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml", "kuberay.yaml"])
def test_torch_is_pinned_to_a_cuda_build_that_the_checked_driver_runs(name):
    import torch

    text = (CLUSTER / name).read_text()
    torch_pins, vision_pins = _pins(text)
    assert len(torch_pins) == 1 and len(vision_pins) == 1, (torch_pins, vision_pins)
    (version, cuda), = torch_pins
    assert next(iter(vision_pins))[1] == cuda  # torchvision of the same CUDA build
    # The cluster runs the torch this machine tests with (CUDA build aside).
    assert version == torch.__version__.split("+")[0]
    # From PyTorch's index for that CUDA build, not PyPI's default build (another CUDA, another driver).
    assert f"download.pytorch.org/whl/{cuda}" in text
    checks = _driver_checks(name)
    assert checks and all(checks), "every GPU node checks its driver"
    for check in checks:
        assert "nvidia-smi" in check
        mins = {int(m) for m in DRIVER_MIN.findall(check)}
        assert mins == {MIN_DRIVER[cuda]}, (mins, cuda)
        assert f"torch {version}+{cuda}" in check  # the message names what needs the driver


def test_every_cluster_file_pins_the_same_torch():
    pins = {name: _pins((CLUSTER / name).read_text()) for name in ("aws.yaml", "gcp.yaml", "kuberay.yaml")}
    assert len({(tuple(t), tuple(v)) for t, v in pins.values()}) == 1, pins


def test_gpu_images_ship_a_driver_new_enough():
    gcp = load("gcp.yaml")
    (_, cuda), = _pins((CLUSTER / "gcp.yaml").read_text())[0]
    for name, nt in gcp["available_node_types"].items():
        for disk in nt["node_config"]["disks"]:
            image = disk["initializeParams"]["sourceImage"]
            # Deep Learning VM families name their driver: common-cu129-ubuntu-2204-nvidia-580.
            m = re.search(r"/family/common-cu\d+-ubuntu-\d+-nvidia-(\d+)$", image)
            assert m and int(m.group(1)) >= MIN_DRIVER[cuda], (name, image)
    aws = load("aws.yaml")
    for name, nt in gpu_worker_types(aws).items():
        # The DLAMI "Base OSS Nvidia Driver" family: 580-series drivers and newer in its 2026 releases;
        # the driver check on the node is what guarantees it.
        assert "base-oss-nvidia-driver-gpu" in nt["node_config"]["ImageId"], name


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_driver_check_runs_on_the_host_before_docker(name):
    cfg = load(name)
    assert cfg["initialization_commands"] == []  # the CPU head has no driver to check
    for wname, nt in gpu_worker_types(cfg).items():
        # Node-type initialization_commands replace the global ones and run on the host before Docker
        # starts (Ray 2.60 updater.py), so Docker is started with the GPUs of a working driver.
        assert nt["initialization_commands"], wname
        assert "nvidia-smi" in nt["initialization_commands"][0]
    if name == "gcp.yaml":  # the driver the image installs at first boot: waited for
        for wname, nt in gpu_worker_types(cfg).items():
            items = {i["key"]: i["value"] for i in nt["node_config"]["metadata"]["items"]}
            assert items.get("install-nvidia-driver") == "True"
            assert "sleep" in nt["initialization_commands"][0] and "seq" in nt["initialization_commands"][0]


def _fake_nvidia_smi(folder: Path, script: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text("#!/bin/bash\n" + script + "\n")
    exe.chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin", "TDRL_DRIVER_WAIT_TRIES": "3", "TDRL_DRIVER_WAIT_S": "0"}


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml", "kuberay.yaml"])
def test_driver_check_passes_a_new_driver_and_stops_an_old_or_missing_one(name, tmp_path):
    import subprocess

    check = _driver_checks(name)[0]
    (_, cuda), = _pins((CLUSTER / name).read_text())[0]
    need = MIN_DRIVER[cuda]

    def run(script: str, sub: str) -> subprocess.CompletedProcess:
        env = _fake_nvidia_smi(tmp_path / sub, script)
        return subprocess.run(["bash", "-c", check], env=env, capture_output=True, text=True, timeout=60)

    ok = run(f'[ "$1" = "--query-gpu=driver_version" ] && echo "{need + 20}.65.06"; exit 0', "new")
    assert ok.returncode == 0, ok.stderr
    old = run(f'[ "$1" = "--query-gpu=driver_version" ] && echo "{need - 10}.90.07"; exit 0', "old")
    assert old.returncode == 1 and f"{need - 10}.90.07" in old.stderr and f">= {need}" in old.stderr, old.stderr
    none = run("exit 9", "none")  # nvidia-smi present, no driver loaded
    assert none.returncode == 1 and "NVIDIA driver" in none.stderr, none.stderr
    if name != "kuberay.yaml":
        # A driver that finishes installing while the check waits (GCP's first boot): it passes.
        late = run(f'c={tmp_path}/late/n; n=$(cat $c 2>/dev/null || echo 0); echo $((n+1)) > $c; '
                   f'[ $n -lt 1 ] && exit 9; echo "{need}.10.01"', "late")
        assert late.returncode == 0 and "waiting for the NVIDIA driver" in late.stdout, late.stdout + late.stderr


def test_cpus_per_gpu_hold_the_paper_presets_workers():
    from tdrl.train.presets import get_preset

    per_worker = get_preset("paper").values["train.cpus_per_worker"]
    # KubeRay: Ray's CPUs per GPU within [1, 2] x the preset's (one worker per GPU, none left idle).
    for g in _kuberay_docs()["RayCluster"][0]["spec"]["workerGroupSpecs"]:
        gpus = int(g["rayStartParams"]["num-gpus"])
        cpus = int(g["rayStartParams"]["num-cpus"])
        assert per_worker <= cpus / gpus <= 2 * per_worker, (g["groupName"], cpus, gpus)
        for c in _containers(g["template"]):  # the pod asks the CPUs Ray announces
            assert int(c["resources"]["requests"]["cpu"]) == cpus == int(c["resources"]["limits"]["cpu"])
    # Launcher YAMLs: every GPU of a node takes a paper worker.
    for name in LAUNCHER_YAMLS:
        for wname, nt in gpu_worker_types(load(name)).items():
            assert nt["resources"]["CPU"] >= per_worker * nt["resources"]["GPU"], (name, wname)


# ---------------------------------------------------------------- nobody else gets in (issue 22, point 7)


def _ray_starts(cfg: dict, key: str) -> list[str]:
    return [c for c in cfg[key] if "ray start" in c]


@pytest.mark.parametrize("name", LAUNCHER_YAMLS)
def test_launcher_starts_ray_with_token_auth_and_the_heads_token(name):
    cfg = load(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = _ray_starts(cfg, key)
        assert starts, key
        for cmd in starts:  # exported before `ray start` in the same shell
            assert cmd.index("export RAY_AUTH_MODE=token;") < cmd.index("ray start"), cmd
    # The token is made on the head and copied to the workers through a file mount of its own.
    assert cfg["file_mounts"]["~/.tdrl-cluster-auth"] == "cluster/auth"
    assert (REPO / "cluster" / "auth").is_dir()
    assert "bash ~/tdrl/cluster/node_auth.sh head" in cfg["head_setup_commands"]
    assert "bash ~/tdrl/cluster/node_auth.sh worker" in cfg["worker_setup_commands"]
    assert not any("node_auth.sh" in c for c in cfg["setup_commands"])  # never a worker making its own
    # Nothing of the secrets folder but its README is in git.
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/cluster/auth/*" in ignored and "!/cluster/auth/README.md" in ignored


def test_kuberay_token_auth_is_on():
    rc = _kuberay_docs()["RayCluster"][0]
    assert rc["spec"]["authOptions"] == {"mode": "token"}  # the operator generates the token (a Secret)


@pytest.mark.parametrize("name", ALL_CLUSTER_FILES)
def test_every_cluster_file_turns_token_auth_on(name):
    text = (CLUSTER / name).read_text()
    assert "RAY_AUTH_MODE=token" in text or re.search(r"authOptions:\s*\n\s*mode: token", text), name


def _admits(rule: dict, port: int) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    return int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1))


PRIVATE_PORTS = (8265, 5000, 6379, 10001)  # dashboard/job API, MLflow, GCS, Ray client


def test_aws_security_group_adds_no_rule_for_private_ports():
    cfg = load("aws.yaml")
    rules = cfg["provider"]["security_group"]["IpPermissions"]
    assert not [r for r in rules for port in PRIVATE_PORTS if _admits(r, port)], rules
    # The check sees a rule that would open the dashboard.
    assert _admits({"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000}, 8265)
    assert _admits({"IpProtocol": "-1"}, 5000)


def test_gcp_yaml_creates_no_firewall_rule():
    text = (CLUSTER / "gcp.yaml").read_text()
    cfg = load("gcp.yaml")
    assert "firewall" not in yaml.safe_dump(cfg).lower()  # comments aside: nothing the launcher would apply
    assert "gcloud compute firewall-rules list" in text  # the user is told how to check the project's


def test_mlflow_server_is_authenticated_and_not_open():
    script = (CLUSTER / "mlflow_server.sh").read_text()
    assert "--app-name basic-auth" in script
    assert "0.0.0.0" not in script
    docs = (REPO / "docs" / "cluster.md").read_text()
    assert "mlflow_server.sh" in docs and "basic-auth" in docs
    assert "--host 0.0.0.0" not in docs
    # KubeRay: every Ray container has the credentials from a Secret, none written inline.
    rc = _kuberay_docs()["RayCluster"][0]["spec"]
    templates = [rc["headGroupSpec"]["template"]] + [g["template"] for g in rc["workerGroupSpecs"]]
    for tmpl in templates:
        for c in _containers(tmpl):
            env = {e["name"]: e for e in c["env"]}
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "tdrl-mlflow" and "value" not in env[key]
    # Its server on the head pod, behind a ClusterIP Service: the RayJob's jobs log there.
    svc = next(d for d in _kuberay_docs()["Service"] if d["metadata"]["name"] == "tdrl-mlflow")["spec"]
    assert svc["type"] == "ClusterIP" and svc["selector"] == {"ray.io/cluster": "tdrl", "ray.io/node-type": "head"}
    assert [p["port"] for p in svc["ports"]] == [5000]
    job_env = yaml.safe_load(_kuberay_docs()["RayJob"][0]["spec"]["runtimeEnvYAML"])["env_vars"]
    assert job_env["MLFLOW_TRACKING_URI"] == "http://tdrl-mlflow:5000"


def test_docs_say_how_to_reach_each_port():
    docs = (REPO / "docs" / "cluster.md").read_text()
    for port in ("8265", "5000"):
        assert port in docs
    for how in ("ray dashboard cluster/aws.yaml", "kubectl port-forward", "ssh -L"):
        assert how in docs, how
