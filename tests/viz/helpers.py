"""Reading a figure's axes grid and a written PNG back, for the layout assertions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def grid_shape(fig: Figure) -> tuple[int, int]:
    """(rows, columns) of the figure's subplot grid, checked to be fully populated."""
    specs = [ax.get_subplotspec() for ax in fig.axes]
    assert all(s is not None for s in specs), "every axis should sit in the grid"
    nrows, ncols = specs[0].get_gridspec().get_geometry()
    cells = {(s.rowspan.start, s.colspan.start) for s in specs}
    assert cells == {(r, c) for r in range(nrows) for c in range(ncols)}, "grid has holes or overlaps"
    return nrows, ncols


def axis_at(fig: Figure, row: int, col: int):
    for ax in fig.axes:
        s = ax.get_subplotspec()
        if s.rowspan.start == row and s.colspan.start == col:
            return ax
    raise KeyError((row, col))


def check_png(path: Path, fig: Figure, dpi: int) -> np.ndarray:
    """The PNG decodes, and its pixel size is the figure's size in inches times ``dpi`` (+-1 px)."""
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        im.load()
        w, h = im.size
        assert im.format == "PNG"
        pixels = np.asarray(im)
    fw, fh = fig.get_size_inches() * dpi
    assert abs(w - fw) <= 1 and abs(h - fh) <= 1, (w, h, fw, fh)
    assert abs(w / h - fw / fh) < 0.01
    return pixels
