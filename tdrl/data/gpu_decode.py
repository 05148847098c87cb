"""Device-side decoding (``data.decode_on="device"``): the loader reads JPEG bytes, the GPU does the rest.

With ``decode_on="loader"`` each DataLoader worker decodes, crops, resizes and normalises a clip on
the CPU; at paper resolution that is ~10 ms of CPU per clip even from JPEG frame folders, and a GPU
training at 500-700 clips/s would need more cores than its host has. With ``decode_on="device"``:

* :class:`FrameBytesDataset` (built by ``build_dataset``) samples frame indices and draws the crop
  box and flip exactly as the CPU pipeline does (same ``default_rng((seed, epoch, index))``, same
  draw order, via ``TrainPreset.draw`` / ``EvalPreset.boxes``; the frame size comes from the first
  JPEG's header), and returns the raw bytes of the sampled frames. CPU work per clip: reading T
  small files and parsing one JPEG header.
* :func:`collate_jpeg` batches items into a :class:`JpegBatch` (one byte buffer + offsets, so a
  batch crosses the worker->main process boundary as a handful of tensors, not N*T).
* :func:`decode_and_augment` decodes the whole batch with ``torchvision.io.decode_jpeg(list,
  device=device)`` (batched nvjpeg on CUDA, libjpeg-turbo on CPU), crops each clip, resizes it with
  the same call as the CPU pipeline (:func:`tdrl.data.transforms.resize_square`: bilinear,
  antialiased when shrinking), flips and normalises on ``device`` -> ``(N, T, C, S, S)`` (or ``(N, V, T,
  C, S, S)`` for multi-view evaluation), optionally channels_last so ``view(N*T, C, S, S)`` is a
  channels_last batch. On ``device="cpu"`` it is the same code, which the tests compare with the
  CPU pipeline.

In the training loop use :func:`batch_to_device`, which handles both modes, and give the DataLoader
``collate_fn=dataset.collate_fn``. Decode errors of a JPEG's body (the header is checked in the
worker) surface in :func:`decode_and_augment`, which then names the clip's folder.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from tdrl.data.dataset import VideoDataset
from tdrl.data.decoding import DecodeError, FrameFolder, open_video
from tdrl.data.sampling import sample_indices
from tdrl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset, TrainPreset, normalize_, resize_square


@dataclass
class JpegClip:
    """One item: the JPEG bytes of its ``U`` distinct frames and how to cut its ``V`` views."""

    data: torch.Tensor  # (B,) uint8, the U files back to back
    offsets: torch.Tensor  # (U+1,) int64, file u is data[offsets[u]:offsets[u+1]]
    index: torch.Tensor  # (V, T) int64 into the U frames
    boxes: torch.Tensor  # (V, 4) int64 crop y, x, h, w in original pixels
    flips: torch.Tensor  # (V,) bool
    size: int  # output side S
    source: str  # the frame folder, for error messages


@dataclass
class JpegBatch:
    """``N`` clips' JPEG bytes and augmentation parameters; :func:`decode_and_augment` turns it into clips."""

    data: torch.Tensor  # (B,) uint8
    offsets: torch.Tensor  # (U+1,) int64
    index: torch.Tensor  # (N, V, T) int64 into all U frames of the batch
    boxes: torch.Tensor  # (N, V, 4) int64
    flips: torch.Tensor  # (N, V) bool
    size: int
    sources: list[str]

    def __len__(self) -> int:
        return self.index.shape[0]

    def pin_memory(self) -> "JpegBatch":  # DataLoader(pin_memory=True) calls this
        return JpegBatch(self.data.pin_memory(), self.offsets, self.index, self.boxes, self.flips, self.size,
                         self.sources)


