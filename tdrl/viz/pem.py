"""Paper Fig. 3: which channels PEM excites and which it suppresses, frame by frame.

Rows, for T uniformly sampled frames of one video (columns in temporal order):
  1. the input frames (the centre crop the network sees);
  2. the features entering PEM ``X_t`` as RGB: channels cut into three groups, each averaged;
  3. per frame t, the mean of the k (10) channels of ``X_t`` with the *highest* enhancement a_t;
  4. the same for the k channels with the *lowest* a_t.
With several blocks, rows 2-4 repeat per block. The paper draws the first block of the first
stage (``layer1.0``).

The input of PEM is read with a forward hook on ``block.enhance`` and a is recomputed from it with
the module's own ``enhancement`` (the same computation its forward runs), so the channels picked
are those of the enhancement actually applied to this clip. :func:`pem_selection` is the pure part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from tdrl.config.base import ConfigError
from tdrl.model.network import TDRLNet
from tdrl.model.pem import ProgressiveEnhancement
from tdrl.viz.grid import Row, gather_mean, grid_figure, rgb_groups, scale_row
from tdrl.viz.hooks import resolve_block, run_capturing

DEFAULT_BLOCK = "layer1.0"  # paper Fig. 3: "the first block of the first layer"
TOP_K = 10


@dataclass(frozen=True)
class PemSelection:
    """The enhancement of one batch and the channels it ranks first and last.

    ``a``: ``(N, T, C)``; ``top`` / ``bottom``: ``(N, T, k)`` channel indices, ``top`` in
    decreasing a (``torch.topk`` order), ``bottom`` in increasing a.
    """

    a: torch.Tensor
    top: torch.Tensor
    bottom: torch.Tensor


def pem_selection(pem: ProgressiveEnhancement, x: torch.Tensor, k: int = TOP_K) -> PemSelection:
    """Enhancement ``a`` of PEM input ``x`` ``(N*T, C, H, W)`` and, per clip and frame, its top-k and bottom-k channels.

    k larger than C is lowered to C (narrow CPU-scale networks have 16 channels in stage 1, so the
    two sets then overlap; that is reported, not hidden).
    """
    with torch.no_grad():
        a = pem.enhancement(x)  # (N, T, C)
    k = min(k, a.shape[-1])
    top = torch.topk(a, k, dim=-1, largest=True).indices  # (N, T, k)
    bottom = torch.topk(a, k, dim=-1, largest=False).indices  # (N, T, k)
    return PemSelection(a, top, bottom)


@dataclass(frozen=True)
class PemBlockResult:
    """What one block contributes to the figure: the hooked PEM input ``x`` ``(T, C, H, W)`` (clip 0)
    and the selection computed from it."""

    block: str
    x: torch.Tensor
    selection: PemSelection


def pem_results(model: TDRLNet, clip: torch.Tensor, blocks: Sequence[str] = (DEFAULT_BLOCK,),
                k: int = TOP_K) -> list[PemBlockResult]:
    """Run ``clip`` ``(1, T, 3, H, W)`` through ``model`` and select channels at each of ``blocks``."""
    if isinstance(blocks, str):
        blocks = (blocks,)
    resolved = [resolve_block(model, b) for b in blocks]
    for name, block in resolved:
        if not isinstance(block.enhance, ProgressiveEnhancement):
            raise ConfigError(f"block {name} has no PEM (model.enhance={model.cfg.enhance!r}); the PEM figure "
                             f"needs a network trained with --enhance pem")
    captured = run_capturing(model, clip, {name: block.enhance for name, block in resolved})
    out = []
    for name, block in resolved:
        x = captured[name].input  # (N*T, C, H, W), as PEM received it
        out.append(PemBlockResult(name, x[: model.frames], pem_selection(block.enhance, x, k)))
    return out


def build_pem_figure(frames: np.ndarray, results: Sequence[PemBlockResult], *, title: str = "",
                     column_labels: Sequence[str] | None = None) -> Figure:
    """Rows ``1 + 3 * len(results)`` x T columns: input frames, then per block RGB / top-k / bottom-k.

    ``frames``: ``(T, H, W, 3)`` uint8, the pictures of the clip in the order the network saw them.
    """
    rows = [Row("input", [f for f in frames])]
    for res in results:
        x = res.x.float()  # (T, C, h, w)
        k = res.selection.top.shape[-1]
        top = gather_mean(x, res.selection.top[0])  # (T, h, w)
        bottom = gather_mean(x, res.selection.bottom[0])
        a = res.selection.a[0]  # (T, C)
        top_a = a.gather(1, res.selection.top[0]).mean().item()
        bottom_a = a.gather(1, res.selection.bottom[0]).mean().item()
        rows += [
            Row(f"{res.block}\nbefore PEM (RGB)", list(scale_row(rgb_groups(x)))),
            Row(f"{res.block}\ntop-{k} enhanced", list(scale_row(top)), cmap="viridis", note=f"mean a={top_a:.3f}"),
            Row(f"{res.block}\nbottom-{k}", list(scale_row(bottom)), cmap="viridis", note=f"mean a={bottom_a:.3f}"),
        ]
    return grid_figure(rows, title=title, column_labels=column_labels)
