"""Inputs of the feature figures: a network rebuilt from a training checkpoint, and one clip of a video.

The network comes from :func:`tdrl.train.checkpoint.load_trained` (the checkpoint's own
configuration, weights loaded strictly, eval mode), as for ``tdrl eval`` and resume. The clip is read with
the data package's decoder, T segment centres (evaluation sampling, uniformly spaced over the
whole video) and the evaluation preset's centre crop, so the network sees what it sees in
validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdrl.config.base import ConfigError
from tdrl.config.data import DataConfig
from tdrl.config.model import ModelConfig
from tdrl.data.decoding import open_video
from tdrl.data.sampling import segment_indices
from tdrl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset
from tdrl.model.network import TDRLNet
from tdrl.train.checkpoint import checkpoint_file, load_trained


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode with the configuration it was trained with."""

    model: TDRLNet
    model_cfg: ModelConfig
    data_cfg: DataConfig
    path: Path
    epoch: int | None


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the network of checkpoint ``path`` (a ``checkpoint.pt`` or its directory), eval mode, CPU."""
    model, exp, state = load_trained(path)  # eval mode: BatchNorm statistics, no dropout, as validation
    for block in model.modules():  # the figures read PEM's and TM's inputs with module hooks, which the
        if hasattr(block, "kernels"):  # fused Triton path (model.kernels) never calls: PyTorch ops here
            block.kernels = "eager"
    return LoadedModel(model, exp.model, exp.data, checkpoint_file(path), int(state.get("epoch", -1)))


@dataclass(frozen=True)
class Clip:
    """``frames``: the T cropped frames as shown, ``(T, S, S, 3)`` uint8; ``clip``: the normalised
    network input ``(1, T, 3, S, S)`` float32; ``indices``: the frame numbers read."""

    frames: np.ndarray
    clip: torch.Tensor
    indices: np.ndarray


def read_clip(video: str | Path, frames: int, *, input_size: int = 224, short_side: int = 256,
              decoder: str = "auto") -> Clip:
    """T uniformly spaced frames of ``video`` (a file or a frame folder), centre-cropped to ``input_size``."""
    source = open_video(video, decoder)
    idx = segment_indices(len(source), frames, train=False)[0]  # (T,) segment centres
    raw = source.get(idx)  # (T, H, W, 3) uint8
    clip = EvalPreset(input_size=input_size, short_side=short_side, num_crops=1)(raw)  # (1, T, 3, S, S)
    # Undo the normalisation for display instead of cropping twice: the picture is exactly the input.
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    shown = ((clip[0] * std + mean) * 255.0).clamp(0, 255).round().to(torch.uint8)  # (T, 3, S, S)
    return Clip(shown.permute(0, 2, 3, 1).numpy(), clip, np.asarray(idx))


def crop_sizes(data_cfg: DataConfig, input_size: int | None, short_side: int | None) -> tuple[int, int]:
    """(input_size, short_side) for a figure: the checkpoint's, or overrides; a bare ``input_size``
    keeps the checkpoint's crop-to-short-side ratio (e.g. 56/64 -> 112/128)."""
    size = input_size or data_cfg.input_size
    if short_side is None:
        short_side = round(size * data_cfg.short_side / data_cfg.input_size)
    if size < 1 or short_side < size:
        raise ConfigError(f"input size {size} must be >= 1 and <= the short side {short_side}")
    return size, short_side
