"""Parsers for the official annotation files of Something-Something V1/V2, Kinetics-400 and a plain list.

Every parser returns an :class:`Annotations` (class names in index order + one :class:`VideoRecord`
per item) and raises :class:`AnnotationError` naming the file and line of anything malformed.

Label-index conventions (the index a class gets is part of every checkpoint, so it is fixed here):

* V1: the order of the official labels CSV (one class per line). It is *not* alphabetical.
* V2: the index strings of the official labels JSON (``template -> "index"``); they happen to be
  alphabetical, but the JSON is what counts.
* Kinetics-400: class names sorted alphabetically (Python string order) over the annotation CSV,
  unless a label-map file (one class per line) is given, whose order then wins. Sorting makes the
  index independent of the CSV's row order; the public 400-line label map is the same order.
* list: the integer in the file; class names come from an optional one-per-line label map,
  otherwise ``"0" ... str(max_label)``.

A root that is a URI (``s3://``, ``gs://``, ``file://``) is read in memory through pyarrow, writing
nothing: the planner counts a remote dataset's clips this way. Its records' paths are not files to
open; training stages the root first (tdrl.data.staging).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tdrl.config.base import InputError, literal_values
from tdrl.config.data import DataConfig
from tdrl.config.paths import is_uri, join

V2_DEFAULTS = {"labels": "something-something-v2-labels.json",
               "train": "something-something-v2-train.json",
               "val": "something-something-v2-validation.json"}
V1_DEFAULTS = {"labels": "something-something-v1-labels.csv",
               "train": "something-something-v1-train.csv",
               "val": "something-something-v1-validation.csv"}


MAX_UNMAPPED_LABEL = 100_000  # list files without a label map: labels must stay below this


class AnnotationError(InputError, ValueError):
    """An annotation or label file is malformed; the message names file, line and the fix."""


@dataclass(frozen=True)
class VideoRecord:
    """One annotated item: a video file or a frame folder, its class index, where it was declared."""

    path: Path
    label: int
    source: str  # "file:line", so load errors can point back at the annotation
    num_frames: int | None = None  # known only for list files with a frame count


@dataclass(frozen=True)
class Annotations:
    classes: tuple[str, ...]
    records: tuple[VideoRecord, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _read_text(path: Path | str) -> list[str]:
    if is_uri(str(path)):
        return _read_uri(str(path)).splitlines()
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation/label file not found; check the path "
                              f"(relative paths are resolved against the dataset root)")
    return path.read_text(encoding="utf-8").splitlines()


def _read_uri(uri: str) -> str:
    """A remote annotation or label file's text, read into memory (pyarrow's filesystem for the scheme)."""
    import pyarrow.fs  # remote roots only

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        with fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise AnnotationError(f"{uri}: annotation/label file not found; check the path (relative paths are "
                              f"resolved against the dataset root)") from None
    except Exception as exc:  # ArrowInvalid (a bad URI), OSError from the cloud client, UnicodeDecodeError
        raise AnnotationError(f"{uri}: cannot read ({type(exc).__name__}: {exc})") from None


def read_class_list(path: Path) -> tuple[str, ...]:
    """One class name per line, index = line order (V1 labels CSV, label-map files). Blank lines ignored."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(_read_text(path), 1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise AnnotationError(f"{path}:{lineno}: class {name!r} repeats line {seen[name]}; "
                                  f"each class must appear once")
        seen[name] = lineno
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: no class names found; expected one class name per line")
    return tuple(names)


def _lookup(classes: dict[str, int], name: str, where: str, labels_path: Path | str) -> int:
    try:
        return classes[name]
    except KeyError:
        raise AnnotationError(f"{where}: unknown label {name!r}: not in the label file {labels_path}; "
                              f"check the annotation and label files belong to the same dataset") from None


def parse_sthv1(annotations: Path, labels: Path, video_dir: Path) -> Annotations:
    """V1: ``id;Class name`` lines; items are JPEG frame folders ``video_dir/<id>/00001.jpg ...``."""
    classes = read_class_list(labels)
    index = {c: i for i, c in enumerate(classes)}
    records = []
    for lineno, line in enumerate(_read_text(annotations), 1):
        if not line.strip():
            continue
        where = f"{annotations}:{lineno}"
        vid, sep, name = line.strip().partition(";")
        if not sep or not vid.strip() or not name.strip():
            raise AnnotationError(f"{where}: malformed line {line!r}; expected 'id;Class name'")
        records.append(VideoRecord(Path(video_dir) / vid.strip(), _lookup(index, name.strip(), where, labels), where))
    return Annotations(classes, tuple(records))


