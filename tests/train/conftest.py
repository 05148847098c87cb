"""Tiny-run helpers for the training tests: a small synthetic set and a tiny, fast experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tdrl.config.experiment import Experiment

TINY_SYNTH = {"num_classes": 4, "train_per_class": 24, "val_per_class": 8, "frames": 8, "size": 48, "seed": 0}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """A 4-class synthetic Something-Something-V2-format set (96 train / 32 val clips, 48 px)."""
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth-tiny")
    generate_synthetic(root, workers=2, **TINY_SYNTH)
    return str(root)


@pytest.fixture
def tiny_experiment(tiny_data, tmp_path):
    """``make(**flat_overrides) -> Experiment``: a tiny TDRL-R18 run writing under this test's tmp_path."""

    def make(**overrides: Any) -> Experiment:
        flat = {
            "model.backbone": "resnet18", "model.width": 0.25, "model.reduction": 4, "model.frames": 4,
            "model.num_classes": TINY_SYNTH["num_classes"], "model.dropout": 0.0,
            "data.dataset": "sthv2", "data.root": tiny_data, "data.decoder": "pyav", "data.input_size": 40,
            "data.short_side": 48, "data.workers": 0,
            "train.epochs": 2, "train.batch_size": 8, "train.workers": 1, "train.lr_per_64": 0.4,
            "train.lr_steps": "", "train.storage_path": str(tmp_path / "runs"),
            "train.mlflow_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "train.experiment": "tests",
            "train.progress": "lines", "train.name": "tiny",
        }
        flat.update({k.replace("__", "."): v for k, v in overrides.items()})
        return Experiment.from_flat(flat)

    return make
