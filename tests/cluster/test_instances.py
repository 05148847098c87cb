"""The GPU and instance tables (tdrl/cluster/instances.py) and the cluster files read as node types
(tdrl/cluster/nodes.py): every row complete and sourced, device and label names mapped to the same GPU
models, spot and on-demand types told apart and priced as bought."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdrl.cluster.instances import GPUS, INSTANCES, KUBERAY_GPU_PRODUCTS, gpu_model
from tdrl.cluster.nodes import is_spot, read_cluster
from tdrl.config.base import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_every_instance_row_is_complete_sourced_and_has_a_known_gpu():
    families = {name.split(".")[0] if "." in name else name.split("-")[0] for name in INSTANCES}
    # The families the issue asks for (AWS g5, g6, g6e, p4d, p4de, p5, p5en; GCP g2, a2, a3).
    assert {"g5", "g6", "g6e", "p4d", "p4de", "p5", "p5en", "g2", "a2", "a3"} <= families
    for name, inst in INSTANCES.items():
        assert inst.name == name and inst.provider in ("aws", "gcp") and inst.region and inst.source
        assert inst.vcpus > 0 and inst.memory_gib > 0
        assert inst.usd_per_hour is not None and inst.usd_per_hour > 0
        assert inst.spot_usd_per_hour is not None and 0 < inst.spot_usd_per_hour < inst.usd_per_hour, name
        assert inst.price(spot=True) == inst.spot_usd_per_hour and inst.price() == inst.usd_per_hour
        assert (inst.gpus > 0) == bool(inst.gpu), name
        if inst.gpu:
            assert inst.gpu in GPUS, name
    for model, spec in GPUS.items():
        assert spec.model == model and spec.bf16_tflops and spec.bandwidth_tbs > 0 and spec.source


def test_the_launcher_yamls_instance_types_are_in_the_table():
    for name in ("aws.yaml", "gcp.yaml"):
        for node in read_cluster(REPO / "cluster" / name):
            assert node.instance in INSTANCES, (name, node.instance)


@pytest.mark.parametrize("name, model", [
    ("NVIDIA H200", "H200"), ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA A10G", "A10G"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"),
    ("cpu", "cpu"), ("Some Future GPU", "Some Future GPU"),
])
def test_gpu_model_names(name, model):
    assert gpu_model(name) == model


def test_kuberay_gpu_product_labels_map_to_gpu_models():
    assert KUBERAY_GPU_PRODUCTS["NVIDIA-A100-SXM4-80GB"] == "A100-80GB"
    assert KUBERAY_GPU_PRODUCTS["NVIDIA-L4"] == "L4" and KUBERAY_GPU_PRODUCTS["NVIDIA-L40S"] == "L40S"
    assert set(KUBERAY_GPU_PRODUCTS.values()) <= set(GPUS)


def test_spot_node_configs():
    assert is_spot({"InstanceMarketOptions": {"MarketType": "spot"}})
    assert is_spot({"scheduling": {"provisioningModel": "SPOT"}})
    assert is_spot({"scheduling": [{"preemptible": True}]})  # Ray's example form
    assert not is_spot({"scheduling": {"onHostMaintenance": "TERMINATE"}}) and not is_spot({})


def test_launcher_yaml_node_types_at_full_scale_priced_as_bought():
    nodes = {n.name: n for n in read_cluster(REPO / "cluster" / "aws.yaml")}
    head, od, spot = nodes["head_cpu"], nodes["gpu_worker"], nodes["gpu_worker_spot"]
    assert head.head and head.count == 1 and head.gpus == 0 and head.price() == INSTANCES["m5.2xlarge"].usd_per_hour
    # max_workers: 4 for the whole cluster: the on-demand type (listed first) takes them.
    assert (od.count, spot.count) == (4, 0) and od.gpu == spot.gpu == "A10G"
    assert not od.spot and spot.spot
    assert od.price() == 5.672 and spot.price() == INSTANCES["g5.12xlarge"].spot_usd_per_hour


def test_spot_only_launcher_is_priced_at_spot(tmp_path):
    import yaml

    cfg = yaml.safe_load((REPO / "cluster" / "gcp.yaml").read_text())
    cfg["available_node_types"]["gpu_worker"]["max_workers"] = 0  # docs/cluster.md: a spot-only cluster
    path = tmp_path / "spot.yaml"
    path.write_text(yaml.safe_dump(cfg))
    gpu = [n for n in read_cluster(path) if n.gpus and n.count]
    assert [(n.name, n.spot, n.count, n.price()) for n in gpu] == [("gpu_worker_spot", True, 4, 7.71208)]


def test_kuberay_groups_and_gpu_product_label(tmp_path):
    import yaml

    nodes = {n.name: n for n in read_cluster(REPO / "cluster" / "kuberay.yaml")}
    assert nodes["head"].head and nodes["head"].cpus == 8 and nodes["head"].gpus == 0
    w, s = nodes["gpu-workers"], nodes["gpu-workers-spot"]
    assert (w.cpus, w.gpus, w.count, w.spot) == (32, 4, 4, False) and (s.count, s.spot) == (4, True)
    assert w.gpu == s.gpu == "A100-80GB"  # the groups' nvidia.com/gpu.product selector
    assert w.price() is None  # a pod has no instance price: the Kubernetes cluster's nodes have
    docs = list(yaml.safe_load_all((REPO / "cluster" / "kuberay.yaml").read_text()))
    rc = next(d for d in docs if d and d["kind"] == "RayCluster")
    groups = rc["spec"]["workerGroupSpecs"]
    groups[0]["template"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    groups[1]["template"]["spec"]["nodeSelector"] = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert {n.name: n.gpu for n in read_cluster(path)} == {"head": "", "gpu-workers": "L40S", "gpu-workers-spot": "H100"}
    del groups[0]["template"]["spec"]["nodeSelector"]
    path.write_text(yaml.safe_dump_all(docs))
    assert {n.name: n.gpu for n in read_cluster(path)}["gpu-workers"] == "?"  # no label: the model is unknown


def test_a_file_that_is_no_cluster_is_refused_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(ConfigError, match="bad.yaml.*not a Ray cluster-launcher YAML"):
        read_cluster(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_cluster(tmp_path / "absent.yaml")
