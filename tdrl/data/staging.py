"""A remote dataset (``data.root=s3://...``, ``gs://...``, ``file:///...``) staged onto the node's local disk.

On a cluster every GPU node needs the data. With a remote ``data.root`` each node copies it, through
``pyarrow.fs`` (installed with Ray; S3, GCS and local paths), into a folder on its own disk, and every
worker reads the local copy. Two source forms, told apart by the file at the root:

* ``tdrl-shards.tsv`` (``tdrl data pack``, ``tdrl data prepare --pack``; :mod:`tdrl.data.shards`): tar
  shards of ~1 GB are downloaded ``threads`` at a time and unpacked to the layout of the folder that
  was packed; each shard is extracted into a temporary folder while its bytes are hashed and its
  files move into place only when size and SHA-256 match. The loose top-level files are copied as below.
* ``tdrl-manifest.tsv`` (:mod:`tdrl.data.manifest`): one GET per file, ``threads`` at a time, each
  streamed into ``<name>.tdrl-part`` while hashed and renamed into place when it matches. Fine for
  small sets; for millions of files pack them.

Either way:

* checked before anything is read: a finished copy carries ``.tdrl-staged`` (JSON: the SHA-256 of
  the manifest it was made from, and the size and modification time of the remote manifest). A
  call first compares those with one metadata request (a HEAD on S3); when they agree the copy is
  used without reading any manifest. Otherwise the manifest is read, and an unchanged one costs
  that read only;
* once per node: the copy runs under an exclusive ``fcntl`` lock on ``<stage folder>.lock``, so the
  other processes of the node wait for it and then find the copy finished;
* by content: the stage keeps its own record of what its files were verified against (the local
  ``tdrl-manifest.tsv`` / ``tdrl-shards.tsv``, written before any copy starts, and one member list
  per unpacked shard under ``.tdrl-state/``). When the source is prepared again, a file is kept
  only if its listed SHA-256 is unchanged (a file in place with no record is hashed here), so a
  file whose content changed is fetched again whatever its size; a shard is kept only if its
  SHA-256 is unchanged; files and shards no longer listed are removed;
* resumable: a killed copy (worker, spot node) leaves finished files and unpacked shards in place;
  the next call deletes the partial ones and fetches the rest, file by file or shard by shard.

Where: ``$TDRL_STAGE_DIR`` if set, else ``<temp dir>/tdrl-stage`` (``tempfile.gettempdir()``:
``$TMPDIR`` or ``/tmp``), one folder per source URI (``<last name>-<12 hex of the URI's SHA-256>``).
The setting describes the node (where its fast local disk is mounted), not the experiment, so it is
an environment variable, set per node, and not a configuration field.

The driver of a run needs only the annotation and label files (to check them before Ray starts),
so :func:`localize` with ``annotations_only`` stages just those, verified the same way, into a
sibling folder ``<stage folder>.annotations`` (of a sharded source: its loose top-level files).
Training stages every node before its workers form their process group (:mod:`tdrl.train.node_staging`);
``tdrl data stage URI`` does it by hand, with a progress bar.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

from tdrl.config.base import ConfigError, InputError, replace
from tdrl.config.data import DataConfig
from tdrl.config.paths import is_uri
from tdrl.data.annotations import V1_DEFAULTS, V2_DEFAULTS
from tdrl.data.manifest import CHUNK, MANIFEST, Entry, ManifestError, file_sha256, format_manifest, parse_manifest
from tdrl.data.shards import SHARDS, Shard, ShardError, ShardSet, parse_shards, unpack_shard

STAGE_ENV = "TDRL_STAGE_DIR"
COMPLETE = ".tdrl-staged"
PART = ".tdrl-part"
STATE = ".tdrl-state"  # per-shard member lists (shards/<sha256>.txt) and extraction folders (tmp/)
_PATH_FIELDS = ("video_dir", "train_annotations", "val_annotations", "labels")
LINE_EVERY_S = 30.0  # progress lines in logs (no terminal): one per this many seconds

Progress = Callable[[str, int], None]  # (relative path of a file or shard, bytes of it fetched so far)
Show = Literal["auto", "bar", "lines", "off"]


class StagingError(InputError, RuntimeError):
    """The source cannot be staged (no manifest, unreadable, a file or shard that does not match)."""


class _Cancelled(Exception):
    """Another file or shard failed: the ones still downloading stop."""


@dataclass(frozen=True)
class Staged:
    """The result of :func:`stage`: the local folder and what this call did."""

    path: Path
    files: int  # files of the dataset
    bytes: int  # bytes to download for all of it (shards + loose files, or the files)
    copied_files: int  # placed by this call (0: the copy was there already)
    copied_bytes: int  # downloaded by this call
    seconds: float
    shards: int = 0  # 0: a per-file source
    copied_shards: int = 0


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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + PART)
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- progress ------------------------------------------------------------------------------------

class _Meter:
    """Bytes fetched so far: a tqdm bar with MB/s on a terminal, else a line every ``LINE_EVERY_S``."""

    def __init__(self, label: str, total: int, items: int, unit: str, show: Show) -> None:
        if show == "auto":
            show = "bar" if sys.stderr.isatty() else "lines"
        self.label, self.total, self.items, self.unit, self.show = label, total, items, unit, show
        self.done = self.items_done = 0
        self.t0 = self.last = time.perf_counter()
        self.lock = threading.Lock()
        self.bar = None
        if show == "bar" and total:
            from tqdm import tqdm  # only when a bar is shown

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, smoothing=0.1)

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            if self.bar is not None:
                self.bar.update(n)
            elif self.show == "lines" and time.perf_counter() - self.last >= LINE_EVERY_S:
                self.last = time.perf_counter()
                rate = self.done / max(1e-9, self.last - self.t0)
                eta = (self.total - self.done) / rate if rate else float("inf")
                sys.__stdout__.write(f"[tdrl] staging {self.label}: {self.done / 1e9:.2f} of {self.total / 1e9:.2f} GB "
                                     f"({100 * self.done / max(1, self.total):.0f}%) at {rate / 1e6:.0f} MB/s, "
                                     f"{self.items_done} of {self.items} {self.unit}, ETA {eta:.0f}s\n")
                sys.__stdout__.flush()

    def item_done(self) -> None:
        with self.lock:
            self.items_done += 1
            if self.bar is not None:
                self.bar.set_postfix_str(f"{self.items_done}/{self.items} {self.unit}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_all(tasks: Sequence[Callable[[threading.Event], None]], threads: int) -> None:
    """Run ``tasks`` on ``threads`` threads; on the first failure the others are told to stop (the
    event) and the failure is raised once the running ones have returned."""
    stop = threading.Event()
    if threads <= 1 or len(tasks) <= 1:
        for t in tasks:
            t(stop)
        return
    with ThreadPoolExecutor(min(threads, len(tasks))) as pool:
        futures = [pool.submit(t, stop) for t in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None
                  and not isinstance(f.exception(), _Cancelled)]
        if failed:
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise failed[0].exception()


# --- the marker: is the copy current? -------------------------------------------------------------

def _read_marker(local: Path) -> dict[str, Any] | None:
    try:
        text = (local / COMPLETE).read_text()
    except OSError:
        return None
    try:
        marker = json.loads(text)
    except ValueError:  # the plain SHA-256 an earlier tdrl wrote: still compared by its stamp
        return {"stamp": text.strip()}
    return marker if isinstance(marker, dict) else None


def _signature(fs, remote: str) -> dict[str, list[int] | None] | None:
    """Size and modification time of both remote manifests (None: absent), from one metadata request
    each; None when a time is unknown or the request failed (then the manifest is read)."""
    try:
        infos = fs.get_file_info([f"{remote}/{SHARDS}", f"{remote}/{MANIFEST}"])
    except OSError:
        return None
    import pyarrow.fs  # remote roots only

    sig: dict[str, list[int] | None] = {}
    for name, info in zip((SHARDS, MANIFEST), infos):
        if info.type == pyarrow.fs.FileType.NotFound:
            sig[name] = None
        elif info.mtime_ns is None or info.size is None:
            return None
        else:
            sig[name] = [int(info.size), int(info.mtime_ns)]
    return sig


def _current(local: Path, fs, remote: str, only: Sequence[str] | None) -> dict[str, Any] | None:
    """The marker, if it says the copy is of the remote manifests as they are now (no manifest read)."""
    marker = _read_marker(local)
    if not marker or marker.get("remote") is None or marker.get("only") != only:
        return None
    sig = _signature(fs, remote)
    return marker if sig is not None and sig == marker["remote"] else None


def _reused(local: Path, marker: dict[str, Any], t0: float) -> Staged:
    return Staged(local, marker.get("files", 0), marker.get("bytes", 0), 0, 0, time.perf_counter() - t0,
                  marker.get("shards", 0), 0)


# --- per-file copies ------------------------------------------------------------------------------

def _copy_one(fs, remote: str, uri: str, entry: Entry, local: Path, on_bytes: Callable[[int], None],
              stop: threading.Event) -> None:
    """Stream ``remote/entry.path`` into ``local/<path>.tdrl-part`` while hashing; rename when it matches."""
    target = local / entry.path
    part = target.with_name(target.name + PART)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, done = hashlib.sha256(), 0
    try:
        with fs.open_input_stream(f"{remote}/{entry.path}") as src, open(part, "wb") as dst:
            while chunk := src.read(CHUNK):
                if stop.is_set():
                    raise _Cancelled
                dst.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                on_bytes(done)
    except OSError as exc:
        raise StagingError(f"{uri}/{entry.path}: cannot copy: {exc}") from exc
    if done != entry.size or digest.hexdigest() != entry.sha256:
        part.unlink(missing_ok=True)
        raise StagingError(f"{uri}/{entry.path}: {done} bytes, sha256 {digest.hexdigest()[:12]}... but the "
                           f"manifest says {entry.size} bytes, sha256 {entry.sha256[:12]}...; the source changed "
                           f"after its manifest was written: write it again (tdrl data manifest, or tdrl data "
                           f"pack for a packed folder)")
    os.replace(part, target)


def _verified(local: Path, e: Entry, record: dict[str, Entry]) -> bool:
    """Whether ``local/e.path`` holds ``e``'s content: it was placed for the same entry (the record),
    or, with no record of it, its bytes hash to ``e.sha256``."""
    try:
        st = (local / e.path).lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != e.size:
        return False
    before = record.get(e.path)
    return before == e if before is not None else file_sha256(local / e.path) == e.sha256


def _local_entries(path: Path, parse: Callable[[str], list[Entry]]) -> dict[str, Entry]:
    """The entries of a local record, or none if it is missing or unreadable (then files are hashed)."""
    try:
        return {e.path: e for e in parse(path.read_text(encoding="utf-8"))}
    except (OSError, UnicodeDecodeError, ManifestError, ShardError):
        return {}


def _keepers(local: Path, entries: Sequence[Entry], record: dict[str, Entry], threads: int) -> set[str]:
    with ThreadPoolExecutor(max(1, threads)) as pool:  # hashing (rare) releases the GIL
        return {e.path for e, ok in zip(entries, pool.map(lambda e: _verified(local, e, record), entries)) if ok}


def _fetch_all(items: Sequence[Entry | Shard], fetch: Callable[[Any, Callable[[int], None], threading.Event], None],
               threads: int, progress: Progress | None, meter: _Meter, count: bool = True) -> None:
    """``fetch(item, on_bytes, stop)`` for every file or shard, ``threads`` at a time, feeding the meter
    and ``progress`` with the bytes each has fetched so far."""
    def task(item: Entry | Shard) -> Callable[[threading.Event], None]:
        def run(stop: threading.Event) -> None:
            last = [0]

            def on_bytes(done: int) -> None:
                meter.add(done - last[0])
                last[0] = done
                if progress is not None:
                    progress(item.path, done)

            fetch(item, on_bytes, stop)
            if count:
                meter.item_done()
        return run

    _run_all([task(i) for i in items], threads)


def _stage_files(fs, remote: str, uri: str, local: Path, entries: list[Entry], record_text: bytes,
                 threads: int, progress: Progress | None, show: Show) -> tuple[int, int]:
    """Bring ``local`` to ``entries``; returns (files, bytes) copied."""
    record = _local_entries(local / MANIFEST, parse_manifest)
    if (local / SHARDS).exists():  # it was staged from shards before: their records no longer apply
        shutil.rmtree(local / STATE, ignore_errors=True)
        (local / SHARDS).unlink()
        record = {}
    keep = _keepers(local, entries, record, threads)
    # Everything that is not a verified, listed file goes before the new record is written, so a file
    # under its final name always matches the local record.
    for dirpath, _, filenames in os.walk(local):
        for n in filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(local).as_posix()
            if rel in (COMPLETE, MANIFEST):
                continue
            if rel not in keep:  # partial copies, files no longer listed, files whose entry changed
                p.unlink()
    _write_atomic(local / MANIFEST, record_text)
    todo = [e for e in entries if e.path not in keep]
    meter = _Meter(uri, sum(e.size for e in todo), len(todo), "files", show if todo else "off")
    try:
        _fetch_all(todo, lambda e, on_bytes, stop: _copy_one(fs, remote, uri, e, local, on_bytes, stop), threads,
                   progress, meter)
    finally:
        meter.close()
    return len(todo), sum(e.size for e in todo)


# --- shards ---------------------------------------------------------------------------------------

def _fetch_shard(fs, remote: str, uri: str, shard: Shard, local: Path, on_bytes: Callable[[int], None],
                 stop: threading.Event) -> None:
    """Download and unpack ``shard`` into ``.tdrl-state/tmp/<sha256>``, verify it, move its files into
    place, then record its member list (the record is what says the shard is staged)."""
    tmp = local / STATE / "tmp" / shard.sha256
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    where = f"{uri}/{shard.path}"

    def read(done: int) -> None:
        if stop.is_set():
            raise _Cancelled
        on_bytes(done)

    try:
        with fs.open_input_stream(f"{remote}/{shard.path}") as src:
            members = unpack_shard(src, tmp, shard, where, read)
    except ShardError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StagingError(str(exc)) from exc
    except FileNotFoundError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StagingError(f"{where}: not found, but {SHARDS} lists it; upload the whole packed folder "
                           f"({shard.path.split('/')[0]}/ and {SHARDS} together)") from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StagingError(f"{where}: cannot download: {exc}") from exc
    made: set[Path] = set()
    for m in members:
        target = local / m
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        os.replace(tmp / m, target)
    _write_atomic(local / STATE / "shards" / f"{shard.sha256}.txt", "".join(m + "\n" for m in members).encode())
    shutil.rmtree(tmp, ignore_errors=True)


def _stage_shards(fs, remote: str, uri: str, local: Path, shard_set: ShardSet, record_text: bytes,
                  threads: int, progress: Progress | None, show: Show) -> tuple[int, int, int]:
    """Bring ``local`` to ``shard_set``; returns (files, bytes, shards) fetched."""
    if (local / MANIFEST).exists():  # staged file by file before: start again from an empty folder
        for p in local.iterdir():
            if p.name != COMPLETE:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    records = local / STATE / "shards"
    records.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(local / STATE / "tmp", ignore_errors=True)
    wanted = {s.sha256 for s in shard_set.shards}
    for rec in records.glob("*.txt"):  # shards no longer listed: their files go, then their record
        if rec.stem not in wanted:
            for m in rec.read_text(encoding="utf-8").splitlines():
                (local / m).unlink(missing_ok=True)
            rec.unlink()
    done = {rec.stem for rec in records.glob("*.txt")}
    record = _local_entries(local / SHARDS, lambda text: list(parse_shards(text).loose))
    keep = _keepers(local, shard_set.loose, record, threads)
    listed = {e.path for e in shard_set.loose}
    for rel in set(record) | listed:
        if rel not in keep:
            (local / rel).unlink(missing_ok=True)
    _write_atomic(local / SHARDS, record_text)
    todo_files = [e for e in shard_set.loose if e.path not in keep]
    todo_shards = [s for s in shard_set.shards if s.sha256 not in done]
    total = sum(s.size for s in todo_shards) + sum(e.size for e in todo_files)
    meter = _Meter(uri, total, len(todo_shards), "shards", show if total else "off")

    try:
        _fetch_all(todo_shards, lambda sh, on_bytes, stop: _fetch_shard(fs, remote, uri, sh, local, on_bytes, stop),
                   threads, progress, meter)
        _fetch_all(todo_files, lambda e, on_bytes, stop: _copy_one(fs, remote, uri, e, local, on_bytes, stop),
                   threads, progress, meter, count=False)
    finally:
        meter.close()
    return sum(s.files for s in todo_shards) + len(todo_files), total, len(todo_shards)


# --- staging --------------------------------------------------------------------------------------

def _read_source(fs, remote: str, uri: str, sig: dict[str, Any] | None) -> tuple[str, bytes]:
    """(kind, text) of the source's manifest: ``tdrl-shards.tsv`` when there is one, else ``tdrl-manifest.tsv``."""
    names = [SHARDS, MANIFEST] if sig is None else [n for n in (SHARDS, MANIFEST) if sig[n] is not None]
    for name in names:
        try:
            with fs.open_input_stream(f"{remote}/{name}") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StagingError(f"{uri}/{name}: cannot read: {exc}") from exc
        if not text.strip():
            raise StagingError(f"{uri}/{name}: empty; write it again (tdrl data pack / tdrl data manifest)")
        return name, text
    raise StagingError(f"{uri}: neither {SHARDS} nor {MANIFEST} found ({uri}/{MANIFEST}: not found); upload "
                       f"a folder packed by tdrl data pack, or write the per-file list with tdrl data manifest "
                       f"DIR before uploading")


