"""The builders of tdrl's datasets and loaders from a :class:`~tdrl.config.data.DataConfig`: a split's
annotations, its transform, its Dataset (:class:`~tdrl.data.dataset.VideoDataset`, or
:class:`~tdrl.data.gpu_decode.FrameBytesDataset` when frames are decoded on the device) and the
DataLoader. A remote ``data.root`` is staged onto the node first (:mod:`tdrl.data.staging`).
"""

from __future__ import annotations

import torch

from tdrl.config.data import DataConfig
from tdrl.config.paths import is_uri
from tdrl.data.annotations import Annotations, read_split
from tdrl.data.dataset import VideoDataset
from tdrl.data.gpu_decode import FrameBytesDataset
from tdrl.data.staging import localize
from tdrl.data.transforms import EvalPreset, TrainPreset


def annotations_for(cfg: DataConfig, split: str) -> Annotations:
    """Parse the annotation file of ``split`` ("train" or "val") named by ``cfg``. A remote root
    stages the annotation and label files alone (the driver's checks; tdrl.data.staging)."""
    if is_uri(cfg.root):
        cfg = localize(cfg, annotations_only=True)
    return read_split(cfg, split)


def num_classes(cfg: DataConfig) -> int:
    """Number of classes of the configured dataset (from the training split's label convention)."""
    return annotations_for(cfg, "train").num_classes


def build_transform(cfg: DataConfig, *, train: bool) -> TrainPreset | EvalPreset:
    if train:
        return TrainPreset(input_size=cfg.input_size, short_side=cfg.short_side, scales=cfg.scales,
                           max_distort=cfg.max_distort, flip=cfg.use_flip)
    return EvalPreset(input_size=cfg.input_size, short_side=cfg.short_side, num_crops=cfg.num_crops)


def build_dataset(cfg: DataConfig, split: str, frames: int, *, train: bool, seed: int = 0,
                  multi_view: bool | None = None) -> VideoDataset:
    """The dataset of ``split`` with ``frames`` (= ModelConfig.frames) frames per clip.

    ``train=True``: random sampling + training augmentation, ``(T, C, H, W)`` clips. ``train=False``:
    centre sampling; with ``multi_view`` (default: whenever cfg asks for more than one clip or
    crop) ``num_clips x num_crops`` views ``(V, T, C, H, W)``, else the single centre view.
    Evaluation during training usually wants ``multi_view=False`` for speed.

    A remote ``cfg.root`` (s3://, gs://, file:///) is first staged onto this node's local disk,
    once per node (:func:`tdrl.data.staging.localize`); the dataset reads the local copy.
    """
    if is_uri(cfg.root):
        cfg = localize(cfg)
    ann = annotations_for(cfg, split)
    if multi_view is None:
        multi_view = cfg.num_clips * cfg.num_crops > 1
    if train or not multi_view:
        transform = build_transform(cfg, train=train) if train else EvalPreset(cfg.input_size, cfg.short_side, 1)
        clips = 1
    else:
        transform, clips = build_transform(cfg, train=False), cfg.num_clips
    # decode_on=device: JPEG bytes + parameters, decoded on the GPU by gpu_decode.decode_and_augment
    cls = FrameBytesDataset if cfg.decode_on == "device" else VideoDataset
    return cls(ann, frames, train=train, sampling=cfg.sampling_mode, window=cfg.window,
               transform=transform, num_clips=clips, decoder=cfg.decoder, on_error=cfg.on_error,
               max_error_fraction=cfg.max_error_fraction, seed=seed, cache=cfg.cache)


def build_loader(dataset: torch.utils.data.Dataset, batch_size: int = 1, *, shuffle: bool = False,
                 sampler: torch.utils.data.Sampler | None = None, workers: int = 2, drop_last: bool = False,
                 pin_memory: bool = False, seed: int | None = 0,
                 batch_sampler: torch.utils.data.Sampler | None = None) -> torch.utils.data.DataLoader:
    """The one way tdrl builds a DataLoader: persistent workers (decoders and the shared failure counter
    survive epochs), and the dataset's own ``collate_fn`` when it has one (``decode_on=device``: JPEG
    bytes), also through a ``Subset`` shard. ``seed`` seeds the loader's generator (shuffling, worker
    seeds); None draws them from torch's global generator. ``batch_sampler`` (lists of indices, e.g.
    training's global-batch sampler) replaces ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``."""
    base = dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    batching = ({"batch_sampler": batch_sampler} if batch_sampler is not None else
                {"batch_size": batch_size, "shuffle": shuffle, "sampler": sampler, "drop_last": drop_last})
    return torch.utils.data.DataLoader(dataset, **batching, num_workers=workers, generator=generator,
                                       pin_memory=pin_memory, collate_fn=getattr(base, "collate_fn", None),
                                       persistent_workers=workers > 0)
