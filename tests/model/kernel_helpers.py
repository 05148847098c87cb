"""Shared by the Triton kernel tests: the interpreter check, small tiles, relative errors, layouts.

On the CPU the kernels run in Triton's interpreter (tests/conftest.py turns it on), which costs
~20-40 ms per program: every tensor here is tiny, and ``small_tiles`` shrinks the tiles so a tiny
tensor still spans several programs (masked edges, two-stage reductions across programs).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from tdrl.model.kernels import launch

needs_interpreter = pytest.mark.skipif(
    not launch.interpreting(), reason="Triton's interpreter is off (TRITON_INTERPRET unset when Triton was "
                                      "imported): on a GPU machine the gpu tests check the compiled kernels")


@contextlib.contextmanager
def small_tiles(channels: int = 4, positions: int = 8):
    """Tiles of ``channels`` x ``positions`` in the interpreter, so tiny tensors need several programs."""
    saved = dict(launch.TILE_CAPS)
    launch.TILE_CAPS["interpreter"] = (channels, positions)
    try:
        yield
    finally:
        launch.TILE_CAPS.clear()
        launch.TILE_CAPS.update(saved)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference over max abs of ``b`` (the reference)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300)).item()


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
