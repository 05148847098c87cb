"""The Optuna search's space: flat configuration keys and their distributions, in one place.

Read by the search itself (:mod:`tdrl.study.search`, as a Ray Tune space that ``OptunaSearch``
converts), and by :mod:`tdrl.study.search_report`, which rebuilds an Optuna study from a finished
search's MLflow runs over the same distributions.
"""

from __future__ import annotations

from typing import Any

from tdrl.config.base import literal_values
from tdrl.config.model import ModelConfig


def td_block_choices(backbone: str) -> dict[str, str]:
    """The TD-loss block sets the search chooses from, ``label -> model.td_blocks`` (comma-separated,
    as the flag takes it; strings because Optuna's categorical choices must be plain values): the last
    block of stage 4; of stages 3-4; of stages 2-4 (the paper's); every block of stages 3-4, written
    out for ``backbone``'s depth (ResNet-18: 2 + 2 blocks, ResNet-50: 6 + 3)."""
    from tdrl.model.resnet import ARCHS  # imports torch: not on the path of `tdrl search --help`

    blocks = ARCHS[backbone][1]
    every = ",".join(f"layer{s}.{i}" for s in (3, 4) for i in range(blocks[s - 1]))
    return {"s4": "layer4.-1", "s3-4": "layer3.-1,layer4.-1", "s2-4": "layer2.-1,layer3.-1,layer4.-1",
            "all s3-4": every}


def search_space(backbone: str = "resnet18") -> dict[str, Any]:
    """The Tune search space (OptunaSearch converts it); keys are flat configuration keys. The block
    choices depend on the backbone's depth (:func:`td_block_choices`)."""
    from ray import tune  # seconds to import: not on `tdrl search --help` or --plan

    return {
        "model.td_lambda": tune.loguniform(1e-5, 1e-3),
        "model.td_ratio": tune.quniform(0.125, 1.0, 0.125),
        "model.enhance_position": tune.choice(list(literal_values(ModelConfig, "enhance_position"))),
        "model.td_position": tune.choice(list(literal_values(ModelConfig, "td_position"))),
        "model.td_blocks": tune.choice(list(td_block_choices(backbone).values())),
        "model.mem_init": tune.choice(list(literal_values(ModelConfig, "mem_init"))),
    }


def optuna_distributions(backbone: str = "resnet18") -> dict[str, Any]:
    """:func:`search_space` as Optuna distributions (the conversion ``OptunaSearch`` makes), for
    rebuilding a study from its MLflow runs (:mod:`tdrl.study.search_report`)."""
    from ray.tune.search.optuna import OptunaSearch  # Ray and optuna: seconds, only when rebuilding a study

    return OptunaSearch.convert_search_space(search_space(backbone))