def stage(uri: str, base: str | Path | None = None, *, only: Sequence[str] | None = None, threads: int = 8,
          progress: Progress | None = None, show: Show = "auto") -> Staged:
    """Copy the dataset at ``uri`` onto this node (see the module docstring) and return where it is.

    ``only``: stage just these relative paths (the annotation files a driver checks) into the sibling
    folder ``<folder>.annotations``. ``threads`` files or shards are fetched at a time. ``progress`` is
    called with (relative path, bytes of it so far) as data arrives (a test uses it to interrupt a
    copy). ``show``: the progress bar ("bar", with MB/s), lines every 30 s ("lines"), "off", or
    "auto" (a bar on a terminal, else lines)."""
    t0 = time.perf_counter()
    fs, remote = _open(uri)
    remote, uri = remote.rstrip("/"), uri.rstrip("/")
    local = local_folder(uri, base)
    if only is not None:
        local = local.with_name(local.name + ".annotations")
        only = list(dict.fromkeys(only))
    marker = _current(local, fs, remote, only)
    if marker is not None:  # the common case on every worker after the first: no lock, no manifest
        return _reused(local, marker, t0)
    with _locked(local.with_name(local.name + ".lock")):
        marker = _current(local, fs, remote, only)
        if marker is not None:  # another process of this node finished it while we waited
            return _reused(local, marker, t0)
        sig = _signature(fs, remote)
        kind, text = _read_source(fs, remote, uri, sig)
        stamp = hashlib.sha256(text + repr(only).encode()).hexdigest()
        where = f"{uri}/{kind}"
        shard_set = parse_shards(text.decode("utf-8"), where) if kind == SHARDS else None
        entries = list(shard_set.loose) if shard_set else parse_manifest(text.decode("utf-8"), where)
        if only is not None:
            listed = {e.path: e for e in entries}
            missing = [p for p in only if p not in listed]
            if missing:
                inside = (f"; a packed folder keeps only its top-level files outside the shards: put the "
                          f"annotation files at the top of the folder you pack") if shard_set else ""
                raise StagingError(f"{uri}: {', '.join(missing)} not in its {kind}; check the annotation "
                                   f"paths (relative to data.root){inside}")
            entries, shard_set = [listed[p] for p in only], None
        files = shard_set.files if shard_set else len(entries)
        total = shard_set.bytes if shard_set else sum(e.size for e in entries)
        new_marker = {"stamp": stamp, "remote": sig, "only": only, "kind": kind, "files": files, "bytes": total,
                      "shards": len(shard_set.shards) if shard_set else 0}
        old = _read_marker(local)
        if old is not None and old.get("stamp") == stamp:  # same manifest, re-uploaded or touched
            _write_atomic(local / COMPLETE, json.dumps(new_marker).encode())
            return _reused(local, new_marker, t0)
        local.mkdir(parents=True, exist_ok=True)
        (local / COMPLETE).unlink(missing_ok=True)
        try:
            if shard_set is not None:
                copied_files, copied_bytes, copied_shards = _stage_shards(fs, remote, uri, local, shard_set, text,
                                                                          threads, progress, show)
            else:
                record = text if only is None else format_manifest(entries).encode()
                copied_files, copied_bytes = _stage_files(fs, remote, uri, local, entries, record, threads,
                                                          progress, show)
                copied_shards = 0
        except _Cancelled:  # only raised past _run_all if the cancelling failure was lost; never silently
            raise StagingError(f"{uri}: staging stopped") from None
        _write_atomic(local / COMPLETE, json.dumps(new_marker).encode())
    return Staged(local, files, total, copied_files, copied_bytes, time.perf_counter() - t0,
                  new_marker["shards"], copied_shards)


