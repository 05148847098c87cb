"""Frame access behind one small interface: decord for video files, a JPEG frame-folder reader, PyAV.

A :class:`VideoSource` knows its frame count and returns the frames at given indices as one
``(T, H, W, C)`` uint8 RGB array. New decoders register in :data:`DECODERS`. Every failure
(missing, empty, truncated, corrupt file, index past the end) raises :class:`DecodeError` naming
the file, so the dataset can point back at the annotation line.

decord 0.6.0 (not the ``decord2`` fork) is the default: on this project's files decord2 3.4.0
fails on frame widths 32, 48, 96 and 144 ("DECORDArrayCopyFromTo: The size must exactly match"),
see docs/data.md. PyAV is the fallback where decord is not installed (e.g. aarch64).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from tdrl.config.base import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


class DecodeError(InputError, RuntimeError):
    """A video or frame folder cannot be read; the message names the path and the problem."""


class VideoSource(Protocol):
    path: Path

    def __len__(self) -> int: ...

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` as ``(T, H, W, 3)`` uint8 RGB."""
        ...


def _check_indices(path: Path, indices: Sequence[int], n: int) -> list[int]:
    idx = [int(i) for i in indices]
    bad = [i for i in idx if i < 0 or i >= n]
    if bad:
        raise DecodeError(f"{path}: frame index {bad[0]} out of range; the video has {n} frames")
    return idx


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DecodeError(f"{path}: video file not found; check the dataset root/video_dir and the annotation")
    if path.is_dir():
        raise DecodeError(f"{path}: is a directory, expected a video file")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: video file is empty (0 bytes); re-download or remove it from the annotations")


class DecordVideo:
    """A video file read with decord (random access, seeks to key frames)."""

    def __init__(self, path: Path | str, num_threads: int = 1) -> None:
        self.path = Path(path)
        _check_file(self.path)
        import decord  # imported here so the package works without decord (PyAV fallback)

        try:
            # One thread: parallelism comes from DataLoader workers, extra threads only contend.
            self._reader = decord.VideoReader(str(self.path), num_threads=num_threads)
            self._n = len(self._reader)
        except Exception as exc:  # decord raises its own DECORDError / RuntimeError
            raise DecodeError(f"{self.path}: cannot open video (corrupt or truncated?): "
                              f"{str(exc).strip().splitlines()[-1][:200]}") from None
        if self._n <= 0:
            raise DecodeError(f"{self.path}: video has no frames")

    def __len__(self) -> int:
        return self._n

    def get(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(self.path, indices, self._n)
        try:
            frames = self._reader.get_batch(idx).asnumpy()
        except Exception as exc:
            raise DecodeError(f"{self.path}: cannot decode frames {idx[:4]}... (truncated or corrupt?): "
                              f"{str(exc).strip().splitlines()[-1][:200]}") from None
        return np.ascontiguousarray(frames, dtype=np.uint8)  # (T, H, W, C)


class PyAVVideo:
    """A video file read sequentially with PyAV; decodes up to the largest requested index."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        _check_file(self.path)
        import av  # the PyAV backend: imported when a video is opened with it

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                n = stream.frames
                if not n:  # webm/mkv do not store a frame count: count packets' frames
                    n = sum(1 for _ in container.decode(video=0))
        except Exception as exc:
            raise DecodeError(f"{self.path}: cannot open video (corrupt or truncated?): {exc}") from None
        if n <= 0:
            raise DecodeError(f"{self.path}: video has no frames")
        self._n = int(n)

    def __len__(self) -> int:
        return self._n

    def get(self, indices: Sequence[int]) -> np.ndarray:
        import av  # the PyAV backend: imported when a video is opened with it

        idx = _check_indices(self.path, indices, self._n)
        wanted = set(idx)
        got: dict[int, np.ndarray] = {}
        try:
            with av.open(str(self.path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i in wanted:
                        got[i] = frame.to_ndarray(format="rgb24")
                    if i >= max(idx):
                        break
        except Exception as exc:
            raise DecodeError(f"{self.path}: cannot decode (truncated or corrupt?): {exc}") from None
        missing = [i for i in idx if i not in got]
        if missing:
            raise DecodeError(f"{self.path}: frame {missing[0]} could not be decoded; the file is shorter "
                              f"than its header says (truncated?)")
        return np.stack([got[i] for i in idx])  # (T, H, W, C)


_NUM_RE = re.compile(r"(\d+)(?=\.[A-Za-z]+$)")


class FrameFolder:
    """A folder of numbered JPEG frames (V1 ``00001.jpg``, or ``img_00001.jpg``); index 0 = lowest number."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DecodeError(f"{self.path}: frame folder not found; check the dataset root/video_dir")
        files = [f for f in os.listdir(self.path) if f.lower().endswith(IMAGE_EXTS)]
        numbered = []
        for f in files:
            m = _NUM_RE.search(f)
            if m:
                numbered.append((int(m.group(1)), f))
        if not numbered:
            raise DecodeError(f"{self.path}: frame folder has no numbered .jpg/.png frames")
        numbered.sort()
        self._files = [self.path / f for _, f in numbered]

    def __len__(self) -> int:
        return len(self._files)

    @property
    def files(self) -> list[Path]:
        """The frame files in frame order."""
        return list(self._files)

    def get(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image  # frame folders only

        idx = _check_indices(self.path, indices, len(self._files))
        out = []
        cache: dict[int, np.ndarray] = {}
        for i in idx:
            if i not in cache:  # segment sampling of short folders repeats indices
                f = self._files[i]
                try:
                    if f.stat().st_size == 0:
                        raise ValueError("empty file (0 bytes)")
                    with Image.open(f) as im:  # Pillow's libjpeg-turbo; (H, W, C) uint8
                        img = np.asarray(im.convert("RGB"))
                except Exception as exc:
                    raise DecodeError(f"{f}: cannot decode frame {i} of {self.path} (corrupt?): {exc}") from None
                cache[i] = img
            out.append(cache[i])
        shapes = {a.shape for a in out}
        if len(shapes) > 1:
            raise DecodeError(f"{self.path}: frames have different sizes {sorted(shapes)}")
        return np.stack(out)  # (T, H, W, C)


def _auto_video(path: Path) -> VideoSource:
    try:
        import decord  # noqa: F401  (optional: PyAV is the fallback)
    except ImportError:
        return PyAVVideo(path)
    return DecordVideo(path)


DECODERS: dict[str, Callable[[Path], VideoSource]] = {
    "auto": _auto_video,
    "decord": DecordVideo,
    "pyav": PyAVVideo,
}


def open_video(path: Path | str, decoder: str = "auto") -> VideoSource:
    """Open a video file with ``decoder`` (see :data:`DECODERS`) or a frame folder (any directory)."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    return DECODERS[decoder](path)
