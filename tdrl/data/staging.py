"""A remote dataset (``data.root=s3://...``, ``gs://...``, ``file:///...``) staged onto the node's local disk.

On a cluster every GPU node needs the data. With a remote ``data.root`` the first worker of a node
that opens the dataset copies it, through ``pyarrow.fs`` (installed with Ray; S3, GCS and local
paths), into a folder on the node's own disk, and every worker then reads the local copy:

* once per node: the copy runs under an exclusive ``fcntl`` lock on ``<stage folder>.lock``, so the
  other workers of the node wait for it and then find the copy finished;
* verified: the source must hold a manifest (:mod:`tdrl.data.manifest`; ``tdrl data prepare`` writes
  it, ``tdrl data manifest DIR`` writes one for any folder); each file is streamed into
  ``<name>.tdrl-part`` while it is hashed, and renamed into place only when its size and SHA-256
  match, so a file under its final name is always a verified one;
* resumable: after an interrupted copy (a killed worker, a lost spot node) the next call deletes
  the ``.tdrl-part`` leftovers, keeps the files already in place whose size matches, and copies
  the rest;
* reused: a finished copy carries ``.tdrl-staged`` with the SHA-256 of the manifest it was made
  from; a later run whose source manifest is the same uses the copy after one small read of the
  remote manifest. A changed source (prepared again) is brought up to date file by file; files no
  longer listed are removed.

Where: ``$TDRL_STAGE_DIR`` if set, else ``<temp dir>/tdrl-stage`` (``tempfile.gettempdir()``:
``$TMPDIR`` or ``/tmp``), one folder per source URI (``<last name>-<12 hex of the URI's SHA-256>``).
The setting describes the node (where its fast local disk is mounted), not the experiment, so it is
an environment variable, set per node, and not a configuration field.

The driver of a run needs only the annotation and label files (to check them before Ray starts),
so :func:`localize` with ``annotations_only`` stages just those, verified the same way, into a
sibling folder ``<stage folder>.annotations``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tdrl.config.base import ConfigError, InputError, replace
from tdrl.config.data import DataConfig
from tdrl.config.paths import is_uri
from tdrl.data.annotations import V1_DEFAULTS, V2_DEFAULTS
from tdrl.data.manifest import CHUNK, MANIFEST, Entry, parse_manifest

STAGE_ENV = "TDRL_STAGE_DIR"
COMPLETE = ".tdrl-staged"
PART = ".tdrl-part"
_PATH_FIELDS = ("video_dir", "train_annotations", "val_annotations", "labels")

Progress = Callable[[str, int], None]  # (relative path, bytes of it copied so far)


class StagingError(InputError, RuntimeError):
    """The source cannot be staged (no manifest, unreadable, a file that does not match)."""


@dataclass(frozen=True)
class Staged:
    """The result of :func:`stage`: the local folder and what this call did."""

    path: Path
    files: int  # files in the manifest
    bytes: int  # their total size
    copied_files: int  # copied by this call (0: the copy was there already)
    copied_bytes: int
    seconds: float


def stage_root() -> Path:
    """``$TDRL_STAGE_DIR``, else ``<temp dir>/tdrl-stage``."""
    return Path(os.environ.get(STAGE_ENV) or Path(tempfile.gettempdir()) / "tdrl-stage")


def local_folder(uri: str, base: str | Path | None = None) -> Path:
    """Where ``uri`` is staged under ``base`` (default :func:`stage_root`)."""
    uri = uri.rstrip("/")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in uri.rsplit("/", 1)[-1]) or "data"
    return Path(base or stage_root()) / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` held by this process (released by the kernel if it dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _open(uri: str):
    import pyarrow.fs  # remote roots only

    try:
        return pyarrow.fs.FileSystem.from_uri(uri.rstrip("/"))
    except Exception as exc:  # ArrowInvalid, OSError from the cloud client: the source cannot be opened
        raise StagingError(f"data.root={uri}: cannot open: {exc}") from exc


def _read_remote(fs, path: str, what: str) -> bytes:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError as exc:
        raise StagingError(f"{what}: not found") from exc
    except OSError as exc:
        raise StagingError(f"{what}: cannot read: {exc}") from exc


def _copy_one(fs, remote: str, entry: Entry, local: Path, progress: Progress | None) -> None:
    """Stream ``remote/entry.path`` into ``local/<path>.tdrl-part`` while hashing; rename when it matches."""
    target = local / entry.path
    part = target.with_name(target.name + PART)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, done = hashlib.sha256(), 0
    try:
        with fs.open_input_stream(f"{remote}/{entry.path}") as src, open(part, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(entry.path, done)
    except OSError as exc:
        raise StagingError(f"{remote}/{entry.path}: cannot copy: {exc}") from exc
    if done != entry.size or digest.hexdigest() != entry.sha256:
        part.unlink(missing_ok=True)
        raise StagingError(f"{remote}/{entry.path}: {done} bytes, sha256 {digest.hexdigest()[:12]}... but the "
                           f"manifest says {entry.size} bytes, sha256 {entry.sha256[:12]}...; the source changed "
                           f"after its manifest was written: write it again (tdrl data manifest)")
    os.replace(part, target)


def _clean(local: Path, keep: set[str]) -> None:
    """Remove ``.tdrl-part`` leftovers and files the manifest no longer lists (the marker is kept)."""
    for dirpath, _, filenames in os.walk(local):
        for n in filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(local).as_posix()
            if n.endswith(PART) or (rel not in keep and rel not in (COMPLETE, MANIFEST)):
                p.unlink()


def stage(uri: str, base: str | Path | None = None, *, only: Sequence[str] | None = None, threads: int = 8,
          progress: Progress | None = None) -> Staged:
    """Copy the dataset at ``uri`` onto this node (see the module docstring) and return where it is.

    ``only``: stage just these relative paths (the annotation files a driver checks) into the sibling
    folder ``<folder>.annotations``. ``threads`` files are copied at a time. ``progress`` is called
    with (relative path, bytes so far) after every chunk (a test uses it to interrupt a copy)."""
    t0 = time.perf_counter()
    fs, remote = _open(uri)
    remote = remote.rstrip("/")
    local = local_folder(uri, base)
    if only is not None:
        local = local.with_name(local.name + ".annotations")
    with _locked(local.with_name(local.name + ".lock")):
        text = _read_remote(fs, f"{remote}/{MANIFEST}", f"{uri.rstrip('/')}/{MANIFEST}")
        if not text.strip():
            raise StagingError(f"{uri}/{MANIFEST}: empty")
        entries = parse_manifest(text.decode("utf-8"), f"{uri.rstrip('/')}/{MANIFEST}")
        if only is not None:
            listed = {e.path: e for e in entries}
            missing = [p for p in only if p not in listed]
            if missing:
                raise StagingError(f"{uri}: {', '.join(missing)} not in its {MANIFEST}; check the annotation "
                                   f"paths (relative to data.root)")
            entries = [listed[p] for p in dict.fromkeys(only)]
        stamp = hashlib.sha256(text + repr(only).encode()).hexdigest()
        total = sum(e.size for e in entries)
        marker = local / COMPLETE
        if marker.is_file() and marker.read_text() == stamp:
            return Staged(local, len(entries), total, 0, 0, time.perf_counter() - t0)
        local.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)
        _clean(local, {e.path for e in entries})
        # A file under its final name was verified before its rename; a size that differs means the
        # source was prepared again since (same name, new content): copy it again.
        todo = [e for e in entries if not ((local / e.path).is_file() and (local / e.path).stat().st_size == e.size)]
        if threads <= 1 or len(todo) <= 1:
            for e in todo:
                _copy_one(fs, remote, e, local, progress)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda e: _copy_one(fs, remote, e, local, progress), todo))
        (local / MANIFEST).write_bytes(text)
        marker.write_text(stamp)
    return Staged(local, len(entries), total, len(todo), sum(e.size for e in todo), time.perf_counter() - t0)


def _under_root(cfg: DataConfig, name: str, value: str | None) -> str | None:
    """A path field as a path relative to the root (a URI under it made relative), or None if it
    is a local absolute path that staging leaves alone."""
    if value is None:
        return None
    root = cfg.root.rstrip("/") + "/"
    if is_uri(value):
        if not value.startswith(root):
            raise ConfigError(f"data.{name}={value} is a URI outside data.root={cfg.root}; with a remote root, "
                              f"give it relative to the root (or as a URI under it)")
        return value[len(root):]
    return None if os.path.isabs(value) else value


def localize(cfg: DataConfig, *, annotations_only: bool = False, base: str | Path | None = None) -> DataConfig:
    """``cfg`` itself for a local root; for a remote root, stage it (:func:`stage`) and return ``cfg``
    with the root and the path fields under it pointing at the local copy. ``annotations_only``
    stages the annotation and label files alone (the driver's checks)."""
    if not is_uri(cfg.root):
        return cfg
    rel = {f: _under_root(cfg, f, getattr(cfg, f)) for f in _PATH_FIELDS}
    only = None
    if annotations_only:
        defaults = {"sthv1": V1_DEFAULTS, "sthv2": V2_DEFAULTS}.get(cfg.dataset, {})
        wanted = {"train_annotations": defaults.get("train"), "val_annotations": defaults.get("val"),
                  "labels": defaults.get("labels")}
        only = []
        for f, default in wanted.items():
            value = rel[f] if getattr(cfg, f) is not None else default
            if value is not None and not os.path.isabs(value):
                only.append(Path(value).as_posix())
    staged = stage(cfg.root, base, only=only)
    if staged.copied_files:  # one line per node and source: the copy that the other workers reuse
        sys.__stdout__.write(f"[tdrl] staged {cfg.root} to {staged.path}: {staged.copied_files} of {staged.files} "
                             f"files, {staged.copied_bytes / 2**20:.1f} MiB in {staged.seconds:.1f}s\n")
        sys.__stdout__.flush()
    changes = {"root": str(staged.path)}
    for f, r in rel.items():
        if r is not None and is_uri(getattr(cfg, f)):
            changes[f] = str(staged.path / r)
    return replace(cfg, **changes)
