"""Named starting points for ``tdrl train --preset``: smoke (minutes on 2 CPU cores), cpu, paper.

A preset is a set of flat ``section.field`` values layered over the dataclass defaults, plus, for
the CPU presets, the parameters of the synthetic benchmark it trains on; that set is generated
on first use (``prepare_data``) under ``./data/synth-<preset>``.

- ``smoke``: ResNet-18 at width 0.25, 8 frames, 56 px crops of 64 px videos, 6 classes (3 reversed
  pairs: chance 16.7%), 2 workers x 4 clips (global batch 8, lr 0.01 after a 1-epoch linear warm-up),
  14 epochs, lr x0.1 at 10. Shows the whole machinery (DDP, checkpoints, MLflow) working and
  learning in about two minutes.
- ``cpu``: the same family, 8 frames, 80 px, 10 classes (800 training clips), 2 workers, 20 epochs,
  lr 0.01 (lr_per_64 0.04 at global batch 16) after a 1-epoch warm-up: a longer CPU run that
  clearly learns the temporal-order benchmark.

Why both CPU presets warm up to lr 0.01 (higher rates collapsed the randomly initialised network
to chance on some seeds), and the measured runs: docs/training.md, "Measured smoke run".
- ``paper``: spec.md's recipe: TDRL ResNet-50 (TIM + PEM + TD loss), 8 frames, 224 px,
  Something-Something V1, ImageNet weights, batch 64 in total over 8 GPU workers, SGD lr 0.01 per 64,
  50 epochs with x0.1 at 30/40/45, bf16 autocast + channels_last on GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdrl.config.base import ConfigError
from tdrl.config.experiment import Experiment
from tdrl.config.paths import is_uri
from tdrl.data.synthetic import MARKER, generate_synthetic


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    values: dict[str, Any]
    synthetic: dict[str, Any] | None = field(default=None)  # generate_synthetic(root, **synthetic)

    def experiment(self) -> Experiment:
        return Experiment.from_flat(self.values)


_SMALL_NET = {"model.backbone": "resnet18", "model.width": 0.25, "model.dropout": 0.2,
              "model.reduction": 4, "data.dataset": "sthv2", "data.decoder": "pyav"}

# The bench preset's difficulty and length (calibration: docs/results.md).
BENCH_KNOBS = {"motion_scale": 0.75, "motion_window": 0.75, "moving_distractors": 1, "occluders": 1, "jitter": 1.0}
BENCH_EPOCHS, BENCH_STEPS = 20, "16"

DEFAULT_PRESET = "smoke"  # what `tdrl train` and the studies run without --preset (or --config)

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke", "a few minutes on 2 CPU cores: tiny TDRL-R18 on a 6-class synthetic set",
        {**_SMALL_NET, "model.num_classes": 6, "model.frames": 8,
         "data.root": "data/synth-smoke", "data.input_size": 56, "data.short_side": 64, "data.workers": 1,
         "train.epochs": 14, "train.batch_size": 4, "train.workers": 2,
         # lr 0.01 for the global batch of 8, warmed up over the first epoch: see the module docstring
         # (lr 0.1 collapsed the from-scratch net to chance for most seeds).
         "train.lr_per_64": 0.08, "train.warmup_epochs": 1, "train.lr_steps": "10", "train.weight_decay": 1e-4, "train.grad_clip": 20.0,
         "train.experiment": "tdrl-smoke"},
        {"num_classes": 6, "train_per_class": 60, "val_per_class": 10, "frames": 16, "size": 64, "seed": 0}),
    "cpu": Preset(
        "cpu", "a longer CPU run (about 4 minutes on 2 cores) that learns the 10-class synthetic benchmark",
        {**_SMALL_NET, "model.num_classes": 10, "model.frames": 8,
         "data.root": "data/synth-cpu", "data.input_size": 80, "data.short_side": 96, "data.workers": 1,
         "train.epochs": 20, "train.batch_size": 8, "train.workers": 2, "train.lr_per_64": 0.04,
         "train.warmup_epochs": 1, "train.lr_steps": "14,18", "train.grad_clip": 20.0, "train.experiment": "tdrl-cpu"},
        {"num_classes": 10, "train_per_class": 80, "val_per_class": 20, "frames": 16, "size": 96, "seed": 0}),
    "bench": Preset(
        "bench", "the CPU measurement benchmark for the ablation studies (about 7 minutes a run, two side by "
                 "side on 2 cores): "
                 "TDRL-R18/0.25 on a harder 14-class synthetic set with 1,008 validation clips",
        # Calibrated on TSN and the TIM/TSM baselines only (docs/results.md, "Calibration"): the
        # difficulty knobs and the small training set put the baseline between 55 and 85 % (70.9 %
        # over 5 seeds), where its training accuracy reaches its validation accuracy (70.7 vs 70.9 %):
        # at the edge of overfitting, not deep in it as the paper's pretrained ResNet-50.
        {**_SMALL_NET, "model.num_classes": 14, "model.frames": 8,
         "data.root": "data/synth-bench", "data.input_size": 56, "data.short_side": 64, "data.workers": 1,
         # Decoding cost ~3x the network's step here: keep decoded videos and finished validation
         # clips in memory (data.cache) and let decord decode (64 px frames are a width it handles).
         "data.decoder": "auto", "data.cache": True, "train.eval_batch_size": 32,
         "train.epochs": BENCH_EPOCHS, "train.batch_size": 8, "train.workers": 1, "train.lr_per_64": 0.08,
         "train.warmup_epochs": 1, "train.lr_steps": BENCH_STEPS, "train.grad_clip": 20.0,
         "train.experiment": "tdrl-bench"},
        {"num_classes": 14, "train_per_class": 40, "val_per_class": 72, "frames": 16, "size": 64, "seed": 0,
         **BENCH_KNOBS}),
    "paper": Preset(
        "paper", "the paper's recipe: TDRL-R50 8f 224px on Something-Something V1, 50 epochs on 8 GPUs",
        {"model.backbone": "resnet50", "model.frames": 8, "model.num_classes": 174, "model.pretrained": "imagenet",
         "data.dataset": "sthv1", "data.root": "data/something-something-v1", "data.input_size": 224,
         "data.short_side": 256, "data.workers": 8,
         "train.epochs": 50, "train.batch_size": 8, "train.workers": 8, "train.cpus_per_worker": 8,
         "train.lr_per_64": 0.01, "train.lr_steps": "30,40,45", "train.momentum": 0.9,
         "train.weight_decay": 1e-4, "train.precision": "auto", "train.experiment": "tdrl-paper"}),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def prepare_data(preset: Preset, exp: Experiment) -> None:
    """Generate the preset's synthetic set at ``exp.data.root`` if it is missing or incomplete.

    Only when the experiment still reads the preset's synthetic data (same dataset format); a run
    pointed at other data is left alone. The generator reuses a complete set with the same
    parameters, so this is cheap after the first time.
    """
    if preset.synthetic is None or exp.data.dataset != "sthv2" or is_uri(exp.data.root):
        return
    root = Path(exp.data.root)
    if root.exists() and not (root / MARKER).exists() and any(root.iterdir()):
        return  # a real dataset lives there: never write into it
    info = generate_synthetic(root, **preset.synthetic)
    if info.generated:
        print(f"[tdrl] generated the {preset.name} synthetic set in {root}", flush=True)
