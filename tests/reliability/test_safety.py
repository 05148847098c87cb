"""Safety: no loader unpickles code, servers bind to loopback, no credentials in the repository's
docs and cluster files, and `ray job submit --working-dir .` leaves data, checkpoints and MLflow
stores out of the upload."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from rel_helpers import REPO

# --- loaders refuse pickled objects --------------------------------------------------------------

MARKER: list[Path] = []


def _pwned(path: str) -> None:  # what a malicious pickle would run on load
    Path(path).write_text("code ran")


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_pwned, (self.marker,))


def _malicious_checkpoint(folder: Path, marker: Path) -> Path:
    """A file that looks like a tdrl checkpoint but carries an object whose unpickling runs code."""
    from tdrl.config import Experiment
    from tdrl.model.network import build_model
    from tdrl.train.checkpoint import FORMAT

    flat = Experiment.from_flat({"model.backbone": "resnet18", "model.width": 0.25, "model.reduction": 4,
                                 "model.frames": 4, "model.num_classes": 4}).flatten()
    state = {"format": FORMAT, "epoch": 0, "model": build_model(Experiment.from_flat(flat).model).state_dict(),
             "optimizer": {}, "scheduler": {}, "config": flat, "metrics": {"note": Payload(marker)},
             "mlflow_run_id": ""}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "checkpoint.pt")
    return folder / "checkpoint.pt"


def test_pickled_code_is_refused_by_every_loader(tmp_path, tiny_experiment, monkeypatch, capsys):
    from tdrl.cli import main
    from tdrl.config import ConfigError
    from tdrl.model.weights import WeightsError, load_imagenet
    from tdrl.model.network import build_model
    from tdrl.train import trainer
    from tdrl.train.checkpoint import CheckpointError, load_checkpoint
    from tdrl.viz.loading import load_model

    marker = tmp_path / "pwned"
    ckpt = _malicious_checkpoint(tmp_path / "evil", marker)
    # The payload is live: full unpickling runs it.
    torch.load(ckpt, weights_only=False)
    assert marker.read_text() == "code ran"
    marker.unlink()

    with pytest.raises(CheckpointError, match=r"evil/checkpoint\.pt: cannot be read"):
        load_checkpoint(ckpt)  # training resume (loop.py) and tdrl eval go through this
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model(ckpt)  # tdrl visualize
    assert main(["eval", str(ckpt)]) == 2 and "cannot be read" in capsys.readouterr().err
    weights = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload(marker)}, weights)
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_imagenet(build_model(tiny_experiment().model), str(weights), "resnet18")
    # A resumed run whose newest checkpoint is the malicious file: refused before Ray starts.
    monkeypatch.setattr(trainer, "connect_ray", lambda: (_ for _ in ()).throw(AssertionError("Ray started")))
    exp = trainer.resolve(tiny_experiment(train__name="evil"))
    shutil.copy(ckpt, _malicious_checkpoint(Path(exp.train.storage_path) / "evil" / "epoch_0000", marker))
    with pytest.raises(ConfigError, match="cannot be read"):
        trainer.fit(exp)
    assert not marker.exists(), "a loader unpickled code"


def test_every_torch_load_in_tdrl_passes_weights_only_true():
    calls, bad = [], []
    for path in sorted((REPO / "tdrl").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = (f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    else getattr(f, "id", ""))
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name in ("torch.load", "load") and name == "torch.load":
                calls.append(where)
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    bad.append(where)
            if name in ("pickle.load", "pickle.loads", "dill.load", "joblib.load", "torch.jit.load"):
                bad.append(f"{where} ({name})")
    assert calls, "no torch.load found: the scan is broken"
    assert not bad, f"loads without weights_only=True: {bad}"


# --- servers on loopback -------------------------------------------------------------------------

RAY_PROBE = r"""
import ray
from tdrl.train.cluster import connect_ray
assert connect_ray(), "expected a local Ray to be started"
print("URL " + ray._private.worker.global_worker.node.address_info["webui_url"], flush=True)
port = int(ray._private.worker.global_worker.node.address_info["webui_url"].rsplit(":", 1)[1])
listening = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if state == "0A" and int(p, 16) == port:
            listening.add(addr)