def read_sthv2_labels(path: Path) -> tuple[str, ...]:
    """V2 labels JSON ``{"template": "index"}`` -> class names in index order (indices must be 0..n-1)."""
    lines = _read_text(path)
    try:
        data = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); expected the official "
                              f"V2 labels file mapping template -> index string") from None
    if not isinstance(data, dict) or not data:
        raise AnnotationError(f"{path}: expected a JSON object mapping class template -> index string")
    by_index: dict[int, str] = {}
    for name, idx in data.items():
        try:
            i = int(idx)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: class {name!r} has index {idx!r}; indices must be integer strings") from None
        if i in by_index:
            raise AnnotationError(f"{path}: index {i} is used by {by_index[i]!r} and {name!r}")
        by_index[i] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f"{path}: indices must be 0..{len(by_index) - 1} without gaps")
    return tuple(by_index[i] for i in range(len(by_index)))


def v2_class_name(template: str) -> str:
    """The V2 class of an entry: its template with the placeholder brackets removed."""
    return template.replace("[", "").replace("]", "")


def parse_sthv2(annotations: Path, labels: Path, video_dir: Path, ext: str = ".webm") -> Annotations:
    """V2: JSON list of ``{"id", "label", "template", "placeholders"}``; items are ``video_dir/<id><ext>``."""
    classes = read_sthv2_labels(labels)
    index = {c: i for i, c in enumerate(classes)}
    text = "\n".join(_read_text(annotations))
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{annotations}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(entries, list):
        raise AnnotationError(f"{annotations}: expected a JSON list of entries with 'id' and 'template'")
    records = []
    for k, entry in enumerate(entries):
        where = f"{annotations}:entry {k}"
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise AnnotationError(f"{where}: malformed entry {str(entry)[:80]!r}; expected an object with "
                                  f"'id' and 'template' (the unlabelled test split cannot be trained on)")
        label = _lookup(index, v2_class_name(str(entry["template"])), where, labels)
        records.append(VideoRecord(Path(video_dir) / f"{entry['id']}{ext}", label, where))
    return Annotations(classes, tuple(records))


def kinetics_clip_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}.mp4"


def parse_kinetics(annotations: Path, video_dir: Path, labels: Path | None = None) -> Annotations:
    """Kinetics CSV ``label,youtube_id,time_start,time_end,split[,is_cc]`` (header optional).

    Items are ``video_dir/<label>/<ytid>_<start:06d>_<end:06d>.mp4``. Classes: the label map's order
    if given, else the sorted class names found in this CSV (see module docstring).
    """
    rows: list[tuple[str, str, int, int, str]] = []
    lines = _read_text(annotations)
    for lineno, fields in enumerate(csv.reader(lines), 1):
        if not fields or not "".join(fields).strip():
            continue
        where = f"{annotations}:{lineno}"
        if lineno == 1 and fields[0].strip() == "label":
            continue  # header
        if len(fields) not in (5, 6):
            raise AnnotationError(f"{where}: malformed line {lines[lineno - 1]!r}; expected "
                                  f"label,youtube_id,time_start,time_end,split[,is_cc]")
        try:
            start, end = int(float(fields[2])), int(float(fields[3]))
        except ValueError:
            raise AnnotationError(f"{where}: time_start/time_end {fields[2]!r},{fields[3]!r} are not numbers") from None
        rows.append((fields[0].strip(), fields[1].strip(), start, end, where))
    if labels is not None:
        classes = read_class_list(labels)
    else:
        classes = tuple(sorted({r[0] for r in rows}))
    index = {c: i for i, c in enumerate(classes)}
    records = tuple(
        VideoRecord(Path(video_dir) / name / kinetics_clip_name(yt, s, e),
                    _lookup(index, name, where, labels or annotations), where)
        for name, yt, s, e, where in rows)
    return Annotations(classes, records)


