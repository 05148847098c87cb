"""Checkpoints load with weights_only=True; truncated / other-architecture ones are refused by name."""

from __future__ import annotations

import re

import pytest
import torch

from tdrl.config import Experiment
from tdrl.model.network import build_model
from tdrl.train.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint

FLAT = Experiment.from_flat({"model.backbone": "resnet18", "model.width": 0.25, "model.reduction": 4,
                             "model.frames": 4, "model.num_classes": 6}).flatten()


def _write(tmp_path, flat=FLAT):
    exp = Experiment.from_flat(flat)
    model = build_model(exp.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 4, 3, 32, 32))[0].sum().backward()
    opt.step()  # momentum buffers exist, so the optimizer state is non-trivial
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.1 ** (e >= 3))
    sched.step()
    path = save_checkpoint(tmp_path, epoch=3, model=model, optimizer=opt, scheduler=sched, config=flat,
                           metrics={"val_top1": 50.0, "epoch": 3}, mlflow_run_id="abc123",
                           history={e: {"val_top1": 10.0 * e, "epoch": e} for e in range(4)})
    return path, model, opt, sched


def test_round_trip_with_weights_only(tmp_path):
    path, model, opt, sched = _write(tmp_path)
    raw = torch.load(path, weights_only=True)  # must not need unpickling of code
    assert raw["epoch"] == 3 and raw["mlflow_run_id"] == "abc123" and raw["metrics"]["val_top1"] == 50.0
    assert raw["history"] == {e: {"val_top1": 10.0 * e, "epoch": float(e)} for e in range(4)}
    state = load_checkpoint(tmp_path, expect=FLAT)
    fresh = build_model(Experiment.from_flat(FLAT).model)
    load_model_state(fresh, state, tmp_path)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(state["optimizer"])
    assert len(opt2.state) == len(opt.state)


def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    path, *_ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)) as err:
        load_checkpoint(tmp_path)
    assert "truncated" in str(err.value)


def test_other_architecture_is_refused(tmp_path):
    _write(tmp_path)
    other = {**FLAT, "model.backbone": "resnet34"}
    with pytest.raises(CheckpointError, match=r"model.backbone='resnet18' \(expected 'resnet34'\)") as err:
        load_checkpoint(tmp_path, expect=other)
    assert "checkpoint.pt" in str(err.value)


def test_other_num_classes_is_refused(tmp_path):
    _write(tmp_path)
    with pytest.raises(CheckpointError, match=r"model.num_classes=6 \(expected 10\)"):
        load_checkpoint(tmp_path, expect={**FLAT, "model.num_classes": 10})
    # Even without the config check, the weights themselves do not fit: named file, clear reason.
    state = load_checkpoint(tmp_path)
    net = build_model(Experiment.from_flat({**FLAT, "model.num_classes": 10}).model)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_model_state(net, state, tmp_path)


def test_not_a_checkpoint_is_refused(tmp_path):
    f = tmp_path / "checkpoint.pt"
    torch.save({"hello": torch.zeros(1)}, f)
    with pytest.raises(CheckpointError, match="not a tdrl checkpoint"):
        load_checkpoint(f)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_a_weight_missing_or_unknown_is_refused(tmp_path):
    """Loading is strict: a weight the checkpoint lacks would stay at its random initial value, and
    one the network lacks would be dropped, both silently; each must be an error naming the file."""
    _write(tmp_path)
    state = load_checkpoint(tmp_path)
    first = next(iter(state["model"]))
    cases = {"Missing key": {k: v for k, v in state["model"].items() if k != first},
             "Unexpected key": {**state["model"], "extra.weight": torch.zeros(1)}}
    for what, weights in cases.items():
        net = build_model(Experiment.from_flat(FLAT).model)
        with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / 'checkpoint.pt'}: weights do not fit")) as err:
            load_model_state(net, {**state, "model": weights}, tmp_path)
        assert what in str(err.value) and (first in str(err.value) or "extra.weight" in str(err.value))


def test_incomplete_checkpoint_names_what_it_lacks(tmp_path):
    path, *_ = _write(tmp_path)
    state = torch.load(path, weights_only=True)
    del state["optimizer"], state["scheduler"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: incomplete tdrl checkpoint, missing optimizer, "
                                                        f"scheduler")):
        load_checkpoint(tmp_path)
