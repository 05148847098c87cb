"""The learning-rate schedule: optional linear warm-up, then step decay (the base lr, scaled linearly
with the global batch, is ``TrainConfig.lr``).

The paper trains with lr 0.01 for a batch of 64 clips and multiplies it by 0.1 at epochs 30, 40
and 45 of 50 (Something-Something). The schedule is a function of the epoch only, stepped once per
epoch, so a run resumed from an epoch checkpoint continues with exactly the same values.
"""

from __future__ import annotations

from typing import Sequence


def lr_factor(epoch: int, steps: Sequence[int], gamma: float = 0.1, warmup_epochs: int = 0) -> float:
    """Multiplier of the base lr during ``epoch`` (0-based).

    ``gamma`` is applied once for every step epoch ``<= epoch`` (with steps 30,40,45 epoch 30 is the
    first at 0.1x). During warm-up the factor rises linearly: (epoch + 1) / (warmup_epochs + 1).
    """
    factor = gamma ** sum(1 for s in steps if epoch >= s)
    if epoch < warmup_epochs:
        factor *= (epoch + 1) / (warmup_epochs + 1)
    return factor