def parse_list(annotations: Path, video_dir: Path, labels: Path | None = None) -> Annotations:
    """Plain list: ``path label`` or ``path num_frames label`` per line, path relative to ``video_dir``."""
    classes = read_class_list(labels) if labels is not None else None
    records = []
    for lineno, line in enumerate(_read_text(annotations), 1):
        if not line.strip():
            continue
        where = f"{annotations}:{lineno}"
        # Split from the right so paths may contain spaces.
        parts = line.strip().rsplit(maxsplit=2)
        num_frames = None
        try:
            if len(parts) == 3 and parts[1].isdigit():
                path, num_frames, label = parts[0], int(parts[1]), int(parts[2])
            else:
                path, label_s = line.strip().rsplit(maxsplit=1)
                label = int(label_s)
        except ValueError:
            raise AnnotationError(f"{where}: malformed line {line!r}; expected 'path label' or "
                                  f"'path num_frames label' with integer label") from None
        if label < 0 or (classes is not None and label >= len(classes)):
            bound = f"0..{len(classes) - 1} (label file {labels})" if classes is not None else ">= 0"
            raise AnnotationError(f"{where}: unknown label {label}; labels must be {bound}")
        if classes is None and label >= MAX_UNMAPPED_LABEL:
            # Without a label file the classes are 0..max label: a stray huge number would make
            # millions of empty classes (or exhaust memory) instead of an error.
            raise AnnotationError(f"{where}: label {label} is too large for a list without a label file "
                                  f"(limit {MAX_UNMAPPED_LABEL - 1}); check the columns or give a label file "
                                  f"(data.labels, one class per line)")
        records.append(VideoRecord(Path(video_dir) / path, label, where, num_frames))
    if classes is None:
        top = max((r.label for r in records), default=-1)
        classes = tuple(str(i) for i in range(top + 1))
    return Annotations(classes, tuple(records))


def _resolve(root: Path | str, name: str | None, default: str | None, what: str, dataset: str) -> Path | str | None:
    if name is None:
        if default is None:
            return None
        name = default
    if is_uri(name) or Path(name).is_absolute():
        return name if is_uri(name) else Path(name)
    return join(str(root), name) if is_uri(str(root)) else Path(root) / name


def load_annotations(dataset: str, root: Path | str, annotations: Path | str | None, *,
                     split: str = "train", labels: Path | str | None = None, video_dir: str = "",
                     video_ext: str = ".webm") -> Annotations:
    """Parse ``annotations`` of ``dataset`` (sthv1, sthv2, kinetics400, list).

    Relative paths are resolved against ``root``; ``None`` means the official file name of ``split``
    for sthv1/sthv2 and is an error for the others.
    """
    root = str(root) if is_uri(str(root)) else Path(root)
    vdir = _resolve(root, video_dir, None, "video_dir", dataset) if video_dir else root
    defaults = {"sthv1": V1_DEFAULTS, "sthv2": V2_DEFAULTS}.get(dataset, {})
    ann = _resolve(root, None if annotations is None else str(annotations), defaults.get(split), "annotations", dataset)
    if ann is None:
        raise AnnotationError(f"dataset {dataset!r} has no default {split} annotation file; give one "
                              f"(--{split}-annotations / data.{split}_annotations)")
    lab = _resolve(root, None if labels is None else str(labels), defaults.get("labels"), "labels", dataset)
    if dataset == "sthv1":
        return parse_sthv1(ann, lab, vdir)  # type: ignore[arg-type]
    if dataset == "sthv2":
        return parse_sthv2(ann, lab, vdir, video_ext)  # type: ignore[arg-type]
    if dataset == "kinetics400":
        return parse_kinetics(ann, vdir, lab)
    if dataset == "list":
        return parse_list(ann, vdir, lab)
    raise AnnotationError(f"unknown dataset {dataset!r}; choose sthv1, sthv2, kinetics400 or list")


def read_split(cfg: DataConfig, split: str) -> Annotations:
    """Parse the annotation file of ``split`` ("train" or "val") named by ``cfg``, where its root is: a
    remote root's files are read into memory (training stages them first: tdrl.data.builders)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    ann = cfg.train_annotations if split == "train" else cfg.val_annotations
    return load_annotations(cfg.dataset, cfg.root, ann, split=split, labels=cfg.labels,
                            video_dir=cfg.video_dir, video_ext=cfg.video_ext)


def count_clips(cfg: DataConfig, split: str) -> int:
    """Clips in the annotation file of ``split``. A remote root is read in memory, not staged: nothing
    is written (the planner, ``--plan``)."""
    return len(read_split(cfg, split).records)


def class_counts(records: Sequence[VideoRecord], num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for r in records:
        counts[r.label] += 1
    return counts


def add_source_arguments(parser, *, root_help: str = "dataset directory") -> None:
    """The options that locate a dataset's files for :func:`load_annotations` (``tdrl data inspect``
    and ``tdrl data prepare``): ``--dataset``, ``--root``, ``--labels``, ``--video-dir``, ``--video-ext``.
    The commands make the paths typed absolute against the current folder."""
    parser.add_argument("--dataset", required=True, choices=literal_values(DataConfig, "dataset"),
                        help="annotation format")
    parser.add_argument("--root", required=True, help=root_help)
    parser.add_argument("--labels", default=None, help="label file (V1 CSV / V2 JSON / label map); default: the "
                                                       "official name under --root")
    parser.add_argument("--video-dir", default="", help="folder of the videos / frame folders (default: --root)")
    parser.add_argument("--video-ext", default=".webm", help="sthv2 video extension")
