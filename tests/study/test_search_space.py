"""The Optuna search space: flat configuration keys whose sampled values validate."""

from __future__ import annotations

import random

from tdrl.config.experiment import Experiment
from tdrl.model.network import TDRLNet
from tdrl.study.search import COMMON, search_space, td_block_choices
from tdrl.train.presets import get_preset


def test_keys_are_flat_config_keys_and_samples_validate():
    space = search_space()
    assert set(space) == {"model.td_lambda", "model.td_ratio", "model.enhance_position", "model.td_position",
                          "model.td_blocks", "model.mem_init"}
    base = get_preset("smoke").experiment().override(COMMON)
    assert (base.model.temporal, base.model.enhance) == ("tim", "pem")
    random.seed(0)
    seen_lambda = []
    for _ in range(50):
        flat = {k: d.sample() for k, d in space.items()}
        exp = base.override(flat)
        assert isinstance(exp, Experiment)
        assert 1e-5 <= exp.model.td_lambda <= 1e-3
        assert 0.125 <= exp.model.td_ratio <= 1.0
        seen_lambda.append(exp.model.td_lambda)
    assert min(seen_lambda) < 1e-4 < max(seen_lambda)  # log scale covers the decades


def _td_blocks_built(backbone: str, td_blocks: str) -> list[str]:
    """The blocks of a built network that compute the TD term, as ``layerK.i``."""
    exp = get_preset("smoke").experiment().override({**COMMON, "model.backbone": backbone, "model.td_blocks": td_blocks})
    net = TDRLNet(exp.model)
    return [f"{stage}.{i}" for stage in ("layer1", "layer2", "layer3", "layer4")
            for i, block in enumerate(getattr(net, stage)) if block.td_channels > 0]


def test_td_block_choices_select_the_blocks_they_name():
    """Each choice builds into exactly the blocks its label says, for a shallow and a deep backbone."""
    r18 = td_block_choices("resnet18")
    assert _td_blocks_built("resnet18", r18["s4"]) == ["layer4.1"]
    assert _td_blocks_built("resnet18", r18["s3-4"]) == ["layer3.1", "layer4.1"]
    assert _td_blocks_built("resnet18", r18["s2-4"]) == ["layer2.1", "layer3.1", "layer4.1"]
    assert _td_blocks_built("resnet18", r18["all s3-4"]) == ["layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    r50 = td_block_choices("resnet50")
    assert r50["all s3-4"].count("layer3.") == 6 and r50["all s3-4"].count("layer4.") == 3
    assert set(search_space("resnet50")["model.td_blocks"].categories) == set(r50.values())


def test_space_converts_for_optuna():
    from ray.tune.search.optuna import OptunaSearch

    converted = OptunaSearch.convert_search_space(search_space())
    assert set(converted) == set(search_space())
    assert converted["model.td_lambda"].log is True
