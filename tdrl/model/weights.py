"""ImageNet weights for the backbone, from a local file only (no download at run time).

``pretrained="imagenet"`` reads torchvision's IMAGENET1K_V1 file from torchvision's cache
(``$TORCH_HOME/hub/checkpoints/``, by default ``~/.cache/torch/hub/checkpoints/``); any other value
is a path to a ``.pth`` state dict. The classifier (``fc.*``, 1000 ImageNet classes) is dropped and
re-initialised; the only other keys allowed to be missing are the new TDRL modules'.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from tdrl.config.base import InputError

NEW_MODULE_PARTS = (".enhance.", ".temporal.")
_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}


class WeightsError(InputError, RuntimeError):
    """Weights are missing or do not fit the network; the message names the file."""


def imagenet_url(backbone: str) -> str:
    return getattr(torchvision.models, _WEIGHTS[backbone]).IMAGENET1K_V1.url


def imagenet_cache_path(backbone: str) -> Path:
    """Where torchvision keeps the IMAGENET1K_V1 file of ``backbone``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet_url(backbone)).name


def resolve_weights(source: str, backbone: str) -> Path:
    path = imagenet_cache_path(backbone) if source == "imagenet" else Path(source).expanduser()
    if not path.is_file():
        url = imagenet_url(backbone)
        raise WeightsError(
            f"ImageNet weights not found at {path}. tdrl never downloads at run time: on a machine with "
            f"internet, fetch {url} (or run `python -c \"import torchvision; "
            f"torchvision.models.{backbone}(weights='IMAGENET1K_V1')\"`, which fills torchvision's cache), "
            f"then copy the file to {path} or pass its path as --pretrained.")
    return path


def load_imagenet(model: nn.Module, source: str, backbone: str) -> list[str]:
    """Load backbone weights into ``model``; returns the (new-module) keys left at their init."""
    path = resolve_weights(source, backbone)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a state dict, pickle refused
        raise WeightsError(f"cannot read weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    wrong_shape = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                   for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong_shape:
        raise WeightsError(f"{path} does not fit backbone {backbone}: " + "; ".join(wrong_shape[:5]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise WeightsError(f"{path} has keys the {backbone} backbone lacks: {', '.join(unexpected[:5])}")
    not_new = [k for k in missing if not k.startswith("fc.") and not any(p in k for p in NEW_MODULE_PARTS)]
    if not_new:
        raise WeightsError(f"{path} lacks backbone keys {', '.join(not_new[:5])}: is it a {backbone} checkpoint?")
    return list(missing)
