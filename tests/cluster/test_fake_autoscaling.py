"""Autoscaling on Ray's fake multi-node cluster (tools/fake_cluster.py).

Fast: the fake config derived from the launcher YAMLs (hand-worked shapes, Ray's schema), and the
scoping of the cluster's stop (it signals only its own process tree, never another Ray's).
Slow: the whole path, a smoke study under ``ray job submit`` on a fake cluster shaped like
cluster/aws.yaml: worker nodes are added while trials wait for CPUs and removed after the idle
timeout, every trial finishes, every MLflow run is there once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "fake_cluster.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("fake_cluster", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fc = _load_tool()


def launcher(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text())


# ---------------------------------------------------------------- the derived config (fast)


def test_aws_yaml_becomes_a_fake_cluster_of_the_same_types_scaled_to_two_cores():
    cfg = fc.fake_config(launcher("aws.yaml"), cores=2, idle_timeout_minutes=0.5, gcs_address="127.0.0.1:6390")
    types = cfg["available_node_types"]
    assert set(types) == {"ray.head.default", "gpu_worker", "gpu_worker_spot"}
    # head_cpu {"CPU": 8, "GPU": 0}: no CPU for training workers, its 8 CPUs as trial-driver slots
    assert types["ray.head.default"]["resources"] == {"CPU": 0, "TRAIN_DRIVER": 8}
    assert types["ray.head.default"]["max_workers"] == 0
    for name in ("gpu_worker", "gpu_worker_spot"):  # {"CPU": 48, "GPU": 4}, 0..4 nodes
        assert types[name]["resources"] == {"CPU": 2, "FAKE_GPU": 4}  # 4 GPU slots, capped at 2 cores
        assert (types[name]["min_workers"], types[name]["max_workers"]) == (0, 4)
        assert types[name]["labels"] == {"tdrl-node-type": name}
        assert types[name]["node_config"] == {}
    assert (cfg["max_workers"], cfg["upscaling_speed"], cfg["idle_timeout_minutes"]) == (4, 1.0, 0.5)
    assert cfg["head_node_type"] == "ray.head.default"
    assert cfg["provider"]["type"] == "fake_multinode"
    assert cfg["provider"]["gcs_address"] == "127.0.0.1:6390"
    assert cfg["provider"]["disable_node_updaters"] is True  # no SSH to fake nodes


@pytest.mark.parametrize("cores, cpus", [(1, 1), (2, 2), (3, 3), (8, 4)])
def test_a_gpu_node_holds_one_cpu_per_gpu_at_most_the_cores(cores, cpus):
    cfg = fc.fake_config(launcher("gcp.yaml"), cores=cores, idle_timeout_minutes=1, gcs_address="x:1")
    assert cfg["available_node_types"]["gpu_worker"]["resources"] == {"CPU": cpus, "FAKE_GPU": 4}


def test_cpu_only_types_keep_their_cpus_up_to_the_cores_and_empty_types_are_left_out():
    cfg = fc.fake_config({"cluster_name": "c", "max_workers": 3, "head_node_type": "h",
                          "available_node_types": {"h": {"resources": {"CPU": 2}},
                                                   "cpu": {"resources": {"CPU": 16}, "max_workers": 3},
                                                   "small": {"resources": {"CPU": 1}, "max_workers": 2},
                                                   "off": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 0}}},
                         cores=2, idle_timeout_minutes=0.1, gcs_address="x:1")
    types = cfg["available_node_types"]
    assert set(types) == {"ray.head.default", "cpu", "small"}
    assert types["cpu"]["resources"] == {"CPU": 2}
    assert types["small"]["resources"] == {"CPU": 1}
    assert types["ray.head.default"]["resources"] == {"CPU": 0, "TRAIN_DRIVER": 2}
    assert cfg["cluster_name"] == "c-fake" and cfg["max_workers"] == 3


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_fake_config_passes_the_installed_ray_schema_with_every_field_the_autoscaler_reads(name):
    util = pytest.importorskip("ray.autoscaler._private.util")
    pytest.importorskip("jsonschema")
    cfg = fc.fake_config(launcher(name), cores=2, idle_timeout_minutes=0.5, gcs_address="127.0.0.1:6390")
    util.validate_config(cfg)  # jsonschema + Ray's own consistency checks (min/max workers, head type)
    # The autoscaler reads the file as it is (no defaults merged in, as `ray up` would do).
    for key in ("file_mounts", "cluster_synced_files", "worker_setup_commands", "worker_start_ray_commands",
                "head_node_type", "available_node_types", "auth"):
        assert key in cfg
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # what start() writes reads back the same


def test_bad_launchers_and_settings_are_refused():
    with pytest.raises(ValueError, match="head_node_type"):
        fc.fake_config({"available_node_types": {"w": {"resources": {"CPU": 1}, "max_workers": 1}}},
                       cores=2, idle_timeout_minutes=1, gcs_address="x:1")
    with pytest.raises(ValueError, match="no worker node type"):
        fc.fake_config({"head_node_type": "h", "available_node_types": {"h": {"resources": {"CPU": 1}}}},
                       cores=2, idle_timeout_minutes=1, gcs_address="x:1")
    with pytest.raises(ValueError, match="idle_timeout"):
        fc.fake_config(launcher("aws.yaml"), cores=2, idle_timeout_minutes=0, gcs_address="x:1")


def test_print_config_prints_the_derived_yaml(capsys):
    assert fc.main(["--print-config", "--cores", "2", "--idle-timeout-min", "0.5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["available_node_types"]["gpu_worker"]["resources"] == {"CPU": 2, "FAKE_GPU": 4}
    assert cfg["provider"]["gcs_address"] == "127.0.0.1:<port>"


def test_code_snapshot_holds_what_a_job_upload_holds(tmp_path):
    """The job's local:// working dir: the package's code (tdrl/data included), not data or stores."""
    pytest.importorskip("ray._private.runtime_env.packaging")
    tree = tmp_path / "tree"
    for rel in ("tdrl/__init__.py", "tdrl/data/synthetic.py", "studies/ablation_ratio.py", "data/synth/0.webm",
                "mlflow.db", "runs/x/checkpoint.pt"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    for name in (".gitignore", ".rayignore"):
        (tree / name).write_text((REPO / name).read_text())
    out = fc.code_snapshot(tree, tmp_path / "code")
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {"tdrl/__init__.py", "tdrl/data/synthetic.py", "studies/ablation_ratio.py", ".gitignore",
                     ".rayignore"}
    assert not (tmp_path / "code.zip").exists()


# ---------------------------------------------------------------- stopping only its own processes (fast)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this test counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_signals_its_own_process_tree_and_nothing_else(tmp_path):
    """Stand-ins, no Ray: a process naming the cluster's temp dir, with a child that does not (as Ray's
    agents and workers, renamed by setproctitle); a process naming the default /tmp/ray session and the
    temp dir (another Ray instance: never touched); and an unrelated process."""
    cluster = fc.FakeCluster(lambda gcs: {}, tmp_path, head_drivers=1)
    try:
        parent_code = "import subprocess, time; subprocess.Popen(['sleep', '120']); time.sleep(120)"
        ours = subprocess.Popen([sys.executable, "-c", parent_code, f"--temp-dir={cluster.temp_dir}"])
        other_ray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                      f"--session-dir=/tmp/ray/session_x --temp-dir={cluster.temp_dir}"])
        unrelated = subprocess.Popen(["sleep", "120"])
        deadline = time.time() + 30
        while time.time() < deadline:
            found = {p.pid for p in cluster.processes()}
            if len(found) >= 2:
                break
            time.sleep(0.2)
        assert ours.pid in found and len(found) == 2, found  # the parent and its child, nothing else
        assert cluster.stop(grace=5) == 2
        assert ours.wait(timeout=10) is not None
        child = next(iter(found - {ours.pid}))
        assert not _alive(child)
        assert _alive(other_ray.pid) and _alive(unrelated.pid)
        assert cluster.processes() == []
    finally:
        for p in (locals().get("other_ray"), locals().get("unrelated")):
            if p is not None:
                p.kill()
                p.wait()
        os.rmdir(cluster.temp_dir)


# ---------------------------------------------------------------- the whole path (slow)


@pytest.mark.slow
def test_study_on_fake_cluster_scales_up_for_pending_trials_and_down_after_idle_timeout(tmp_path):
    report_path = tmp_path / "report.json"
    cmd = [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "work"), "--report", str(report_path),
           "--timeout", "1200"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1320)
    print(out.stdout[-4000:])
    assert report_path.is_file(), (out.stdout + out.stderr)[-6000:]
    rep = json.loads(report_path.read_text())
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:] + rep.get("job_log_tail", "")
    assert rep["job_rc"] == 0 and "error" not in rep

    # Every trial finished, each row's MLflow run is there once, with every epoch once.
    trials = rep["trials"]
    assert sorted(t["row"] for t in trials) == ["ratio0", "ratio50"]
    assert all(t["status"] == "FINISHED" and t["epochs"] == 4 for t in trials), trials
    last_trial_end = max(t["end_s"] for t in trials)

    # Worker nodes were added after submission, each while a placement group was waiting for CPUs.
    nodes, samples = rep["nodes"], rep["samples"]
    assert nodes, "no worker node was ever added"
    for n in nodes:
        assert n["type"] in ("gpu_worker", "gpu_worker_spot") and n["ip"] == "127.0.0.1"
        assert n["resources"]["CPU"] == 2 and n["resources"]["FAKE_GPU"] == 4
        assert n["added_s"] > 0
        assert any(s["t"] < n["added_s"] and s["pending_pgs"] > 0 for s in samples), (n, samples[:20])
    first_added = min(n["added_s"] for n in nodes)
    assert any(s["t"] < first_added and not s["workers"] and s["pending_pgs"] > 0 for s in samples)
    assert len(nodes) <= rep["fake_config"]["max_workers"]

    # The trials' training workers ran on the worker nodes (the fake head has no CPU).
    assert sum(n["actors"].count("RayTrainWorker") for n in nodes) >= 2 * len(trials)

    # ... and every node was removed again once idle for the idle timeout: not before it had been idle
    # that long (the autoscaler's own idle time, sampled; less a few seconds of sampling), not much
    # after, and none before the trials that ran on it had ended.
    idle = rep["idle_timeout_s"]
    for n in nodes:
        assert n["state"] == "DEAD" and n["removed_s"] is not None and n["idle_since_s"] is not None
        assert idle - 5 <= n["idle_before_removal_s"] <= idle + 90, (n, idle)
        if "RayTrainWorker" in n["actors"]:
            assert n["removed_s"] >= min(t["end_s"] for t in trials) + idle - 5, (n, trials)
        assert n["removed_s"] <= last_trial_end + idle + 90
    assert rep["left_processes"] == 0 and rep["stopped_processes"] > 0