def jpeg_size(blob: bytes, path: object) -> tuple[int, int]:
    """``(h, w)`` from a JPEG header (Pillow reads only the header here); DecodeError if not a JPEG."""
    try:
        with Image.open(io.BytesIO(blob)) as im:
            if im.format != "JPEG":
                raise ValueError(f"a {im.format} image, not a JPEG")
            return im.height, im.width
    except Exception as exc:
        raise DecodeError(f"{path}: cannot read the JPEG header ({exc}); decode_on=device needs JPEG frames "
                          f"(convert with tdrl data prepare)") from None


def _read(path) -> bytes:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise DecodeError(f"{path}: cannot read frame: {exc}") from None
    if not blob:
        raise DecodeError(f"{path}: empty file (0 bytes)")
    return blob


def collate_jpeg(items: Sequence[tuple[JpegClip, int]]) -> tuple[JpegBatch, torch.Tensor]:
    """DataLoader collate for :class:`FrameBytesDataset`: -> ``(JpegBatch, labels (N,))``."""
    clips = [c for c, _ in items]
    base = np.cumsum([0] + [len(c.offsets) - 1 for c in clips])  # first frame number of each clip
    byte_base = np.cumsum([0] + [c.data.numel() for c in clips])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64)]
                        + [c.offsets[1:] + int(byte_base[k]) for k, c in enumerate(clips)])
    return (JpegBatch(data=torch.cat([c.data for c in clips]), offsets=offsets,
                      index=torch.stack([c.index + int(base[k]) for k, c in enumerate(clips)]),
                      boxes=torch.stack([c.boxes for c in clips]), flips=torch.stack([c.flips for c in clips]),
                      size=clips[0].size, sources=[c.source for c in clips]),
            torch.tensor([label for _, label in items], dtype=torch.int64))


class FrameBytesDataset(VideoDataset):
    """A :class:`VideoDataset` over JPEG frame folders whose items are :class:`JpegClip` (see module doc).

    Sampling, augmentation draws, the failure policy (``on_error``) and ``set_epoch`` are the
    parent's; only decoding moves to :func:`decode_and_augment`.
    """

    collate_fn = staticmethod(collate_jpeg)

    def load(self, index: int) -> tuple[JpegClip, int]:
        rec = self.records[index]
        if rec.num_frames and (rec.path / "00001.jpg").is_file():
            # A list file's frame count (tdrl data prepare writes it) and 00001.jpg naming: the frames'
            # names are known, so the folder is not listed (listing 300 names costs more than the reads).
            n = rec.num_frames
            files = [rec.path / f"{i + 1:05d}.jpg" for i in range(n)]
        else:
            folder = open_video(rec.path, self.decoder)
            if not isinstance(folder, FrameFolder):
                raise DecodeError(f"{rec.path}: data.decode_on=device reads JPEG frame folders, not video files; "
                                  f"convert the dataset once with tdrl data prepare")
            n, files = len(folder), folder.files
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        idx = sample_indices(self.sampling, n, self.frames, train=self.train, rng=rng,
                             window=self.window, num_clips=self.num_clips)  # (clips, T)
        uniq, inverse = np.unique(idx.reshape(-1), return_inverse=True)
        blobs = [_read(files[i]) for i in uniq]
        h, w = jpeg_size(blobs[0], files[uniq[0]])
        inverse = inverse.reshape(idx.shape)  # (clips, T)
        if self.train:
            assert isinstance(self.transform, TrainPreset)
            box, flip = self.transform.draw(h, w, rng)  # same draws, same order as TrainPreset.__call__
            boxes, flips, views = [box], [flip], inverse[:1]
        else:
            assert isinstance(self.transform, EvalPreset)
            crops = self.transform.boxes(h, w)
            boxes = [b for _ in range(self.num_clips) for b in crops]  # clip-major, as VideoDataset
            flips = [False] * len(boxes)
            views = np.repeat(inverse, len(crops), axis=0)
        sizes = np.cumsum([0] + [len(b) for b in blobs])
        return JpegClip(
            data=torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8),
            offsets=torch.from_numpy(sizes.astype(np.int64)),
            index=torch.from_numpy(np.ascontiguousarray(views, dtype=np.int64)),
            boxes=torch.tensor([[b.y, b.x, b.h, b.w] for b in boxes], dtype=torch.int64),
            flips=torch.tensor(flips, dtype=torch.bool),
            size=self.transform.input_size, source=str(rec.path)), rec.label


