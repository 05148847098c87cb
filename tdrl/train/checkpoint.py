"""Training checkpoints: one ``checkpoint.pt`` per epoch directory, readable with ``weights_only=True``.

Contents (tensors and plain Python types only, so loading never unpickles code):
``format``, ``epoch`` (0-based, the last finished epoch), ``model`` (state dict of the unwrapped
network, no ``module.`` prefix), ``optimizer``, ``scheduler``, ``config`` (the experiment's flat
keys), ``metrics`` (that epoch's reported metrics) and ``mlflow_run_id``.

Loading refuses, with the file named: a truncated/corrupt file, a file that is not a tdrl
checkpoint, and a checkpoint of another architecture or number of classes than expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from tdrl.config.base import ConfigError, InputError, marked_fields
from tdrl.config.experiment import Experiment
from tdrl.config.model import ModelConfig
from tdrl.model.network import build_model

FORMAT = "tdrl-checkpoint-v1"
FILENAME = "checkpoint.pt"
REQUIRED = ("format", "epoch", "model", "optimizer", "scheduler", "config", "metrics", "mlflow_run_id")


class CheckpointError(InputError, RuntimeError):
    """A checkpoint cannot be used; the message names the file and the reason."""


def checkpoint_file(path: str | Path) -> Path:
    """``path`` itself if it is a file, else ``path/checkpoint.pt``."""
    path = Path(path)
    return path / FILENAME if path.is_dir() else path


def save_checkpoint(directory: str | Path, *, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, config: Mapping[str, Any], metrics: Mapping[str, Any],
                    mlflow_run_id: str | None, history: Mapping[int, Mapping[str, Any]] | None = None) -> Path:
    """Write ``directory/checkpoint.pt`` atomically (temp file + rename, so a crash leaves no half file).

    ``history`` holds every epoch's metrics so far (a few numbers each): a restarted run re-logs from
    it whatever its MLflow run lacks, so points queued during a tracking outage survive a crash."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": {k: v for k, v in config.items()},
        "metrics": {k: float(v) if isinstance(v, (int, float)) else v for k, v in metrics.items()},
        "mlflow_run_id": mlflow_run_id or "",
        "history": {int(e): {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
                    for e, m in (history or {}).items()},
    }
    target = directory / FILENAME
    tmp = directory / (FILENAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)
    return target


def arch_of(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture-defining ``model.*`` values of a flat configuration, normalised for comparison."""
    model = Experiment.from_flat({k: v for k, v in flat.items() if k.startswith("model.")}).model
    return {f: getattr(model, f) for f in marked_fields(ModelConfig, "arch")}


def load_checkpoint(path: str | Path, expect: Mapping[str, Any] | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; with ``expect`` (flat config with ``model.*`` keys) refuse another architecture."""
    file = checkpoint_file(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no such checkpoint file")
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, wrong magic, unpickling refused: all mean "unreadable"
        raise CheckpointError(f"{file}: cannot be read ({type(exc).__name__}: {exc}); the file is truncated, "
                              f"corrupt or not a torch checkpoint") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a tdrl checkpoint (expected format {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{file}: incomplete tdrl checkpoint, missing {', '.join(missing)}")
    if expect is not None:
        have, want = arch_of(state["config"]), arch_of(expect)
        diff = [f"model.{k}={have[k]!r} (expected {want[k]!r})" for k in have if have[k] != want[k]]
        if diff:
            raise CheckpointError(f"{file}: checkpoint is of another network: {'; '.join(diff)}")
    return state


def load_model_state(model: torch.nn.Module, state: Mapping[str, Any], file: str | Path) -> None:
    """``load_state_dict(strict=True)`` with the checkpoint file named in the error."""
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint_file(file)}: weights do not fit the network: {exc}") from exc


def load_trained(path: str | Path, *, expect: Mapping[str, Any] | None = None,
                 map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, Experiment, dict[str, Any]]:
    """A trained network from a checkpoint (file or epoch folder): ``(network, experiment, state)``.

    The network is rebuilt from the checkpoint's own configuration, loaded strictly and put in eval
    mode, on the CPU; ``experiment`` is that configuration with ``model.pretrained`` cleared (the
    checkpoint's weights replace ImageNet's, so nothing is read or downloaded for them); ``state`` is
    the checkpoint (optimizer, scheduler, epoch, metrics, history, MLflow run id). ``expect`` refuses
    another architecture (see :func:`load_checkpoint`). Used by resume, ``tdrl eval`` and the figures.
    """
    state = load_checkpoint(path, expect=expect, map_location=map_location)
    try:
        exp = Experiment.from_flat({**state["config"], "model.pretrained": None})
    except ConfigError as exc:
        raise CheckpointError(f"{checkpoint_file(path)}: its configuration is not valid here: {exc}") from exc
    model = build_model(exp.model)
    load_model_state(model, state, path)
    return model.eval(), exp, state
