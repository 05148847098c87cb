"""Shared by the Triton kernel tests: the devices, small tiles, relative errors, layouts.

Every kernel test runs on ``DEVICES``: the CPU, where the kernels run in Triton's interpreter
(tests/conftest.py turns it on; ~20-40 ms per program, so every tensor here is tiny), and CUDA,
marked ``gpu``, where they are compiled (benchmarks/gpu_acceptance.sh runs those). ``small_tiles``
shrinks the tiles so a tiny tensor still spans several programs (masked edges, two-stage reductions
across programs).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from tdrl.model.kernels import launch

needs_interpreter = pytest.mark.skipif(
    not launch.interpreting(), reason="Triton's interpreter is off (TRITON_INTERPRET unset when Triton was "
                                      "imported): on a GPU machine the gpu tests check the compiled kernels")
needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
DEVICES = [pytest.param("cpu", marks=needs_interpreter), pytest.param("cuda", marks=needs_cuda)]


@contextlib.contextmanager
def small_tiles(channels: int = 4, positions: int = 8):
    """Tiles of ``channels`` x ``positions`` in the interpreter, so tiny tensors need several programs."""
    saved = dict(launch.TILE_CAPS)
    for key in saved:
        launch.TILE_CAPS[key] = (channels, positions)
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