def _decode(blobs: list[torch.Tensor], device: torch.device, sources: list[str], owner: list[int]) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg  # warns that it is deprecated on import: decode_on=device only

    try:
        return decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        for u, b in enumerate(blobs):  # find the culprit to name it (only on failure)
            try:
                decode_jpeg(b, mode=ImageReadMode.RGB, device=device)
            except RuntimeError as exc:
                raise DecodeError(f"{sources[owner[u]]}: a sampled frame is not a decodable JPEG (corrupt or "
                                  f"truncated?): {str(exc).strip()[:200]}") from None
        raise


def decode_and_augment(batch: JpegBatch, device: torch.device | str, *, channels_last: bool = False,
                       dtype: torch.dtype = torch.float32, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Decode ``batch`` on ``device`` and crop/resize/flip/normalise there.

    Returns ``(N, T, C, S, S)`` (``(N, V, T, C, S, S)`` when the batch has V > 1 views) of ``dtype``.
    ``channels_last``: the memory layout is ``(N, [V,] T, S, S, C)``, so the model's
    ``view(N*T, C, S, S)`` is a channels_last batch without a copy.
    """
    device = torch.device(device)
    offs = batch.offsets.tolist()
    blobs = [batch.data[offs[u]:offs[u + 1]] for u in range(len(offs) - 1)]
    index = batch.index.tolist()
    owner = [0] * len(blobs)
    for n, views in enumerate(index):
        for t in (t for v in views for t in v):
            owner[t] = n
    frames = _decode(blobs, device, batch.sources, owner)  # U x (3, H, W) uint8 on device
    n_clips, n_views, n_t = batch.index.shape
    s = batch.size
    if channels_last:
        out = torch.empty(n_clips, n_views, n_t, s, s, 3, dtype=dtype, device=device).permute(0, 1, 2, 5, 3, 4)
    else:
        out = torch.empty(n_clips, n_views, n_t, 3, s, s, dtype=dtype, device=device)
    boxes, flips = batch.boxes.tolist(), batch.flips.tolist()
    for n in range(n_clips):
        for v in range(n_views):
            y, x, h, w = boxes[n][v]
            sel = [frames[t] for t in index[n][v]]
            if len({f.shape for f in sel}) > 1:
                raise DecodeError(f"{batch.sources[n]}: frames have different sizes {sorted({tuple(f.shape) for f in sel})}")
            clip = torch.stack([f[:, y:y + h, x:x + w] for f in sel]).float()  # (T, 3, h, w)
            clip = resize_square(clip, s)
            if flips[n][v]:
                clip = clip.flip(-1)
            out[n, v].copy_(normalize_(clip, mean, std))
    return out[:, 0] if n_views == 1 else out


def batch_to_device(batch: tuple, device: torch.device | str, *, channels_last: bool = False,
                    non_blocking: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clips, labels)`` on ``device`` from a batch of either mode (float clips or a JpegBatch)."""
    data, labels = batch
    labels = labels.to(device, non_blocking=non_blocking)
    if isinstance(data, JpegBatch):
        return decode_and_augment(data, device, channels_last=channels_last), labels
    data = data.to(device, non_blocking=non_blocking)
    if channels_last and data.dim() == 5:  # (N, T, C, H, W): make the folded (N*T, C, H, W) channels_last
        n, t, c, h, w = data.shape
        data = data.reshape(n * t, c, h, w).contiguous(memory_format=torch.channels_last).view(n, t, c, h, w)
    return data, labels
