"""Feature maps turned into pictures, and the rows x frames figure the Fig. 3/Fig. 4 builders share.

Scaling: each row is min-max scaled over all its frames together (1st-99th percentile, so one hot
pixel does not wash out the rest). A shared scale keeps changes *between frames* visible, which is
what both paper figures are about; a per-frame scale would make every frame look equally active.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

CELL_IN = 1.3  # inches per frame column / figure row
LABEL_IN = 1.9  # left margin for row labels
TITLE_IN = 0.45  # top margin for the title and column labels
DPI = 100


def rgb_groups(x: torch.Tensor) -> torch.Tensor:
    """``(T, C, H, W)`` -> ``(T, H, W, 3)``: channels cut into three contiguous groups, each averaged.

    ``tensor_split`` puts the remainder of C/3 in the first groups, so no channel is dropped.
    """
    groups = torch.tensor_split(x, 3, dim=1)
    return torch.stack([g.mean(dim=1) for g in groups], dim=-1)


def gather_mean(x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """``x (T, C, H, W)``, ``channels (T, k)`` -> ``(T, H, W)``: per frame, the mean of its own k channels."""
    t, _, h, w = x.shape
    idx = channels.long().view(t, -1, 1, 1).expand(-1, -1, h, w)
    return x.gather(1, idx).mean(dim=1)


def scale_row(maps: torch.Tensor | np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Scale a whole row (any shape; RGB rows scale each colour separately) to [0, 1]."""
    a = maps.detach().float().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps, np.float32)
    if a.ndim == 4 and a.shape[-1] == 3:  # (T, H, W, 3): one scale per colour, shared by the frames
        return np.stack([scale_row(a[..., c], low_pct, high_pct) for c in range(3)], axis=-1)
    lo, hi = np.percentile(a, [low_pct, high_pct])
    if not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return np.zeros_like(a)  # a constant row (e.g. all-zero maps): black, not NaN
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


@dataclass
class Row:
    """One figure row: a label and T pictures, ``(H, W)`` grey maps or ``(H, W, 3)`` RGB in [0, 1]/uint8."""

    label: str
    images: Sequence[np.ndarray]
    cmap: str | None = None
    note: str = ""  # shown under the label, e.g. the row's cosine similarity


def grid_figure(rows: Sequence[Row], *, title: str = "", column_labels: Sequence[str] | None = None) -> Figure:
    """A ``len(rows) x T`` grid of image axes (``fig.axes`` in row-major order), fixed size in inches.

    The size is set by the grid alone (no tight bounding box at save time), so the PNG's pixel size
    is ``fig.get_size_inches() * DPI`` and tests can predict it.
    """
    if not rows:
        raise ValueError("a figure needs at least one row")
    ncols = len(rows[0].images)
    if any(len(r.images) != ncols for r in rows):
        raise ValueError(f"rows have different numbers of frames: {[len(r.images) for r in rows]}")
    width = LABEL_IN + ncols * CELL_IN
    height = TITLE_IN + len(rows) * CELL_IN
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=LABEL_IN / width, right=1 - 0.05 / width, bottom=0.05 / height,
                        top=1 - TITLE_IN / height, wspace=0.04, hspace=0.04)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        for c, img in enumerate(row.images):
            ax = axes[r][c]
            ax.imshow(img, cmap=row.cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and column_labels is not None:
                ax.set_title(column_labels[c], fontsize=8)
        text = row.label + (f"\n{row.note}" if row.note else "")
        axes[r][0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8, labelpad=6)
    if title:
        fig.suptitle(title, fontsize=10, x=0.5, y=1 - 0.06 / height, va="top")
    return fig


def save_figure(fig: Figure, out: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG at ``dpi`` (parents created); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
