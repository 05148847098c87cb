"""``tdrl data prepare``: convert a dataset once into JPEG frame folders, the fast training form.

Decoding a long-GOP video costs far more than decoding the T JPEG frames a clip needs, so each
video is decoded once here, every frame scaled to the shorter side ``short_side`` (only shrunk, unless
``upscale``: the augmentation places its crops relative to the shorter side whatever it is, so an
upscaled copy only costs disk and decode time) and written as ``<out>/frames/<video id>/00001.jpg
...`` (Pillow, ``quality``). ``<video id>`` is the item's path under the source video folder without
its extension (V2 ``123``, Kinetics ``<label>/<ytid>_<start>_<end>``).

Annotations come out in the ``list`` format, one file per split: ``<out>/<split>.txt`` with lines
``frames/<video id> <num_frames> <label>``, and ``<out>/labels.txt`` with the class names in index
order, so labels and class indices are those of the source and
``DataConfig(**info.data_fields())`` (``dataset="list"``) reads the result with ``build_dataset``.

Resumable and idempotent: a video is written into ``<id>.part-<pid>`` and renamed into place when
complete, so an existing folder is a finished video and is skipped; a rerun converts only what is
missing (e.g. a deleted folder), and ``prepare.json`` records the parameters, so a rerun with other
``short_side``/``quality`` is refused instead of mixing sizes (use ``force``). Every run ends by
writing ``tdrl-manifest.tsv`` (each file's size and SHA-256, :mod:`tdrl.data.manifest`), so the
folder can be uploaded to a bucket and staged onto each node (``data.root=s3://...``); ``--pack DEST``
then packs it into tar shards under DEST (:mod:`tdrl.data.shards`), the form to upload for a set of
millions of frames. Videos are converted
by ``workers`` processes. Unreadable videos are reported with their file and annotation line: the
run converts the rest, then raises :class:`PrepareError` (nothing is written to the split files)
unless ``skip_bad``, which leaves them out of the split files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from tdrl.config.base import ConfigError, InputError
from tdrl.config.paths import absolute
from tdrl.data.annotations import V1_DEFAULTS, V2_DEFAULTS, add_source_arguments, load_annotations
from tdrl.data.decoding import FrameFolder, _check_file
from tdrl.data.manifest import write_manifest
from tdrl.data.shards import add_shard_size_argument, pack_folder, report

FRAMES_DIR = "frames"
LABELS_FILE = "labels.txt"
PARAMS_FILE = "prepare.json"
FORMAT_VERSION = 1


class PrepareError(InputError, RuntimeError):
    """A video could not be converted, or the output directory holds a different preparation."""


@dataclass(frozen=True)
class PrepareParams:
    """What decides the written frames (compared with ``prepare.json`` on a rerun)."""

    short_side: int = 256
    quality: int = 90
    upscale: bool = False
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.short_side < 0 or (0 < self.short_side < 8):
            raise ConfigError(f"short_side={self.short_side}: must be >= 8 (or 0 to keep the size)")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality={self.quality}: must be 1..100")


@dataclass
class PrepareInfo:
    """The result of :func:`prepare_dataset`; :meth:`data_fields` plugs into ``DataConfig``."""

    out: str
    splits: dict[str, str]  # split name -> list file (absolute)
    labels: str
    classes: tuple[str, ...]
    converted: int = 0  # videos written by this run
    skipped: int = 0  # videos already complete
    failed: list[str] = field(default_factory=list)  # "source: path: reason" of unreadable videos
    seconds: float = 0.0

    def data_fields(self) -> dict[str, Any]:
        fields = {"dataset": "list", "root": self.out, "video_dir": "", "labels": self.labels}
        if "train" in self.splits:
            fields["train_annotations"] = self.splits["train"]
        if "val" in self.splits:
            fields["val_annotations"] = self.splits["val"]
        return fields


def video_id(path: Path, video_root: Path) -> str:
    """``path`` relative to the source video folder, without extension, with ``/`` separators."""
    try:
        rel = Path(path).relative_to(video_root)
    except ValueError:  # absolute paths outside the folder: keep the last component only
        rel = Path(Path(path).name)
    rel = rel.with_suffix("") if rel.suffix.lower() in (".mp4", ".webm", ".avi", ".mkv", ".mov") else rel
    return rel.as_posix()


def target_size(h: int, w: int, short_side: int, upscale: bool) -> tuple[int, int]:
    """``(h, w)`` scaled so the shorter side is ``short_side`` (unchanged if 0, or smaller and not upscale)."""
    short = min(h, w)
    if short_side == 0 or short == short_side or (short < short_side and not upscale):
        return h, w
    s = short_side / short
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def _frames(src: Path):
    """Yield the frames of a video file (PyAV, sequential) or frame folder as ``(H, W, 3)`` uint8, or
    ``(path, None)`` for folder JPEGs that can be copied as they are (see :func:`convert_video`)."""
    if src.is_dir():
        for f in FrameFolder(src).files:
            yield f
        return
    _check_file(src)
    import av  # PyAV: imported by the conversion workers, not on `tdrl data prepare --help`'s path

    with av.open(str(src)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def convert_video(src: Path, dst: Path, params: PrepareParams) -> int:
    """Decode ``src`` (file or frame folder) once into ``dst/00001.jpg ...``; returns the frame count.

    Written into a temporary sibling folder and renamed, so ``dst`` exists only when complete.
    """
    tmp = dst.with_name(f"{dst.name}.part-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = 0
    try:
        for item in _frames(src):
            n += 1
            out = tmp / f"{n:05d}.jpg"
            if isinstance(item, Path):  # a frame of a folder
                with Image.open(item) as im:
                    h, w = im.height, im.width
                    size = target_size(h, w, params.short_side, params.upscale)
                    if size == (h, w) and im.format == "JPEG" and im.mode == "RGB":
                        shutil.copyfile(item, out)  # already JPEG at the right size: no second loss
                        continue
                    img = im.convert("RGB")
            else:
                img = Image.fromarray(np.ascontiguousarray(item))
            size = target_size(img.height, img.width, params.short_side, params.upscale)
            if size != (img.height, img.width):
                # Pillow's bilinear widens its filter when shrinking (antialiased), like the loader's resize.
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            img.save(out, format="JPEG", quality=params.quality)
        if n == 0:
            raise PrepareError("no frames decoded (empty or corrupt video)")
        os.replace(tmp, dst)  # atomic: the folder appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def _convert_many(tasks: list[tuple[str, str]], params: PrepareParams) -> list[tuple[str, int | None, str]]:
    """Worker: convert ``(src, dst)`` pairs -> ``(dst, num_frames or None, error)``."""
    results = []
    for src, dst in tasks:
        try:
            results.append((dst, convert_video(Path(src), Path(dst), params), ""))
        except Exception as exc:  # reported with the annotation line by the caller
            msg = str(exc).strip().splitlines()
            results.append((dst, None, f"{type(exc).__name__}: {msg[-1] if msg else ''}"[:300]))
    return results


def count_frames(folder: Path) -> int:
    return sum(1 for f in os.listdir(folder) if f.endswith(".jpg"))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def default_splits(dataset: str) -> dict[str, str | None]:
    official = {"sthv1": V1_DEFAULTS, "sthv2": V2_DEFAULTS}.get(dataset)
    if official is not None:
        return {"train": official["train"], "val": official["val"]}
    raise PrepareError(f"dataset {dataset!r} has no official annotation names; give --annotations "
                       f"train=FILE [--annotations val=FILE]")


def parse_split_args(values: Sequence[str] | None, dataset: str) -> dict[str, str | None]:
    """``["train=a.csv", "b.csv"]`` -> ``{"train": "a.csv", "b": "b.csv"}`` (bare file: split = file stem)."""
    if not values:
        return default_splits(dataset)
    splits: dict[str, str | None] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).stem, v
        if not name or not path or "/" in name or name in (FRAMES_DIR, "labels", "prepare"):
            raise PrepareError(f"--annotations {v!r}: expected SPLIT=FILE (e.g. train=train.csv) or FILE")
        if name in splits:
            raise PrepareError(f"--annotations: split {name!r} given twice")
        splits[name] = path
    return splits


def prepare_dataset(dataset: str, root: str | Path, out: str | Path, *,
                    annotations: dict[str, str | None] | None = None, labels: str | None = None,
                    video_dir: str = "", video_ext: str = ".webm", short_side: int = 256, quality: int = 90,
                    upscale: bool = False, workers: int | None = None, skip_bad: bool = False,
                    force: bool = False, progress: bool = False) -> PrepareInfo:
    """Convert the splits ``annotations`` (split -> annotation file; default: the official train and
    validation files of sthv1/sthv2) of ``dataset`` under ``root`` into frame folders under ``out``.
    See the module docstring for layout, resuming and errors."""
    t0 = time.time()
    params = PrepareParams(short_side, quality, upscale)
    splits = dict(annotations) if annotations else default_splits(dataset)
    out, root = Path(out).resolve(), Path(root)
    video_root = (root / video_dir if video_dir else root).resolve()
    parsed = {split: load_annotations(dataset, root, ann, split=split if split in ("train", "val") else "train",
                                      labels=labels, video_dir=video_dir, video_ext=video_ext)
              for split, ann in splits.items()}
    classes = next(iter(parsed.values())).classes
    for split, a in parsed.items():
        if a.classes != classes:
            raise PrepareError(f"split {split!r} has other classes than {next(iter(parsed))!r}; "
                               f"give the same --labels for all splits")
    frames_root = _claim_output(out, params, force, {"dataset": dataset, "root": str(root.resolve()),
                                                     "splits": {k: str(v) for k, v in splits.items()}})
    # One task per distinct video (an item may appear in several splits).
    dest: dict[Path, str] = {}  # source path -> video id
    where: dict[str, str] = {}  # video id -> first annotation line naming it
    for a in parsed.values():
        for r in a.records:
            vid = dest.setdefault(r.path, video_id(r.path, video_root))
            where.setdefault(vid, r.source)
    num_frames = {vid: count_frames(frames_root / vid) for vid in dest.values() if (frames_root / vid).is_dir()}
    todo = [(str(src), str(frames_root / vid)) for src, vid in dest.items() if vid not in num_frames]
    info = PrepareInfo(str(out), {}, str(out / LABELS_FILE), classes, skipped=len(num_frames))
    converted, errors = _convert_all(todo, params, frames_root, workers, progress)
    num_frames.update(converted)
    info.converted = len(converted)
    src_of = {vid: src for src, vid in dest.items()}
    info.failed = [f"{where[v]}: {src_of[v]}: {e}" for v, e in sorted(errors.items())]
    if errors and not skip_bad:
        shown = "\n  ".join(info.failed[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise PrepareError(f"{len(errors)} video(s) could not be converted (the others were; a rerun "
                           f"resumes):\n  {shown}{more}\nfix or remove them, or pass --skip-bad to leave "
                           f"them out of the split files")
    _write_if_changed(out / LABELS_FILE, "".join(c + "\n" for c in classes))
    for split, a in parsed.items():
        lines = [f"{FRAMES_DIR}/{dest[r.path]} {num_frames[dest[r.path]]} {r.label}\n"
                 for r in a.records if dest[r.path] not in errors]
        path = out / f"{split}.txt"
        _write_if_changed(path, "".join(lines))
        info.splits[split] = str(path)
    # Sizes and hashes of everything written, so a copy in a bucket can be staged and verified on
    # each node (tdrl.data.staging); hashed here, once, where the data is made.
    write_manifest(out, threads=workers or os.cpu_count() or 1)
    info.seconds = time.time() - t0
    return info


def _claim_output(out: Path, params: PrepareParams, force: bool, source: dict[str, Any]) -> Path:
    """Refuse an output folder prepared with other parameters (unless ``force``, which clears it), record
    ours, and return its frames folder."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / PARAMS_FILE
    if marker.is_file() and not force:
        old = json.loads(marker.read_text()).get("params")
        if old != asdict(params):
            raise PrepareError(f"{out} was prepared with {old}, not {asdict(params)}; use another --out or "
                               f"--force to redo every video")
    frames_root = out / FRAMES_DIR
    if force and frames_root.exists():
        shutil.rmtree(frames_root)
    frames_root.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"params": asdict(params), **source}, indent=1))
    return frames_root


