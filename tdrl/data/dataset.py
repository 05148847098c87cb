"""The torch Dataset that turns annotation records into clips, with the load-failure policy.

``VideoDataset[i]`` returns ``(clip, label)``: ``clip`` is ``(T, C, H, W)`` float32 for training and
single-view evaluation, ``(V, T, C, H, W)`` for multi-view evaluation (``V = num_clips*num_crops``,
clip-major: views ``c*num_crops .. c*num_crops+num_crops-1`` are clip ``c``'s crops); the caller
averages the V scores. The default collate batches these to ``(N, T, C, H, W)`` / ``(N, V, ...)``.

Failure policy. ``on_error="raise"``: the first unreadable item raises :class:`DataLoadError`
naming the file and annotation line. ``on_error="skip"``: the failure is warned about and counted,
the next item (``i+1``, ``i+2``, ...) is returned instead, and loading aborts with
:class:`DataLoadError` once the epoch's failures exceed ``max_error_fraction`` of the dataset.
Counting across DataLoader worker processes: counts live in a small shared-memory tensor with
one row per worker (row 0 = the main process), so each process writes only its own row (no lock
needed) and the training loop reads the sum with :meth:`VideoDataset.load_stats` in the main
process. Shared memory travels to workers both by fork and by the DataLoader's spawn pickling;
a plain pickle (e.g. shipping the dataset to a Ray actor) copies the counts instead, so build
the dataset inside the process that owns the DataLoader.

Randomness: a training item's sampling and augmentation use ``numpy.random.default_rng((seed,
epoch, index))``, so they do not depend on the number of workers; call :meth:`set_epoch` every
epoch (as with ``DistributedSampler``) to get new augmentations, which also resets the counts.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from tdrl.config.base import check_choice, literal_values
from tdrl.config.data import DataConfig
from tdrl.config.paths import is_uri
from tdrl.data.annotations import Annotations, VideoRecord, load_annotations
from tdrl.data.decoding import DecodeError, open_video
from tdrl.data.sampling import sample_indices
from tdrl.data.transforms import EvalPreset, TrainPreset

MAX_WORKERS = 64  # rows of the shared failure counter; worker ids beyond share the last row
MAX_SUBSTITUTES = 16  # in skip mode, how many following items to try before giving up


class DataLoadError(RuntimeError):
    """An item could not be loaded (raise policy), or too many could not (skip policy)."""


class VideoDataset(Dataset):
    """Clips of ``frames`` frames from annotated videos / frame folders (see module docstring)."""

    def __init__(self, annotations: Annotations, frames: int, *, train: bool, sampling: str = "segments",
                 window: int = 64, transform: TrainPreset | EvalPreset | None = None, num_clips: int = 1,
                 decoder: str = "auto", on_error: str = "raise", max_error_fraction: float = 0.01,
                 seed: int = 0, cache: bool = False) -> None:
        check_choice("on_error", on_error, literal_values(DataConfig, "on_error"))
        self.classes = annotations.classes
        self.records: tuple[VideoRecord, ...] = annotations.records
        self.frames = frames
        self.train = train
        self.sampling = sampling
        self.window = window
        self.transform = transform if transform is not None else (TrainPreset() if train else EvalPreset())
        self.num_clips = 1 if train else num_clips
        self.decoder = decoder
        self.on_error = on_error
        self.max_error_fraction = max_error_fraction
        self.seed = seed
        # data.cache: per process (each DataLoader worker fills its own; persistent workers keep it
        # across epochs). Training keeps every decoded frame of a video, since the sampled frames
        # change each epoch; evaluation keeps the finished clip, which never changes.
        self.cache = cache
        self._frames: dict[int, np.ndarray] = {}
        self._clips: dict[int, torch.Tensor] = {}
        # Shared like the counts so persistent DataLoader workers see set_epoch from the main process.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        # (rows, 2): [items attempted, items failed] per process; shared so workers' counts are visible.
        self._counts = torch.zeros(MAX_WORKERS + 1, 2, dtype=torch.int64).share_memory_()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def views(self) -> int:
        crops = getattr(self.transform, "num_crops", 1) if not self.train else 1
        return self.num_clips * crops

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for ``epoch``; resets the failure counts (read them first)."""
        self._epoch[0] = int(epoch)
        self._counts.zero_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def load_stats(self) -> dict[str, float]:
        """Counts of this epoch summed over all processes: attempted, failed, fraction failed."""
        attempted, failed = (int(v) for v in self._counts.sum(0))
        return {"attempted": attempted, "failed": failed,
                "failed_fraction": failed / attempted if attempted else 0.0}

    def _row(self) -> int:
        info = get_worker_info()
        return 0 if info is None else min(info.id + 1, MAX_WORKERS)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """Load item ``index`` ignoring the policy; raises DecodeError on any failure."""
        if index in self._clips:
            return self._clips[index], self.records[index].label
        rec = self.records[index]
        if self.cache and self.train:
            if index not in self._frames:
                video = open_video(rec.path, self.decoder)
                self._frames[index] = video.get(list(range(len(video))))  # (N, H, W, C) uint8
            all_frames = self._frames[index]
            n, get = len(all_frames), all_frames.__getitem__
        else:
            video = open_video(rec.path, self.decoder)
            n, get = len(video), video.get
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        idx = sample_indices(self.sampling, n, self.frames, train=self.train, rng=rng,
                             window=self.window, num_clips=self.num_clips)  # (clips, T)
        # One decode call for all clips: decord seeks once per key frame instead of once per clip.
        flat = idx.reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        frames = get(uniq.tolist())[inverse]  # (clips*T, H, W, C) uint8
        if self.train:
            clip = self.transform(frames, rng)  # (T, C, S, S)
            return clip, rec.label
        views = [self.transform(frames[c * self.frames:(c + 1) * self.frames]) for c in range(self.num_clips)]
        out = torch.cat(views)  # (clips*crops, T, C, S, S), clip-major
        out = out[0] if out.shape[0] == 1 else out
        if self.cache:
            self._clips[index] = out
        return out, rec.label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self._row()
        for k in range(MAX_SUBSTITUTES if self.on_error == "skip" else 1):
            i = (index + k) % len(self.records)
            self._counts[row, 0] += 1
            try:
                return self.load(i)
            except (DecodeError, OSError, ValueError, RuntimeError) as exc:
                rec = self.records[i]
                msg = f"{rec.source}: cannot load {rec.path}: {exc}"
                if self.on_error == "raise":
                    raise DataLoadError(msg + " (set data.on_error=skip to skip unreadable items)") from exc
                self._counts[row, 1] += 1
                stats = self.load_stats()
                warnings.warn(f"skipping item {i}: {msg}", RuntimeWarning, stacklevel=2)
                if stats["failed"] > self.max_error_fraction * len(self.records):
                    raise DataLoadError(
                        f"{stats['failed']} of {len(self.records)} items failed to load this epoch, more than "
                        f"data.max_error_fraction={self.max_error_fraction}; last: {msg}. Fix or remove the "
                        f"broken files (tdrl data inspect lists them) or raise the fraction") from exc
        raise DataLoadError(f"items {index}..{index + MAX_SUBSTITUTES - 1} all failed to load; last: {msg}")


