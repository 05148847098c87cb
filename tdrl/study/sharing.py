"""Runs shared between studies: each (configuration, seed, preset) is trained once.

Several paper rows are the same network trained the same way: Table 4's "+TDLoss" = Table 5's
"+50% TDLoss" = Table 6's "TDLoss A. TM" = Table 7's "2e-4"; the TIM baseline appears in Tables
4-7 (Table 7's lambda 0 computes the TD term but gives it no weight, which trains bit for bit like
no TD loss). A trial first looks in MLflow for a FINISHED run of the same :func:`config_hash`,
seed and preset, trained by any study; if there is one, it records a child run in its own study
that copies the final metrics and points at the source (``tdrl.shared_from``), instead of training.

What the hash covers: every field that decides what a run trains to, in a canonical form:

- fields with no effect on the result are left out (run names, storage, tracking, progress,
  failure handling, checkpoint retention, loader process counts);
- model fields that a configuration switches off are reset to their defaults (the TD ratio,
  position and blocks when the TD term has no weight; the enhancement position and memory init
  without PEM; the memory init with MEM; the shift fold without a temporal module);
- how the network is computed: ``model.recompute`` never counts (it recomputes the same values);
  ``model.kernels`` counts only as ``triton`` (fused Triton kernels round differently from PyTorch's
  ops); ``auto`` and ``eager`` are left out, so every configuration keeps the hash it had before the
  field existed. ``auto`` means triton on a GPU and eager on the CPU, as ``train.precision=auto``
  means bf16 on a GPU and float32 on the CPU: the hash names a configuration, not the machine it ran
  on; set ``model.kernels`` explicitly to keep kernel-pinned runs apart;
- the dataset: a generated synthetic set by its generator parameters (so the same set in
  another folder, e.g. a job's temporary working directory, still matches), any other dataset by
  its absolute paths;
- :data:`RESULTS_VERSION`, bumped whenever a change to tdrl alters what a configuration trains
  to, so runs of older code are never reused.

Any other change gives another hash: a changed configuration never reuses a run.
"""

from __future__ import annotations

import hashlib
import time
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tdrl.config.base import from_dict
from tdrl.config.model import ModelConfig
from tdrl.config.paths import is_uri
from tdrl.data.synthetic import MARKER
from tdrl.train import tracking as tr

RESULTS_VERSION = 2  # 2: parameter groups (no decay on norm layers/biases) and the post-build re-seed

# Fields that never change what a run trains to.
_IGNORED = {
    "train.name", "train.storage_path", "train.mlflow_uri", "train.experiment", "train.progress",
    "train.max_failures", "train.keep_best", "train.fail_at_step", "train.fail_rank", "train.cpus_per_worker",
    "data.workers", "data.on_error", "data.max_error_fraction", "data.cache", "train.seed", "model.recompute",
}
_DATA_PATHS = ("data.root", "data.video_dir", "data.train_annotations", "data.val_annotations", "data.labels")


def _model_defaults() -> dict[str, Any]:
    return {f"model.{k}": v for k, v in ModelConfig().__dict__.items()}


def _model(flat: Mapping[str, Any]) -> ModelConfig:
    return from_dict(ModelConfig, {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")},
                     section="model")


def canonical(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a resolved flat experiment that decide its result, in canonical form."""
    out = {k: v for k, v in flat.items() if k not in _IGNORED and not k.startswith("_")}
    if out.get("model.kernels") in ("auto", "eager"):
        del out["model.kernels"]
    defaults = _model_defaults()

    def reset(*keys: str) -> None:
        for key in keys:
            if key in out:
                out[key] = defaults[key]

    if not _model(flat).td_trains:
        out["model.td_ratio"], out["model.td_lambda"] = 0.0, 0.0
        reset("model.td_position", "model.td_blocks")
    if out.get("model.enhance") == "none":
        reset("model.enhance_position", "model.mem_init")
    elif out.get("model.enhance") == "mem":
        reset("model.mem_init")
    if out.get("model.temporal") == "none":
        reset("model.shift_div")
    root = out.get("data.root")
    synth = _synthetic_identity(str(root)) if root else None
    if synth is not None:
        for key in _DATA_PATHS:
            out.pop(key, None)
        out["data.synthetic"] = synth
    out["results_version"] = RESULTS_VERSION
    return out


def _synthetic_identity(root: str) -> dict[str, Any] | None:
    """A generated synthetic set's parameters (its completion marker), or None for other data."""
    if is_uri(root):
        return None
    marker = Path(root) / MARKER
    try:
        return dict(json.loads(marker.read_text())["params"])
    except (OSError, ValueError, KeyError):
        return None


def config_hash(flat: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of :func:`canonical` (JSON, sorted keys)."""
    text = json.dumps(canonical(flat), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SharedRun:
    run_id: str
    study: str  # the study that trained it ("table4")
    metrics: dict[str, float]  # its final metrics


def find_shared(uri: str, chash: str, seed: int, preset: str) -> SharedRun | None:
    """The oldest FINISHED, trained (not itself shared) run with this hash, seed and preset, in any
    experiment of the tracking store; None if there is none."""
    client = tr.mlflow_client(uri)
    ids = [e.experiment_id for e in tr.with_retry(lambda: client.search_experiments(), uri)]
    if not ids:
        return None
    filt = (f"tags.`{tr.CONFIG_HASH_TAG}` = '{chash}' and tags.`{tr.SEED_TAG}` = '{seed}' and "
            f"tags.`{tr.PRESET_TAG}` = '{preset}' and attributes.status = 'FINISHED'")
    runs = tr.with_retry(lambda: client.search_runs(ids, filter_string=filt, max_results=50,
                                                    order_by=["attributes.start_time ASC"]), uri)
    for run in runs:
        if tr.SHARED_FROM_TAG not in run.data.tags and tr.SCORE in run.data.metrics:
            return SharedRun(run.info.run_id, run.data.tags.get(tr.STUDY_TAG, ""), dict(run.data.metrics))
    return None


def record_shared(uri: str, experiment: str, run_name: str, parent_run_id: str, tags: Mapping[str, str],
                  params: Mapping[str, Any], source: SharedRun, display_name: str | None = None) -> str:
    """A FINISHED child run in this study that copies ``source``'s final metrics; returns its id.

    Tagged with ``tdrl.run_name`` like a trained run, so a restarted trial finds it and reports it
    instead of recording a second one; ``display_name`` is what the UI shows (default ``run_name``)."""
    from mlflow.entities import Metric  # seconds to import: only when a run is shared

    note = (f"Not trained here: the same configuration and seed were trained in study {source.study}, "
            f"run {source.run_id}; these are that run's final metrics.")
    run_id, _ = tr.find_or_create_run(
        uri, experiment, run_name=display_name or run_name, match={tr.RUN_NAME_TAG: run_name},
        parent_run_id=parent_run_id,
        tags={**tags, tr.SHARED_FROM_TAG: source.run_id, tr.SHARED_STUDY_TAG: source.study,
              "mlflow.note.content": note}, params=params)
    step = int(source.metrics.get("epoch", 0))
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for k, v in sorted(source.metrics.items())]
    tr.with_retry(lambda: tr.mlflow_client(uri).log_batch(run_id, metrics=metrics), uri)
    tr.end_run(uri, run_id)
    return run_id
