"""Model configuration: defaults are spec.md's, bad values name the field and the allowed values."""

import pytest

from tdrl.config.base import ConfigError, flatten, from_dict, split_flat
from tdrl.config.model import ModelConfig


def test_defaults_are_the_spec():
    cfg = ModelConfig()
    assert (cfg.backbone, cfg.frames, cfg.temporal, cfg.enhance, cfg.mem_init) == ("resnet50", 8, "tim", "pem", "last")
    assert (cfg.td_ratio, cfg.td_position, cfg.td_lambda) == (0.5, "after", 2e-4)
    assert cfg.td_blocks == ("layer2.-1", "layer3.-1", "layer4.-1")


@pytest.mark.parametrize("field,value,message", [
    ("td_ratio", 1.5, "model.td_ratio=1.5 is out of range"),
    ("td_ratio", -0.1, "model.td_ratio=-0.1 is out of range"),
    ("td_lambda", -1e-4, "model.td_lambda=-0.0001 is out of range"),
    ("temporal", "conv3d", "model.temporal='conv3d' is not allowed; choose one of 'tim', 'tsm', 'none'"),
    ("enhance", "se", "model.enhance='se' is not allowed"),
    ("enhance_position", "middle", "model.enhance_position='middle'"),
    ("td_position", "inside", "model.td_position='inside'"),
    ("mem_init", "random", "model.mem_init='random'"),
    ("frames", 1, "model.frames=1 must be >= 2"),
    ("backbone", "vgg16", "model.backbone='vgg16' is not allowed"),
    ("td_blocks", ("layer5.0",), "write blocks as layerK.I"),
    ("dropout", 1.0, "model.dropout=1.0 is out of range"),
    ("frames", 8.5, "model.frames=8.5 must be an integer"),
])
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=None) as err:
        ModelConfig(**{field: value})
    assert message in str(err.value)


def test_pretrained_needs_full_width():
    with pytest.raises(ConfigError, match="model.pretrained"):
        ModelConfig(width=0.5, pretrained="imagenet")


def test_from_dict_coerces_strings_and_refuses_unknown_keys():
    cfg = from_dict(ModelConfig, {"td_ratio": "0.25", "frames": "16", "td_blocks": "layer4.-1,layer3.0",
                                  "pretrained": "none"}, section="model")
    assert cfg.td_ratio == 0.25 and cfg.frames == 16 and cfg.td_blocks == ("layer4.-1", "layer3.0")
    assert cfg.pretrained is None
    with pytest.raises(ConfigError, match="unknown key\\(s\\) model.td_ration"):
        from_dict(ModelConfig, {"td_ration": 0.1}, section="model")
    with pytest.raises(ConfigError, match="model.frames='eight' must be an integer"):
        from_dict(ModelConfig, {"frames": "eight"}, section="model")


def test_flatten_round_trip():
    cfg = ModelConfig(td_ratio=0.75, td_blocks=("layer4.-1",))
    flat = flatten({"model": cfg})
    assert flat["model.td_ratio"] == 0.75 and flat["model.td_blocks"] == "layer4.-1"
    back = from_dict(ModelConfig, split_flat(flat, ["model"])["model"], section="model")
    assert back == cfg


def test_allowed_values_and_architecture_fields_come_from_the_types():
    from tdrl.config.base import literal_values, marked_fields
    from tdrl.model.resnet import ARCHS

    assert literal_values(ModelConfig, "temporal") == ("tim", "tsm", "none")
    assert set(ARCHS) == set(literal_values(ModelConfig, "backbone"))  # every allowed backbone is buildable
    assert marked_fields(ModelConfig, "arch") == ("backbone", "width", "num_classes", "frames", "temporal",
                                                  "shift_div", "enhance", "enhance_position", "mem_init",
                                                  "reduction")


@pytest.mark.parametrize("name,parsed", [("layer1.0", ("layer1", 0)), ("layer4.-1", ("layer4", -1)),
                                         (" layer2.3 ", ("layer2", 3))])
def test_block_names_parse(name, parsed):
    from tdrl.config.model import parse_block

    assert parse_block(name) == parsed


@pytest.mark.parametrize("name", ["layer5.0", "layer1", "stage1.0", "layer1.x", ""])
def test_bad_block_names_are_refused(name):
    from tdrl.config.model import parse_block

    with pytest.raises(ConfigError, match="layerK.I"):
        parse_block(name)


def test_kernels_and_recompute_are_validated_flags_and_flat_keys():
    import argparse

    from tdrl.config.base import add_arguments, given_arguments

    cfg = ModelConfig()
    assert (cfg.kernels, cfg.recompute) == ("auto", False)  # the CPU default stays PyTorch's ops
    with pytest.raises(ConfigError, match="model.kernels='cuda' is not allowed; choose one of 'auto', 'eager', 'triton'"):
        ModelConfig(kernels="cuda")
    with pytest.raises(ConfigError, match="model.recompute='yes please' must be true or false"):
        from_dict(ModelConfig, {"recompute": "yes please"}, section="model")
    parser = argparse.ArgumentParser()
    add_arguments(parser, ModelConfig)
    given = given_arguments(parser.parse_args(["--kernels", "triton", "--recompute"]), ModelConfig)
    assert given == {"kernels": "triton", "recompute": True}
    flat = flatten({"model": from_dict(ModelConfig, given, section="model")})
    assert flat["model.kernels"] == "triton" and flat["model.recompute"] is True  # MLflow params
    assert from_dict(ModelConfig, split_flat({"model.recompute": "true"}, ["model"])["model"]).recompute is True