def annotations_for(cfg: DataConfig, split: str) -> Annotations:
    """Parse the annotation file of ``split`` ("train" or "val") named by ``cfg``. A remote root
    stages the annotation and label files alone (the driver's checks; tdrl.data.staging)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if is_uri(cfg.root):
        from tdrl.data.staging import localize

        cfg = localize(cfg, annotations_only=True)
    ann = cfg.train_annotations if split == "train" else cfg.val_annotations
    return load_annotations(cfg.dataset, cfg.root, ann, split=split, labels=cfg.labels,
                            video_dir=cfg.video_dir, video_ext=cfg.video_ext)


def count_clips(cfg: DataConfig, split: str) -> int:
    """Clips in the annotation file of ``split``. A remote root's annotation and label files are read
    into memory, not staged: nothing is written (the planner, ``--plan``)."""
    if not is_uri(cfg.root):
        return len(annotations_for(cfg, split).records)
    ann = cfg.train_annotations if split == "train" else cfg.val_annotations
    return len(load_annotations(cfg.dataset, cfg.root, ann, split=split, labels=cfg.labels, video_dir=cfg.video_dir,
                                video_ext=cfg.video_ext).records)


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
        from tdrl.data.staging import localize

        cfg = localize(cfg)
    ann = annotations_for(cfg, split)
    if multi_view is None:
        multi_view = cfg.num_clips * cfg.num_crops > 1
    if train or not multi_view:
        transform = build_transform(cfg, train=train) if train else EvalPreset(cfg.input_size, cfg.short_side, 1)
        clips = 1
    else:
        transform, clips = build_transform(cfg, train=False), cfg.num_clips
    cls = VideoDataset
    if cfg.decode_on == "device":  # JPEG bytes + parameters; decoded by gpu_decode.decode_and_augment
        from tdrl.data.gpu_decode import FrameBytesDataset as cls  # noqa: N813
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
