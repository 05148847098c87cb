"""Tar shards: a dataset folder packed into ~1 GB tar files, the form that stages at dataset scale.

A prepared Something-Something V1 is ~11 million JPEG frames; copied one object per GET it takes
hours per node. ``tdrl data pack SRC DEST`` (or ``tdrl data prepare ... --pack DEST``) writes

* ``DEST/shards/00000.tar ...``: every file under a sub-folder of SRC, sorted by path, in plain
  (PAX) tar files of about ``shard_size`` bytes each, deterministic (mtime 0, owner 0, mode 0644),
  so packing unchanged content again gives byte-equal shards;
* ``DEST/<name>``: the files at the top level of SRC (split lists, labels, ``prepare.json``), copied
  as they are ("loose"), so a driver reads the annotations without fetching a shard;
* ``DEST/tdrl-shards.tsv``, written last: header ``# tdrl-shards v1``, then one line per shard,
  ``shard\\t<sha256>\\t<bytes>\\t<files>\\t<path>``, and per loose file, ``file\\t<sha256>\\t<bytes>\\t<path>``.

Staging (:mod:`tdrl.data.staging`) downloads shards in parallel and unpacks each to the folder layout
of SRC, verifying the shard's size and SHA-256 before any of its files is put in place.

Where a shard ends: once it holds ``shard_size`` bytes, at the next file whose path hash is an
"anchor" (about one file in ``k``, ``k`` chosen so anchors are ~``shard_size``/16 bytes apart), or
before a file that would take it past twice the size; shards hold 1-1.1 x ``shard_size`` (the last one
less). A boundary depends on the paths near it, not on the exact sizes of every file before it: a file
whose content changed at the same size changes its own shard only, and one whose size changed by D
bytes (or a file added or removed) moves the end of its shard with a probability of about
16 D / ``shard_size`` (~1.6% for a 1 MB video in 1 GB shards); only then do the next shards move too.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from tdrl.config.base import ConfigError, InputError
from tdrl.data.manifest import CHUNK, MANIFEST, Entry, is_temporary

SHARDS = "tdrl-shards.tsv"
HEADER = "# tdrl-shards v1"
SHARD_DIR = "shards"
DEFAULT_SHARD_SIZE = 10**9  # "about 1 GB": large enough that per-request costs vanish, small enough to retry
TAR_BUFSIZE = 1 << 20  # tarfile's stream buffer: reads and writes of 1 MiB, not 10 KiB


class ShardError(InputError, ValueError):
    """A shard manifest is malformed, or a shard does not match it; the message names the file."""


@dataclass(frozen=True)
class Shard:
    path: str  # relative to the packed folder, e.g. "shards/00000.tar"
    size: int  # bytes of the tar file
    sha256: str
    files: int  # regular files inside


@dataclass(frozen=True)
class ShardSet:
    """What ``tdrl-shards.tsv`` lists: the shards and the loose top-level files."""

    shards: tuple[Shard, ...]
    loose: tuple[Entry, ...]

    @property
    def files(self) -> int:
        return sum(s.files for s in self.shards) + len(self.loose)

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.shards) + sum(e.size for e in self.loose)


def safe_relative(path: str) -> bool:
    """A relative ``/``-separated path that stays inside its folder (no ``..``, no empty parts)."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts) \
        and "\\" not in path and "\0" not in path


# --- the shard manifest ------------------------------------------------------------------------------

def format_shards(shard_set: ShardSet) -> str:
    lines = [f"shard\t{s.sha256}\t{s.size}\t{s.files}\t{s.path}\n" for s in shard_set.shards]
    lines += [f"file\t{e.sha256}\t{e.size}\t{e.path}\n" for e in sorted(shard_set.loose, key=lambda e: e.path)]
    return HEADER + "\n" + "".join(lines)


_SHA = re.compile(r"[0-9a-f]{64}")


