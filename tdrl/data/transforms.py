"""Clip augmentation as two presets: :class:`TrainPreset` (multi-scale crop, flip) and :class:`EvalPreset`.

Both work on the whole decoded clip at once: ``(T, H, W, C)`` uint8 in, ``(T, C, S, S)`` float32
(ImageNet-normalised) out, with ``S = input_size``. The crop box is chosen in the coordinates of the
frame scaled to ``short_side`` (256) - the space TSN/TSM define their crops in - and mapped back to
the original pixels, so the clip is cut *before* any resizing and resized only once, directly to
``S``, with ``torch.nn.functional.interpolate`` over all frames together. That is one resample
instead of two and never touches the pixels that the crop throws away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TSM snaps multi-scale crop sizes within this many pixels of the input size to the input size.
SNAP_PX = 3


@dataclass(frozen=True)
class Box:
    """A crop in original-frame pixels: rows ``y:y+h``, columns ``x:x+w``."""

    y: int
    x: int
    h: int
    w: int


def scale_to_short(h: int, w: int, short_side: int) -> float:
    return short_side / min(h, w)


def _to_original(h: int, w: int, s: float, y: float, x: float, ch: float, cw: float) -> Box:
    """Map a box given in scaled coordinates back to the ``h x w`` original, clamped inside it."""
    bh = max(1, min(h, int(round(ch / s))))
    bw = max(1, min(w, int(round(cw / s))))
    by = min(max(0, int(round(y / s))), h - bh)
    bx = min(max(0, int(round(x / s))), w - bw)
    return Box(by, bx, bh, bw)


def multiscale_box(h: int, w: int, *, short_side: int, input_size: int, scales: Sequence[float],
                   max_distort: int, rng: np.random.Generator) -> Box:
    """TSN/TSM multi-scale crop: side lengths ``short_side*scale`` for height and width drawn
    independently (index difference <= ``max_distort``), placed at one of 5 fixed positions
    (4 corners, centre), all in the frame scaled to ``short_side``."""
    s = scale_to_short(h, w, short_side)
    hs, ws = h * s, w * s
    base = min(hs, ws)
    sizes = [int(base * sc) for sc in scales]
    sizes = [input_size if abs(z - input_size) < SNAP_PX else z for z in sizes]
    pairs = [(sizes[i], sizes[j]) for i in range(len(sizes)) for j in range(len(sizes))
             if abs(i - j) <= max_distort]
    ch, cw = pairs[rng.integers(len(pairs))]
    dy, dx = hs - ch, ws - cw
    positions = [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy / 2, dx / 2)]
    y, x = positions[rng.integers(len(positions))]
    return _to_original(h, w, s, y, x, ch, cw)


def eval_boxes(h: int, w: int, *, short_side: int, input_size: int, num_crops: int) -> list[Box]:
    """``input_size`` squares of the frame scaled to ``short_side``: the centre (1 crop) or
    left/centre/right along the longer side (3 crops; top/centre/bottom for portrait frames)."""
    s = scale_to_short(h, w, short_side)
    hs, ws = h * s, w * s
    dy, dx = hs - input_size, ws - input_size
    if num_crops == 1:
        pos = [(dy / 2, dx / 2)]
    elif num_crops == 3:
        pos = ([(dy / 2, 0), (dy / 2, dx / 2), (dy / 2, dx)] if ws >= hs
               else [(0, dx / 2), (dy / 2, dx / 2), (dy, dx / 2)])
    else:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    return [_to_original(h, w, s, y, x, input_size, input_size) for y, x in pos]


def crop_resize(clip: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """``(T, H, W, C)`` uint8 -> crop ``box`` -> ``(T, C, size, size)`` float32 in [0, 255]."""
    crop = clip[:, box.y:box.y + box.h, box.x:box.x + box.w, :]  # a view: nothing copied yet
    return resize_square(crop.permute(0, 3, 1, 2).float(), size)  # (T, C, h, w): one copy, of the crop only


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(T, C, h, w)`` float -> ``(T, C, size, size)``: the one resize of both the loader and the device path."""
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        # Antialias when shrinking so small synthetic objects / thin edges do not alias away.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=h > size or w > size)
    return x


def normalize_(x: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """In place on ``(..., C, H, W)`` float in [0, 255]: ``(x/255 - mean)/std`` with the /255 folded in."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
    sd = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
    return x.sub_(m).div_(sd)


def _as_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {tuple(t.shape)} {t.dtype}")
    return t


@dataclass(frozen=True)
class TrainPreset:
    """Training augmentation: multi-scale crop -> resize to ``input_size`` -> optional flip -> normalise."""

    input_size: int = 224
    short_side: int = 256
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    flip: bool = False

    def draw(self, h: int, w: int, rng: np.random.Generator) -> tuple[Box, bool]:
        """The random parameters of one clip of ``h x w`` frames: crop box, flip (the order of draws
        is part of the semantics: the device-side path in gpu_decode.py draws the same way)."""
        box = multiscale_box(h, w, short_side=self.short_side, input_size=self.input_size,
                             scales=self.scales, max_distort=self.max_distort, rng=rng)
        return box, bool(self.flip and rng.random() < 0.5)

    def __call__(self, frames: np.ndarray | torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        clip = _as_tensor(frames)  # (T, H, W, C) uint8
        _, h, w, _ = clip.shape
        box, flip = self.draw(h, w, rng)
        x = crop_resize(clip, box, self.input_size)  # (T, C, S, S)
        if flip:
            x = x.flip(-1)
        return normalize_(x).contiguous()


@dataclass(frozen=True)
class EvalPreset:
    """Evaluation: ``num_crops`` (1 = centre, 3 = left/centre/right) ``input_size`` crops at
    ``short_side`` -> ``(num_crops, T, C, S, S)`` float32."""

    input_size: int = 224
    short_side: int = 256
    num_crops: int = 1

    def boxes(self, h: int, w: int) -> list[Box]:
        return eval_boxes(h, w, short_side=self.short_side, input_size=self.input_size, num_crops=self.num_crops)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        clip = _as_tensor(frames)  # (T, H, W, C) uint8
        _, h, w, _ = clip.shape
        boxes = self.boxes(h, w)
        return torch.stack([normalize_(crop_resize(clip, b, self.input_size)) for b in boxes])
