"""A checkpoint of another network is refused as a resume target even when every weight has the same
shape: positions, memory initialisation, the temporal module and the shift are invisible to
``load_state_dict(strict=True)``, so only the configuration check can catch them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tdrl.config import ConfigError, Experiment
from tdrl.model.network import build_model
from tdrl.train.checkpoint import CheckpointError, load_checkpoint, load_trained, save_checkpoint

BASE = {"model.backbone": "resnet18", "model.width": 0.25, "model.reduction": 4, "model.frames": 4,
        "model.num_classes": 6}

# (what both networks share, the field that differs, the checkpoint's value, the resuming run's value)
SAME_SHAPES = [
    ({}, "model.enhance_position", "before", "after"),
    ({}, "model.mem_init", "last", "first"),
    ({}, "model.mem_init", "last", "zeros"),
    ({"model.enhance": "none"}, "model.temporal", "tsm", "none"),
    ({"model.temporal": "tsm"}, "model.shift_div", 8, 4),
]


def _experiment(tmp_path: Path, **flat: Any) -> Experiment:
    return Experiment.from_flat({**BASE, "train.storage_path": str(tmp_path / "runs"), "train.name": "resumed",
                                 **flat})


def _save(exp: Experiment) -> Path:
    model = build_model(exp.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    folder = Path(exp.train.storage_path) / exp.train.name / "epoch_0000"
    return save_checkpoint(folder, epoch=0, model=model, optimizer=opt, scheduler=sched, config=exp.flatten(),
                           metrics={"epoch": 0}, mlflow_run_id="r")


@pytest.mark.parametrize("common,field,saved,resumed", SAME_SHAPES, ids=lambda v: str(v))
def test_equal_shapes_other_network_is_refused(tmp_path, common, field, saved, resumed):
    old = _experiment(tmp_path, **common, **{field: saved})
    new = _experiment(tmp_path, **common, **{field: resumed})
    # The premise: the weights alone cannot tell the two networks apart.
    shapes = {k: v.shape for k, v in build_model(old.model).state_dict().items()}
    assert shapes == {k: v.shape for k, v in build_model(new.model).state_dict().items()}
    file = _save(old)
    load_checkpoint(file, expect=old.flatten())  # the same network resumes
    with pytest.raises(CheckpointError, match=rf"{field}={saved!r} \(expected {resumed!r}\)"):
        load_checkpoint(file, expect=new.flatten())
    # The worker's resume (build_training -> load_trained) refuses it too: load_trained rebuilds the
    # checkpoint's own network, so without the check the run would go on training the old one.
    with pytest.raises(CheckpointError, match=rf"{field}={saved!r} \(expected {resumed!r}\)"):
        load_trained(file, expect=new.flatten())
    assert load_trained(file, expect=old.flatten())[1].model == old.model
    # The driver's check before Ray starts refuses the run resumed by name, naming the field.
    from tdrl.train.trainer import preflight_resume

    with pytest.raises(ConfigError, match=rf"train\.name=resumed resumes from .*{field}={saved!r}"):
        preflight_resume(new)
    preflight_resume(old)
