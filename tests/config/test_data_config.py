"""DataConfig: defaults, validation messages, dataset-dependent flip/sampling, CLI/flat round trips."""

from __future__ import annotations

import argparse

import pytest

from tdrl.config import ConfigError, DataConfig, flatten, from_dict
from tdrl.config.base import add_arguments, given_arguments


def test_defaults_and_derived() -> None:
    cfg = DataConfig()
    assert (cfg.dataset, cfg.input_size, cfg.short_side, cfg.scales) == ("sthv2", 224, 256, (1.0, 0.875, 0.75, 0.66))
    assert cfg.use_flip is False and cfg.sampling_mode == "segments"
    k = DataConfig(dataset="kinetics400")
    assert k.use_flip is True and k.sampling_mode == "window"
    assert DataConfig(dataset="sthv1", flip=True).use_flip is True
    assert not hasattr(cfg, "frames")  # T comes from ModelConfig.frames


@pytest.mark.parametrize("kw,msg", [
    ({"dataset": "ucf"}, "data.dataset='ucf' is not allowed"),
    ({"input_size": 300}, "larger than data.short_side"),
    ({"scales": (1.0, 1.5)}, r"data.scales\[1\]=1.5 is out of range"),
    ({"num_crops": 2}, "data.num_crops=2 is not allowed"),
    ({"on_error": "ignore"}, "data.on_error"),
    ({"max_error_fraction": 2.0}, "data.max_error_fraction"),
    ({"workers": -1}, "data.workers=-1 must be >= 0"),
    ({"video_ext": "webm"}, "must start with a dot"),
])
def test_validation(kw, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        DataConfig(**kw)


def test_from_dict_flatten_and_cli() -> None:
    cfg = from_dict(DataConfig, {"scales": "1,0.75", "flip": "false", "num_clips": "2"}, section="data")
    assert cfg.scales == (1.0, 0.75) and cfg.flip is False and cfg.num_clips == 2
    flat = flatten({"data": cfg})
    assert flat["data.scales"] == "1.0,0.75" and flat["data.flip"] is False
    p = argparse.ArgumentParser()
    add_arguments(p, DataConfig)
    args = p.parse_args(["--dataset", "kinetics400", "--no-flip", "--max-error-fraction", "0.1"])
    cfg2 = from_dict(DataConfig, given_arguments(args, DataConfig), section="data")
    assert (cfg2.dataset, cfg2.flip, cfg2.max_error_fraction) == ("kinetics400", False, 0.1)


def test_cli_options_from_the_types_and_paths_from_the_current_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    add_arguments(p, DataConfig)
    args = p.parse_args(["--root", "DIR", "--train-annotations", "DIR/x.csv", "--num-crops", "3",
                         "--data-workers", "0", "--labels", "/abs/labels.json"])
    given = given_arguments(args, DataConfig)
    # A path typed on a command line means what the shell means: relative to the current folder.
    assert given["root"] == str(tmp_path / "DIR") and given["train_annotations"] == str(tmp_path / "DIR/x.csv")
    assert given["labels"] == "/abs/labels.json"
    assert given["num_crops"] == 3 and given["workers"] == "0"  # --data-workers: the field's own option name
    with pytest.raises(SystemExit):
        p.parse_args(["--num-crops", "2"])  # choices from Literal[1, 3]
    assert from_dict(DataConfig, {"num_crops": "3"}).num_crops == 3
