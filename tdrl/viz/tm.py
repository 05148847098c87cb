"""Paper Fig. 4: feature maps before and after the temporal module (TM), with and without the TD loss.

Rows, for T uniformly sampled frames (columns in temporal order): the input frames, then for each
model its TM input ("before TM") and TM output ("after TM") at one block - the paper draws the
last block of the second stage, ``layer2.-1``. Each feature row shows, per frame, the mean over the
TD-regularised channels (the first ``round(td_ratio * C)``, the ones the loss acts on), and its
label carries that row's mean pairwise cosine similarity: per channel, the cosine of the flattened
maps of frames i and j, averaged over the T(T-1) ordered pairs i != j and over those channels. It
is the TD loss of one clip divided by the channel count, so lower means frames are more distinct.

TM's input and output are read with a forward hook on ``block.temporal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from tdrl.config.base import ConfigError
from tdrl.model.network import TDRLNet
from tdrl.model.td_loss import EPS, td_channels
from tdrl.viz.grid import Row, grid_figure, scale_row
from tdrl.viz.hooks import resolve_block, run_capturing

DEFAULT_BLOCK = "layer2.-1"  # paper Fig. 4: "the last block of the second layer"
DEFAULT_TD_RATIO = 0.5  # spec.md's default, used when no compared model has the TD loss on


def mean_pairwise_cosine(z: torch.Tensor, channels: int) -> float:
    """Mean cosine similarity between frames of ``z`` ``(T, C, H, W)`` over its first ``channels`` channels.

    Computed with the explicit T x T Gram matrix (not the loss's sum-of-units identity), so it is an
    independent check of :func:`tdrl.model.td_loss.temporal_diversity`. All-zero maps count as 0.
    """
    t = z.shape[0]
    if t < 2:
        raise ValueError("cosine similarity between frames needs at least two frames")
    if channels <= 0:
        raise ValueError("no channels to compare (td ratio 0?)")
    v = z[:, :channels].flatten(2).transpose(0, 1).double()  # (C_mu, T, HW)
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(EPS)
    gram = u @ u.transpose(1, 2)  # (C_mu, T, T): cos(z_i^c, z_j^c)
    off = ~torch.eye(t, dtype=torch.bool)
    return float(gram[:, off].mean())


@dataclass(frozen=True)
class TmResult:
    """One model's TM input and output at ``block`` for clip 0, ``(T, C, H, W)`` each, and the
    number of leading channels compared."""

    label: str
    block: str
    before: torch.Tensor
    after: torch.Tensor
    channels: int

    @property
    def cos_before(self) -> float:
        return mean_pairwise_cosine(self.before, self.channels)

    @property
    def cos_after(self) -> float:
        return mean_pairwise_cosine(self.after, self.channels)


def compared_channels(model: TDRLNet, channels_in: int, td_ratio: float | None) -> int:
    """How many leading channels to compare: ``td_ratio`` if given, else the model's own ratio, else 0.5."""
    ratio = td_ratio if td_ratio is not None else (model.cfg.td_ratio if model.cfg.td_ratio > 0 else DEFAULT_TD_RATIO)
    return max(1, td_channels(ratio, channels_in))


def tm_result(model: TDRLNet, clip: torch.Tensor, *, label: str, block: str = DEFAULT_BLOCK,
              td_ratio: float | None = None) -> TmResult:
    """Run ``clip`` ``(1, T, 3, H, W)`` through ``model`` and keep TM's input and output at ``block``."""
    name, blk = resolve_block(model, block)
    if blk.temporal is None:
        raise ConfigError(f"block {name} has no temporal module (model.temporal={model.cfg.temporal!r})")
    got = run_capturing(model, clip, {name: blk.temporal})[name]
    before, after = got.input[: model.frames], got.output[: model.frames]  # (T, C, H, W), clip 0
    return TmResult(label, name, before, after, compared_channels(model, before.shape[1], td_ratio))


def build_tm_figure(frames: np.ndarray, results: Sequence[TmResult], *, title: str = "",
                    column_labels: Sequence[str] | None = None) -> Figure:
    """Rows ``1 + 2 * len(results)`` x T: input frames, then per model before TM / after TM."""
    rows = [Row("input", [f for f in frames])]
    for res in results:
        for when, z, cos in (("before TM", res.before, res.cos_before), ("after TM", res.after, res.cos_after)):
            maps = z[:, : res.channels].float().mean(dim=1)  # (T, h, w)
            rows.append(Row(f"{res.label}\n{res.block} {when}", list(scale_row(maps)), cmap="viridis",
                            note=f"cos={cos:.3f}"))
    return grid_figure(rows, title=title, column_labels=column_labels)
