"""The Optuna search space: flat configuration keys whose sampled values validate."""

from __future__ import annotations

import random

from tdrl.config.experiment import Experiment
from tdrl.study.search import COMMON, search_space
from tdrl.train.presets import get_preset


def test_keys_are_flat_config_keys_and_samples_validate():
    space = search_space()
    assert set(space) == {"model.td_lambda", "model.td_ratio", "model.enhance_position", "model.td_position",
                          "model.mem_init"}
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


def test_space_converts_for_optuna():
    from ray.tune.search.optuna import OptunaSearch

    converted = OptunaSearch.convert_search_space(search_space())
    assert set(converted) == set(search_space())
    assert converted["model.td_lambda"].log is True