def parse_shards(text: str, source: str = SHARDS) -> ShardSet:
    """The shards and loose files of a shard manifest's text; errors name ``source`` and the line."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ShardError(f"{source}: not a tdrl shard manifest (the first line must be {HEADER!r}); pack the "
                         f"folder again with tdrl data pack")
    shards: list[Shard] = []
    loose: list[Entry] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        kind = parts[0]
        ok = (kind == "shard" and len(parts) == 5 and parts[3].isdigit()) or (kind == "file" and len(parts) == 4)
        ok = ok and bool(_SHA.fullmatch(parts[1])) and parts[2].isdigit() and safe_relative(parts[-1])
        if not ok:
            raise ShardError(f"{source}:{lineno}: malformed line {line!r}; expected 'shard\\t<sha256>\\t<bytes>\\t"
                             f"<files>\\t<path>' or 'file\\t<sha256>\\t<bytes>\\t<path>'; pack the folder again")
        if parts[-1] in seen:
            raise ShardError(f"{source}:{lineno}: {parts[-1]} is listed twice; pack the folder again")
        seen.add(parts[-1])
        if kind == "shard":
            shards.append(Shard(parts[4], int(parts[2]), parts[1], int(parts[3])))
        else:
            loose.append(Entry(parts[3], int(parts[2]), parts[1]))
    return ShardSet(tuple(shards), tuple(loose))


def parse_size(text: str) -> int:
    """``"1G"`` -> 10**9, ``"512Mi"`` -> 512 * 2**20, ``"4000"`` -> 4000 bytes (a ``B`` suffix is allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?[bB]?\s*", text)
    if not m:
        raise ConfigError(f"shard size {text!r}: expected a number of bytes with an optional unit, e.g. 1G, "
                          f"512M, 256Mi")
    unit = (m.group(2) or "").lower()
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
             "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}[unit]
    size = int(float(m.group(1)) * scale)
    if size < 1:
        raise ConfigError(f"shard size {text!r}: must be at least 1 byte")
    return size


# --- packing -----------------------------------------------------------------------------------------

def _anchor_every(sizes: list[int], shard_size: int) -> int:
    """A power of two ``k`` with ``k`` files ~ 1/16 of a shard: one file in ``k`` may end a full shard."""
    mean = max(1.0, sum(sizes) / max(1, len(sizes)))
    k = 1
    while k * 2 * mean * 16 <= shard_size:
        k *= 2
    return k


def tar_bytes(size: int) -> int:
    """Bytes a file of ``size`` takes in a tar: a 512-byte header and its data padded to 512 (a long
    path adds a PAX header; ignored). For frames of ~1-5 KB this is 10-70% more than the data."""
    return 512 + -(-size // 512) * 512


def plan_shards(files: list[tuple[str, int]], shard_size: int) -> list[list[str]]:
    """Group ``(path, size)`` (sorted by path) into shards of about ``shard_size`` bytes of tar
    (module docstring)."""
    files = [(p, tar_bytes(n)) for p, n in files]
    k = _anchor_every([s for _, s in files], shard_size)
    plan: list[list[str]] = []
    current: list[str] = []
    size = 0
    for path, n in files:
        anchor = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % k == 0
        if current and ((size >= shard_size and anchor) or size + n > 2 * shard_size):
            plan.append(current)
            current, size = [], 0
        current.append(path)
        size += n
    if current:
        plan.append(current)
    return plan


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it to ``dst``."""

    def __init__(self, dst: BinaryIO) -> None:
        self.dst, self.digest, self.size = dst, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.dst.write(b)
        self.digest.update(b)
        self.size += len(b)
        return len(b)


def _tarinfo(path: str, size: int) -> tarfile.TarInfo:
    """A member header that depends only on the path and size (no times, owners or modes of the host)."""
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


def write_shard(src: Path, paths: list[str], target: Path) -> Shard:
    """Pack ``src/<path>`` for ``paths`` into ``target`` (through ``target.part``); returns its entry."""
    part = target.with_name(target.name + ".part")
    with open(part, "wb") as raw:
        out = _HashingWriter(raw)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=TAR_BUFSIZE) as tar:
            for rel in paths:
                with open(src / rel, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    tar.addfile(_tarinfo(rel, size), f)
    os.replace(part, target)
    return Shard(f"{SHARD_DIR}/{target.name}", out.size, out.digest.hexdigest(), len(paths))


def _copy_hashed(src: Path, dst: Path) -> Entry:
    digest, size = hashlib.sha256(), 0
    part = dst.with_name(dst.name + ".part")
    with open(src, "rb") as f, open(part, "wb") as out:
        while chunk := f.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    os.replace(part, dst)
    return Entry(dst.name, size, digest.hexdigest())


def _listing(src: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The loose (top-level) file names and the ``(path, size)`` of every file below, sorted."""
    loose: list[str] = []
    packed: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not is_temporary(d))
        base = Path(dirpath).relative_to(src)
        for n in filenames:
            if is_temporary(n) or n in (MANIFEST, SHARDS):
                continue
            rel = (base / n).as_posix()
            if not safe_relative(rel) or "\t" in rel or "\n" in rel:
                raise ShardError(f"{src / rel}: this file name cannot be listed in {SHARDS} (a tab, newline or "
                                 f"backslash); rename it")
            if base == Path("."):
                loose.append(rel)
            else:
                packed.append((rel, os.lstat(src / rel).st_size))
    packed.sort()
    return sorted(loose), packed


def pack_folder(src: str | Path, dest: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                progress: Callable[[int, int], None] | None = None) -> ShardSet:
    """Pack ``src`` into shards and loose files under ``dest`` (module docstring); returns what it lists.

    A rerun packs again (equal content gives equal shards) and removes shards no longer listed.
    ``progress(done, total)`` is called after each shard."""
    src, dest = Path(src).resolve(), Path(dest).resolve()
    if not src.is_dir():
        raise ShardError(f"{src}: not a folder")
    if dest == src or dest.is_relative_to(src) or src.is_relative_to(dest):
        raise ShardError(f"{dest}: the packed folder must be outside {src} (and not contain it); it is what "
                         f"you upload instead of {src}")
    loose_names, packed = _listing(src)
    if not packed and not loose_names:
        raise ShardError(f"{src}: no files to pack")
    plan = plan_shards(packed, shard_size)
    (dest / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    # The old listing goes first: a half-rewritten folder must not pass for a packed one.
    (dest / SHARDS).unlink(missing_ok=True)
    width = max(5, len(str(len(plan) - 1)))
    shards = []
    for i, paths in enumerate(plan):
        shards.append(write_shard(src, paths, dest / SHARD_DIR / f"{i:0{width}d}.tar"))
        if progress is not None:
            progress(i + 1, len(plan))
    names = {Path(s.path).name for s in shards}
    for old in (dest / SHARD_DIR).iterdir():
        if old.name not in names:
            old.unlink()
    loose = tuple(_copy_hashed(src / n, dest / n) for n in loose_names)
    result = ShardSet(tuple(shards), loose)
    tmp = dest / (SHARDS + ".part")
    tmp.write_text(format_shards(result), encoding="utf-8")
    os.replace(tmp, dest / SHARDS)
    return result


# --- unpacking ---------------------------------------------------------------------------------------

class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what is read from ``src`` and reports the count."""

    def __init__(self, src: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.src, self.progress, self.digest, self.size = src, progress, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        b = self.src.read(n if n is not None and n >= 0 else CHUNK)
        if b:
            self.digest.update(b)
            self.size += len(b)
            if self.progress is not None:
                self.progress(self.size)
        return b

    def readinto(self, buf) -> int:  # io's default readinto would call read(len) anyway
        b = self.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def drain(self) -> None:
        """Read to the end: the tar's trailing blocks are part of the hashed shard."""
        while self.read(CHUNK):
            pass


def unpack_shard(stream: BinaryIO, into: Path, shard: Shard, where: str,
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """Extract the regular files of the tar ``stream`` under ``into``; returns their paths.

    Raises :class:`ShardError` naming ``where`` (the shard's URI) when the bytes read do not have the
    size and SHA-256 ``shard`` lists, the tar cannot be read, or it holds anything but regular files
    with safe relative paths. The caller moves the files into place only after this returns, so a
    file of a shard that fails is never used. ``progress(bytes read so far)`` after each read."""
    reader = _HashingReader(stream, progress)
    members: list[str] = []
    made: set[Path] = set()
    redo = (f"the shard is damaged or was replaced after {SHARDS} was written; pack the folder again "
            f"(tdrl data pack) and upload {SHARD_DIR}/ and {SHARDS} together")
    try:
        with tarfile.open(fileobj=reader, mode="r|", bufsize=TAR_BUFSIZE) as tar:
            for m in tar:
                # Only regular files of sub-folders: top-level names are the stage's own records.
                if not m.isreg() or not safe_relative(m.name) or "/" not in m.name:
                    raise ShardError(f"{where}: member {m.name!r} is not a regular file in a sub-folder; {redo}")
                target = into / m.name
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                src = tar.extractfile(m)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                members.append(m.name)
        reader.drain()
    except (tarfile.TarError, EOFError) as exc:  # a damaged header or a cut-off stream
        raise ShardError(f"{where}: not a readable tar after {reader.size} of {shard.size} bytes ({exc}); "
                         f"{redo}") from exc
    digest = reader.digest.hexdigest()
    if reader.size != shard.size or digest != shard.sha256:
        raise ShardError(f"{where}: {reader.size} bytes, sha256 {digest[:12]}... but {SHARDS} says {shard.size} "
                         f"bytes, sha256 {shard.sha256[:12]}...; {redo}")
    if len(members) != shard.files:
        raise ShardError(f"{where}: holds {len(members)} files but {SHARDS} says {shard.files}; {redo}")
    return members


# --- the `tdrl data pack` command --------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="dataset folder to pack (e.g. the --out of tdrl data prepare)")
    parser.add_argument("dest", help=f"new folder for {SHARD_DIR}/, the top-level files and {SHARDS}: the one "
                                     f"to upload")
    add_shard_size_argument(parser)


def _size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:  # argparse shows the message of this kind only
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_shard_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard-size", type=_size_argument, default=DEFAULT_SHARD_SIZE, metavar="SIZE",
                        help="bytes per tar shard, with a unit: 1G (default), 512M, 256Mi")


def report(dest: str | Path, result: ShardSet) -> str:
    return (f"{dest}: {len(result.shards)} shards and {len(result.loose)} top-level files, {result.files} files, "
            f"{result.bytes / 1e9:.2f} GB; upload the folder and set data.root to where it is "
            f"(e.g. s3://bucket/name)")


def run(args: argparse.Namespace) -> int:
    def show(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total} shards", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = pack_folder(args.folder, args.dest, args.shard_size, progress=show)
    print(report(args.dest, result))
    return 0

