"""TrainConfig / Experiment validation, file loading, CLI layering, lr scaling and schedule."""

from __future__ import annotations

import argparse
import json

import pytest

from tdrl.config import ConfigError, Experiment, TrainConfig
from tdrl.config.experiment import load_file
from tdrl.train.schedule import lr_factor


def test_paper_recipe_defaults():
    t = TrainConfig()
    assert (t.momentum, t.weight_decay, t.lr_per_64, t.lr_steps, t.epochs) == (0.9, 1e-4, 0.01, (30, 40, 45), 50)


@pytest.mark.parametrize("batch,workers,lr", [(8, 8, 0.01), (8, 1, 0.00125), (16, 8, 0.02), (32, 4, 0.02)])
def test_lr_scales_linearly_with_global_batch(batch, workers, lr):
    t = TrainConfig(batch_size=batch, workers=workers)
    assert t.global_batch == batch * workers
    assert t.lr == pytest.approx(lr)


def test_step_schedule_values():
    steps = (30, 40, 45)
    want = {0: 1.0, 29: 1.0, 30: 0.1, 39: 0.1, 40: 0.01, 44: 0.01, 45: 0.001, 49: 0.001}
    for epoch, factor in want.items():
        assert lr_factor(epoch, steps) == pytest.approx(factor), epoch


def test_warmup_rises_linearly_then_steps():
    assert [round(lr_factor(e, (5,), 0.1, 3), 6) for e in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 0.1, 0.1]


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", -1), ("lr_per_64", 0.0),
                                         ("lr_steps", (40, 30)), ("momentum", 1.0), ("workers", 0),
                                         ("keep_best", 0), ("precision", "fp16"), ("name", "../escape"),
                                         ("fail_rank", 3), ("warmup_epochs", -1)])
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"train.{field}"):
        Experiment.from_flat({f"train.{field}": value})


def test_flat_round_trip_and_unknown_key():
    exp = Experiment.from_flat({"model.td_ratio": 0.25, "train.lr_steps": "10,20", "data.num_crops": 3})
    flat = exp.flatten()
    assert flat["model.td_ratio"] == 0.25 and flat["train.lr_steps"] == "10,20"
    assert set(k.split(".")[0] for k in flat) == {"model", "data", "train"}
    assert Experiment.from_flat(flat) == exp
    with pytest.raises(ConfigError, match="train.learning_rate"):
        Experiment.from_flat({"train.learning_rate": 0.1})


def test_file_loading_nested_and_flat(tmp_path):
    yml = tmp_path / "exp.yaml"
    yml.write_text("model:\n  td_lambda: 0.0001\ntrain.epochs: 7\n")
    exp = load_file(yml)
    assert exp.model.td_lambda == 1e-4 and exp.train.epochs == 7
    js = tmp_path / "exp.json"
    js.write_text(json.dumps({"train": {"epochs": 3, "bogus": 1}}))
    with pytest.raises(ConfigError) as err:
        load_file(js)
    assert str(js) in str(err.value) and "train.bogus" in str(err.value)


def _parse(argv):
    from tdrl.train import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.experiment_from_args(parser.parse_args(argv))


def test_cli_layers_options_over_file_over_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 9\n  batch_size: 4\n")
    exp, preset = _parse(["--preset", "smoke", "--config", str(f), "--batch-size", "2", "--data-workers", "0",
                          "--workers", "2", "--td-lambda", "0"])
    assert preset.name == "smoke"
    assert exp.model.backbone == "resnet18"  # preset
    assert exp.train.epochs == 9  # file over preset
    assert exp.train.batch_size == 2  # command line over file
    assert (exp.data.workers, exp.train.workers, exp.model.td_lambda) == (0, 2, 0.0)
    exp, preset = _parse([])
    assert preset.name == "smoke"
    exp, preset = _parse(["--config", str(f)])
    assert preset is None and exp.model.backbone == "resnet50"


def test_cli_refuses_bad_values_before_ray(tmp_path, monkeypatch):
    from tdrl.cli import main

    called = []
    monkeypatch.setattr("tdrl.train.trainer.connect_ray", lambda: called.append(1))
    assert main(["train", "--epochs", "0", "--storage-path", str(tmp_path)]) == 2 and not called


def test_paper_preset_is_the_recipe():
    from tdrl.train.presets import get_preset

    exp = get_preset("paper").experiment()
    assert exp.model.backbone == "resnet50" and exp.model.frames == 8 and exp.model.pretrained == "imagenet"
    assert exp.data.dataset == "sthv1" and exp.data.input_size == 224
    assert exp.train.global_batch == 64 and exp.train.lr == pytest.approx(0.01)
    assert exp.train.lr_steps == (30, 40, 45) and exp.train.epochs == 50