def _convert_all(todo: list[tuple[str, str]], params: PrepareParams, frames_root: Path, workers: int | None,
                 progress: bool) -> tuple[dict[str, int], dict[str, str]]:
    """Convert ``(source, folder)`` pairs in ``workers`` processes; returns ``(frames per converted video
    id, error per failed video id)``."""
    converted: dict[str, int] = {}
    errors: dict[str, str] = {}
    if not todo:
        return converted, errors
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    chunk = max(1, min(16, len(todo) // (workers * 4) or 1))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]

    def collect(results: list[tuple[str, int | None, str]]) -> None:
        for dst, n, err in results:
            vid = Path(dst).relative_to(frames_root).as_posix()
            if n is None:
                errors[vid] = err
            else:
                converted[vid] = n
        if progress:
            print(f"\r{len(converted) + len(errors)}/{len(todo)} videos", end="", file=sys.stderr, flush=True)

    if workers == 1:
        for c in chunks:
            collect(_convert_many(c, params))
    else:
        # spawn: the caller may hold torch/Ray threads that fork copies badly.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_convert_many, c, params) for c in chunks]):
                collect(fut.result())
    if progress:
        print(file=sys.stderr)
    return converted, errors


# --- the `tdrl data prepare` command ----------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, root_help="source dataset directory")
    parser.add_argument("--annotations", action="append", default=None, metavar="[SPLIT=]FILE",
                        help="annotation file of a split, repeatable (a bare FILE names the split after its "
                             "stem); default for sthv1/sthv2: the official train and validation files")
    parser.add_argument("--out", required=True, help="output directory (frames/, <split>.txt, labels.txt)")
    parser.add_argument("--short-side", type=int, default=256,
                        help="scale frames so the shorter side is this (only down, unless --upscale; 0 = keep)")
    parser.add_argument("--upscale", action="store_true", help="also enlarge frames smaller than --short-side")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100 (default 90)")
    parser.add_argument("--processes", type=int, default=None, help="converting processes (default: all cores)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave unreadable videos out of the split files instead of failing")
    parser.add_argument("--force", action="store_true", help="redo every video")
    parser.add_argument("--pack", default=None, metavar="DEST",
                        help="then pack the output into tar shards under DEST, the folder to upload for a large "
                             "set (tdrl data pack OUT DEST)")
    add_shard_size_argument(parser)


def run(args: argparse.Namespace) -> int:
    # Paths typed on the command line are relative to the current folder; official names (no
    # --annotations / --labels) are looked up under --root.
    splits = parse_split_args(args.annotations, args.dataset)
    if args.annotations:
        splits = {k: absolute(v) for k, v in splits.items()}
    info = prepare_dataset(args.dataset, absolute(args.root), absolute(args.out), annotations=splits,
                           labels=args.labels and absolute(args.labels),
                           video_dir=args.video_dir and absolute(args.video_dir), video_ext=args.video_ext,
                           short_side=args.short_side, quality=args.quality, upscale=args.upscale,
                           workers=args.processes, skip_bad=args.skip_bad, force=args.force,
                           progress=sys.stderr.isatty())
    for line in info.failed:
        print(f"skipped unreadable: {line}", file=sys.stderr)
    print(f"{info.out}: {info.converted} videos converted, {info.skipped} already done, "
          f"{len(info.failed)} skipped, {info.seconds:.1f}s; {len(info.classes)} classes")
    f = info.data_fields()
    opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in f.items() if k != "video_dir")
    print(f"train on it with: tdrl train {opts} [--decode-on device]")
    if args.pack:
        dest = absolute(args.pack)
        print(report(dest, pack_folder(info.out, dest, args.shard_size)))
    return 0
