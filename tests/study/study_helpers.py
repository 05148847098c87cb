"""Helpers for the study tests (a module of its own: several test folders have a conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TINY_SYNTH = {"num_classes": 4, "train_per_class": 16, "val_per_class": 6, "frames": 8, "size": 48, "seed": 0}
# A study row trained in seconds: TDRL-R18 at width 0.25 on 40 px crops, 4 frames, 1 worker.
TINY = {"model.num_classes": 4, "model.frames": 4, "data.input_size": 40, "data.short_side": 48,
        "data.workers": 0, "train.epochs": 1, "train.workers": 1, "train.batch_size": 8, "train.lr_steps": "",
        "train.lr_per_64": 0.4, "train.warmup_epochs": 0, "train.keep_best": 1}  # own lr recipe: no smoke warm-up


def set_args(flat: dict[str, Any]) -> list[str]:
    """``--set K=V`` arguments for a study script."""
    out: list[str] = []
    for k, v in flat.items():
        out += ["--set", f"{k}={v}"]
    return out


def child_runs(uri: str, experiment: str):
    """All runs of an experiment that have a parent (trial runs), as MLflow Run objects."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if "mlflow.parentRunId" in r.data.tags]


def run_script(script: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 900):
    return subprocess.run([sys.executable, str(REPO / "studies" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
