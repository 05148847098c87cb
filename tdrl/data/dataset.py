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
from tdrl.data.annotations import Annotations, VideoRecord
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