def summary(uri: str, staged: Staged) -> str:
    """One line about what :func:`stage` did."""
    rate = staged.copied_bytes / max(staged.seconds, 1e-9) / 1e6
    shards = f"{staged.copied_shards} of {staged.shards} shards, " if staged.shards else ""
    return (f"staged {uri} to {staged.path}: {shards}{staged.copied_files} of {staged.files} files, "
            f"{staged.copied_bytes / 2**20:.1f} MiB in {staged.seconds:.1f}s ({rate:.0f} MB/s, "
            f"{staged.copied_files / max(staged.seconds, 1e-9):.0f} files/s)")


# --- a DataConfig with a remote root --------------------------------------------------------------

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
        sys.__stdout__.write(f"[tdrl] {summary(cfg.root, staged)}\n")
        sys.__stdout__.flush()
    changes = {"root": str(staged.path)}
    for f, r in rel.items():
        if r is not None and is_uri(getattr(cfg, f)):
            changes[f] = str(staged.path / r)
    return replace(cfg, **changes)


# --- the `tdrl data stage` command ----------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help=f"remote dataset folder (s3://, gs://, file:///) with a {SHARDS} or {MANIFEST}")
    parser.add_argument("--stage-dir", default=None,
                        help=f"local folder for staged sets (default ${STAGE_ENV}, else <tmp>/tdrl-stage)")
    parser.add_argument("--threads", type=int, default=8, help="shards or files fetched at a time (default 8)")


def run(args: argparse.Namespace) -> int:
    if not is_uri(args.uri):
        raise InputError(f"{args.uri}: not a URI; give s3://..., gs://... or file:///...")
    if args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1")
    staged = stage(args.uri, args.stage_dir, threads=args.threads)
    print(summary(args.uri, staged) if staged.copied_files else
          f"{args.uri} is staged at {staged.path} ({staged.files} files); nothing to copy")
    return 0
