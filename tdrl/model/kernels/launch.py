"""What every tdrl Triton kernel shares: where it may run, its accumulation type, its tile sizes.

Compiled Triton kernels run on CUDA tensors. On CPU tensors the same kernels run in Triton's
interpreter, which Triton switches on only through ``TRITON_INTERPRET=1`` in the environment before
it is first imported (importing torchvision imports it, so in practice: before Python starts). The
tests set it (tests/conftest.py); on a CPU machine without it a kernel refuses CPU tensors with a
message that says so, instead of failing inside Triton.

Tile sizes are fixed heuristics per device, not autotuned (autotuning would make the shape of the
per-program partial sums depend on the chosen configuration): on the GPU, tiles of ~2k elements
whose long side runs along the tensor's contiguous dimension (channels for channels_last, space for
NCHW); in the interpreter, the largest tiles the caps allow, because it pays per program, not per
element. ``TILE_CAPS`` is module state so tests can shrink the tiles and exercise every masked
edge and the two-stage reductions on tiny tensors. The GPU tiles are educated guesses, not tuned:
no GPU was at hand when they were written (benchmarks/kernels.py measures what they achieve).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# (channels, spatial positions) per tile: the interpreter's caps, and the GPU's tiles by memory layout.
TILE_CAPS = {"interpreter": (64, 256), "channels_last": (64, 32), "contiguous": (8, 256)}

LAUNCHES = [0]  # Triton kernel launches so far in this process (benchmarks/op_count.py reports them)
IN_LAUNCH = [False]  # true while a kernel runs (the interpreter's own tensor copies are not tdrl's ops)


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (TRITON_INTERPRET=1 when Triton was imported)."""
    return bool(triton.knobs.runtime.interpret)


def check_tensors(*tensors: torch.Tensor | None) -> torch.device:
    """The common device of ``tensors`` (None skipped); refuses CPU tensors without the interpreter."""
    devices = {t.device for t in tensors if t is not None}
    if len(devices) != 1:
        raise ValueError(f"tdrl Triton kernels need all tensors on one device, got {sorted(map(str, devices))}")
    device = devices.pop()
    if device.type == "cpu" and not interpreting():
        raise RuntimeError(
            "model.kernels=triton on CPU tensors runs Triton's interpreter, which needs TRITON_INTERPRET=1 in "
            "the environment before Python starts (it is read when Triton is first imported); "
            f"TRITON_INTERPRET is {os.environ.get('TRITON_INTERPRET')!r}. On the CPU, use model.kernels=eager "
            "(what 'auto' picks there) unless you are testing the kernels.")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"tdrl Triton kernels run on CUDA (or CPU in the interpreter), not {device.type}")
    return device


def acc_type(dtype: torch.dtype) -> tl.dtype:
    """The accumulation type: float64 for float64 tensors, float32 for every narrower float."""
    if dtype not in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"tdrl Triton kernels take floating-point tensors, got {dtype}")
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """:func:`acc_type` as a torch dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without dispatching anything when it already is (inside tdrl's operators
    every dispatch is host time on each step)."""
    return t if t.dtype == dtype else t.to(dtype)


def _pow2(n: int) -> int:
    return triton.next_power_of_2(max(1, n))


def tiles(x: torch.Tensor, channels: int) -> tuple[int, int]:
    """``(BLOCK_C, BLOCK_HW)`` for a ``(N*T, C, H, W)`` tensor whose first ``channels`` channels a kernel reads."""
    hw = x.shape[2] * x.shape[3]
    if x.device.type == "cuda" and not interpreting():
        cl = x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1
        bc, bhw = TILE_CAPS["channels_last" if cl else "contiguous"]
    else:
        bc, bhw = TILE_CAPS["interpreter"]
    return min(bc, _pow2(channels)), min(bhw, _pow2(hw))


def spatial_strides(x: torch.Tensor) -> tuple[int, int, int, int]:
    """Strides of ``(N*T, C, H, W)``: frame, channel, row, column (any memory format)."""
    return x.stride(0), x.stride(1), x.stride(2), x.stride(3)


def launch(kernel, grid: tuple[int, ...], *args, **meta) -> None:
    """``kernel[grid](*args, **meta)``, counted in :data:`LAUNCHES`."""
    LAUNCHES[0] += 1
    IN_LAUNCH[0] = True
    try:
        kernel[grid](*args, **meta)
    finally:
        IN_LAUNCH[0] = False