print("LISTEN " + ",".join(sorted(listening)), flush=True)
ray.shutdown()
"""


def test_local_ray_dashboard_binds_to_loopback(tmp_path):
    """tdrl's own local Ray start (tdrl train without RAY_ADDRESS): the dashboard URL host is
    127.0.0.1 and its port listens on 127.0.0.1 only (0100007F in /proc/net/tcp)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", RAY_PROBE], capture_output=True, text=True, timeout=180, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    url = next(ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("URL "))
    listen = next(ln.split(" ", 1)[1] if " " in ln else "" for ln in out.stdout.splitlines() if ln.startswith("LISTEN"))
    assert url.startswith("127.0.0.1:"), url
    assert listen == "0100007F", f"dashboard port listens on {listen!r}"


def _commands(text: str, program: str) -> list[str]:
    """Each occurrence of ``program`` with the rest of its command (backslash continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(0) for m in re.finditer(rf"{program}[^\n`'|;]*", joined)]


DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "cluster").glob("*.yaml"))]


def test_documented_mlflow_and_ray_servers_bind_to_loopback():
    help_text = subprocess.run([sys.executable, "-m", "mlflow", "server", "--help"], capture_output=True,
                               text=True, timeout=120).stdout
    assert "(default: 127.0.0.1)" in help_text  # a command without --host stays on loopback
    seen = 0
    for f in DOC_FILES:
        text = f.read_text()
        for cmd in _commands(text, r"mlflow (?:server|ui)"):
            seen += 1
            host = re.search(r"--host[ =](\S+)", cmd)
            assert host is None or host.group(1) in ("127.0.0.1", "localhost"), f"{f.name}: {cmd}"
        for cmd in _commands(text, r"ray start --head"):
            host = re.search(r"--dashboard-host[ =](\S+)", cmd)
            assert host is None or host.group(1) in ("127.0.0.1", "localhost"), f"{f.name}: {cmd}"
        if f.suffix == ".yaml" and f.name != "kuberay.yaml":
            for m in re.finditer(r"dashboard-host[ =:]+\"?([\w.]+)", text):
                assert m.group(1) == "127.0.0.1", f"{f.name}: dashboard-host {m.group(1)}"
    assert seen >= 4, "the scan found too few mlflow commands: is it broken?"
    # KubeRay: the dashboard listens on the pod address (the RayJob submitter needs it) but the
    # Service is cluster-internal; nothing exposes it outside the cluster.
    kuberay = re.sub(r"#[^\n]*", "", (REPO / "cluster" / "kuberay.yaml").read_text())  # settings, not comments
    assert re.search(r"serviceType:\s*ClusterIP", kuberay)
    assert not re.search(r"LoadBalancer|NodePort|kind:\s*Ingress|hostNetwork:\s*true", kuberay)


def test_tdrl_starts_servers_only_on_loopback_in_code():
    """Every local Ray that tdrl starts itself (a ray.init with num_cpus; a bare ray.init() joins an
    existing cluster) pins the dashboard to 127.0.0.1 and asks for a new local instance."""
    local_inits = 0
    for path in sorted((REPO / "tdrl").rglob("*.py")):
        text = path.read_text()
        assert "0.0.0.0" not in text, path
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "init"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "ray"):
                kw = {k.arg: k.value for k in node.keywords}
                if "num_cpus" in kw:
                    local_inits += 1
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    assert getattr(kw.get("dashboard_host"), "value", None) == "127.0.0.1", where
                    assert getattr(kw.get("address"), "value", None) == "local", where
    assert local_inits >= 1  # tdrl.train.cluster.connect_ray: tdrl train and the studies


# --- no credentials ------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret key": r"(?i)aws_secret_access_key\s*[:=]\s*\S+",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "GCP service-account key": r"\"private_key(_id)?\"\s*:",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    "Slack token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "generic secret assignment": r"(?i)\b(password|passwd|secret|api[_-]?key|auth[_-]?token)\b\s*[:=]\s*['\"]?"
                                 r"(?!\$|<|YOUR|your|\.\.\.|None|null|\{)[A-Za-z0-9/+_\-]{12,}",
    "token in a URL": r"https?://[^\s/:@]+:[^\s/@]+@",
    "credentials file written into config": r"GOOGLE_APPLICATION_CREDENTIALS\s*[:=]\s*\S+\.json",
}


def test_no_credentials_in_readme_docs_or_cluster_files():
    files = [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*") if p.suffix in (".md", ".txt")),
             *sorted((REPO / "cluster").rglob("*")), *sorted((REPO / "studies").glob("*.py"))]
    hits = []
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        for what, pattern in SECRET_PATTERNS.items():
            for m in re.finditer(pattern, text):
                hits.append(f"{f.relative_to(REPO)}: {what}: {m.group(0)[:40]}")
    assert not hits, hits
    # Credentials come from the cloud's standard chain, which the docs name.
    cluster_doc = (REPO / "docs" / "cluster.md").read_text()
    assert "AWS_PROFILE" in cluster_doc and "Application Default Credentials" in cluster_doc


def test_secret_scan_catches_planted_secrets():
    planted = ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nkey: AKIAABCDEFGHIJKLMNOP\n"
               "password: hunter2hunter2hunter2\nhttp://user:pw@mlflow:5000\n-----BEGIN RSA PRIVATE KEY-----\n")
    found = {what for what, p in SECRET_PATTERNS.items() if re.search(p, planted)}
    assert {"AWS access key id", "AWS secret key", "private key", "generic secret assignment",
            "token in a URL"} <= found


# --- the ray job submit upload --------------------------------------------------------------------

UPLOAD_EXCLUDED = ["data/synth-smoke/train/0.webm", "data/sthv1/frames/1/00001.jpg", "mlflow.db",
                   "mlruns/0/meta.yaml", "mlartifacts/1/a/artifacts/config.json", "runs/r/epoch_0001/checkpoint.pt",
                   "runs/studies/t5/tdrl_study.json", "checkpoints/best.pt", "ray_results/exp/result.json",
                   "weights/resnet50.pth", "studies/data/local.csv", "bench_loader.json",
                   ".hypothesis/examples/x"]
UPLOAD_KEPT = ["tdrl/__init__.py", "tdrl/train/loop.py", "tdrl/data/__init__.py", "tdrl/data/synthetic.py",
               "studies/ablation_ratio.py", "docs/training.md", "pyproject.toml", "cluster/aws.yaml"]


@pytest.mark.parametrize("include_gitignore", [True, False], ids=["gitignore+rayignore", "rayignore-only"])
def test_ray_job_upload_excludes_data_checkpoints_and_mlflow_stores(tmp_path, include_gitignore):
    """The package `ray job submit --working-dir .` uploads, built by Ray's own packaging code from a
    copy of the repository's ignore files; .rayignore alone must be enough (Ray can be told to skip
    .gitignore with RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1)."""
    from ray._private.runtime_env.packaging import create_package

    tree = tmp_path / "tree"
    for name in (".gitignore", ".rayignore"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tree / name)
    for rel in UPLOAD_EXCLUDED + UPLOAD_KEPT:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    pkg = tmp_path / "pkg.zip"
    create_package(str(tree), pkg, include_gitignore=include_gitignore)
    names = set(zipfile.ZipFile(pkg).namelist())
    assert {rel for rel in UPLOAD_KEPT if rel not in names} == set()
    leaked = sorted(rel for rel in UPLOAD_EXCLUDED if rel in names)
    assert not leaked, f"uploaded: {leaked}"
