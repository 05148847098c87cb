"""Transforms: vectorised crop/resize/normalise against slow per-frame references; box geometry."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tdrl.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, Box, EvalPreset, TrainPreset, crop_resize,
                                  eval_boxes, multiscale_box, normalize_)


def ref_crop_resize(frames: np.ndarray, box: Box, size: int) -> torch.Tensor:
    """Obviously correct: one frame at a time, crop with explicit loops-free slicing per frame."""
    out = []
    for f in frames:  # (H, W, C)
        crop = torch.tensor(f[box.y:box.y + box.h, box.x:box.x + box.w].astype(np.float32)).permute(2, 0, 1)
        out.append(F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=box.h > size or box.w > size)[0])
    return torch.stack(out)


def ref_normalize(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    for t in range(x.shape[0]):
        for c in range(3):
            y[t, c] = (x[t, c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    return y


def test_crop_resize_and_normalize_match_reference_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        t, h, w = rng.integers(1, 5), rng.integers(20, 60), rng.integers(20, 60)
        frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        bh, bw = rng.integers(5, h + 1), rng.integers(5, w + 1)
        box = Box(int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)), int(bh), int(bw))
        size = int(rng.integers(8, 40))
        got = crop_resize(torch.from_numpy(frames), box, size)
        ref = ref_crop_resize(frames, box, size)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-3)
        torch.testing.assert_close(normalize_(got.clone()), ref_normalize(ref), rtol=1e-5, atol=1e-5)


def test_crop_before_resize_equals_resize_then_crop() -> None:
    """Cutting in original pixels then resizing once ~ the textbook scale-to-256, crop, resize chain."""
    h, w = 128, 170
    yy, xx = np.mgrid[0:h, 0:w]
    img = (np.stack([xx, yy, xx + yy], -1) * 255.0 / (w + h)).astype(np.uint8)[None]  # smooth ramps
    boxes = eval_boxes(h, w, short_side=256, input_size=224, num_crops=1)
    fast = crop_resize(torch.from_numpy(img), boxes[0], 224)
    big = F.interpolate(torch.from_numpy(img).permute(0, 3, 1, 2).float(), size=(256, 340), mode="bilinear",
                        align_corners=False)
    slow = big[:, :, 16:240, 58:282]
    assert (fast - slow).abs().mean() < 1.0


def test_boxes_geometry() -> None:
    # 240x320 scaled by 256/240: 3 crops of 224 at left/centre/right of the 341-wide frame.
    b = eval_boxes(240, 320, short_side=256, input_size=224, num_crops=3)
    assert [(x.y, x.x, x.h, x.w) for x in b] == [(15, 0, 210, 210), (15, 55, 210, 210), (15, 110, 210, 210)]
    bp = eval_boxes(320, 240, short_side=256, input_size=224, num_crops=3)  # portrait: top/centre/bottom
    assert [(x.y, x.x) for x in bp] == [(0, 15), (55, 15), (110, 15)]
    rng = np.random.default_rng(1)
    sides = set()
    for _ in range(200):
        m = multiscale_box(256, 340, short_side=256, input_size=224, scales=(1, .875, .75, .66), max_distort=1,
                           rng=rng)
        assert 0 <= m.y and m.y + m.h <= 256 and 0 <= m.x and m.x + m.w <= 340
        sides.add((m.h, m.w))
    # int(256*s) = 256, 224, 192, 168; pairs at most one index apart.
    assert sides == {(256, 256), (256, 224), (224, 256), (224, 224), (224, 192), (192, 224), (192, 192),
                     (192, 168), (168, 192), (168, 168)}


def test_presets_shapes_values_and_flip() -> None:
    frames = np.zeros((4, 64, 80, 3), np.uint8)
    frames[:, :, :40] = 255  # left half white
    x = TrainPreset(input_size=32, short_side=64, scales=(1.0,), flip=False)(frames, np.random.default_rng(0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    white = (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    flips = []
    for seed in range(20):
        y = TrainPreset(input_size=32, short_side=64, scales=(1.0,), flip=True)(frames, np.random.default_rng(seed))
        flips.append(bool(y[0, 0, 0, -1] > 0))  # white on the right => flipped
        assert torch.equal(y[0], y[3])  # the same flip for every frame
    assert 0 < sum(flips) < 20
    assert abs(float(x[0, 0, 0, 0]) - white) < 1e-4
    e = EvalPreset(input_size=32, short_side=64, num_crops=3)(frames)
    assert e.shape == (3, 4, 3, 32, 32)
    assert float(e[0, 0, 0, 0, 0]) > 0 > float(e[2, 0, 0, 0, -1])  # left crop starts white, right ends black
