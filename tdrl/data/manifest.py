"""A dataset folder's manifest: every file's relative path, size and SHA-256, in ``tdrl-manifest.tsv``.

Staging (:mod:`tdrl.data.staging`) copies a remote dataset onto a node's local disk and checks
every copied file against this list, so the manifest is written where the data is produced, once:
``tdrl data prepare`` writes it at the end of every run, and ``tdrl data manifest DIR`` writes it for
any other folder (raw videos, a synthetic set) before it is uploaded. Staging refuses a remote
root without one rather than build it there: a list made from the copy would only describe the copy.

Format: UTF-8 text, a header line ``# tdrl-manifest v1``, then one line per file, sorted by path:
``<sha256 hex>\\t<size in bytes>\\t<path relative to the folder, with />``. The manifest itself and
the temporary files of an interrupted ``tdrl data prepare`` (``*.part-<pid>`` folders, ``*.part``
files) are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tdrl.config.base import InputError

MANIFEST = "tdrl-manifest.tsv"
HEADER = "# tdrl-manifest v1"
CHUNK = 1 << 20  # bytes read per call when hashing and copying


class ManifestError(InputError, ValueError):
    """A manifest is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative, "/"-separated
    size: int
    sha256: str


def is_temporary(name: str) -> bool:
    """The temporary names of an interrupted ``tdrl data prepare`` or ``tdrl data pack``."""
    return name.endswith(".part") or ".part-" in name


def _skipped(name: str) -> bool:
    """The manifest itself and temporaries."""
    return name == MANIFEST or is_temporary(name)


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def build_manifest(folder: str | Path, threads: int = 4) -> list[Entry]:
    """Every file under ``folder`` (see the module docstring for what is left out), hashed by
    ``threads`` threads (hashlib releases the GIL on large reads)."""
    folder = Path(folder)
    rel: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        base = Path(dirpath).relative_to(folder)
        rel.extend((base / n).as_posix() for n in filenames if not _skipped(n))
    rel.sort()
    for r in rel:
        if "\t" in r or "\n" in r:
            raise ManifestError(f"{folder / r}: a tab or newline in a file name cannot be listed in {MANIFEST}")

    def entry(r: str) -> Entry:
        p = folder / r
        return Entry(r, p.stat().st_size, file_sha256(p))

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(entry, rel))


def format_manifest(entries: Iterable[Entry]) -> str:
    return HEADER + "\n" + "".join(f"{e.sha256}\t{e.size}\t{e.path}\n" for e in sorted(entries, key=lambda e: e.path))


def parse_manifest(text: str, source: str = MANIFEST) -> list[Entry]:
    """The entries of a manifest's text; errors name ``source`` and the line."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ManifestError(f"{source}: not a tdrl manifest (the first line must be {HEADER!r}); "
                            f"rewrite it with tdrl data manifest")
    entries = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        ok = len(parts) == 3 and len(parts[0]) == 64 and parts[1].isdigit() and parts[2]
        path = parts[2] if ok else ""
        if not ok or path.startswith("/") or ".." in path.split("/"):
            raise ManifestError(f"{source}:{lineno}: malformed line {line!r}; expected "
                                f"'<sha256>\\t<size>\\t<relative path>'")
        entries.append(Entry(path, int(parts[1]), parts[0]))
    return entries


def write_manifest(folder: str | Path, threads: int = 4) -> Path:
    """Hash ``folder`` and write ``folder/tdrl-manifest.tsv`` atomically; returns its path."""
    folder = Path(folder)
    text = format_manifest(build_manifest(folder, threads))
    target = folder / MANIFEST
    tmp = folder / (MANIFEST + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


# --- the `tdrl data manifest` command -----------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help=f"dataset folder to list (writes FOLDER/{MANIFEST})")
    parser.add_argument("--threads", type=int, default=4, help="hashing threads (default 4)")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    path = write_manifest(folder, args.threads)
    entries = parse_manifest(path.read_text(encoding="utf-8"), str(path))
    print(f"{path}: {len(entries)} files, {sum(e.size for e in entries) / 2**20:.1f} MiB")
    return 0
