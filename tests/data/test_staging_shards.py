"""Staging at dataset scale (tdrl.data.staging with tdrl.data.shards), on a local ``file://`` bucket:
a sharded source unpacks to the packed folder's layout; the marker is checked before any manifest is
read; content, not size, decides what is fetched again; a killed staging resumes shard by shard; a
corrupted or missing shard is refused naming it; the driver's annotation-only stage of a packed set."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tdrl.data import staging
from tdrl.data.manifest import MANIFEST, write_manifest
from tdrl.data.shards import SHARDS, ShardError, pack_folder
from tdrl.data.staging import COMPLETE, STATE, StagingError, local_folder, stage


def _source(root: Path, videos: int = 24, frames: int = 10, seed: int = 0) -> Path:
    """A prepared-set layout: frame folders of random bytes plus top-level list files."""
    rng = random.Random(seed)
    for v in range(videos):
        d = root / "frames" / f"{v:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for f in range(1, frames + 1):
            (d / f"{f:05d}.jpg").write_bytes(rng.randbytes(rng.randint(500, 3000)))
    (root / "train.txt").write_text("".join(f"frames/{v:04d} {frames} {v % 3}\n" for v in range(videos)))
    (root / "labels.txt").write_text("a\nb\nc\n")
    return root


def _files(root: Path) -> dict[str, bytes]:
    """Every data file under ``root`` (the stage's own records and the manifests left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != STATE]
        for n in filenames:
            rel = (Path(dirpath) / n).relative_to(root).as_posix()
            if rel not in (COMPLETE, MANIFEST, SHARDS):
                out[rel] = (Path(dirpath) / n).read_bytes()
    return out


def _members(packed: Path, shard_path: str) -> list[str]:
    with tarfile.open(packed / shard_path) as tar:
        return tar.getnames()


@pytest.fixture
def packed(tmp_path):
    src = _source(tmp_path / "src")
    shard_set = pack_folder(src, tmp_path / "bucket", shard_size=60_000)
    assert len(shard_set.shards) >= 4
    return src, tmp_path / "bucket", shard_set


def test_a_sharded_source_unpacks_to_the_packed_layout_once(packed, tmp_path):
    src, bucket, shard_set = packed
    uri = f"file://{bucket}"
    first = stage(uri, tmp_path / "stage")
    assert (first.shards, first.copied_shards, first.files) == (len(shard_set.shards),) * 2 + (24 * 10 + 2,)
    assert first.copied_files == first.files and first.copied_bytes == first.bytes == shard_set.bytes
    assert _files(first.path) == _files(src)
    assert not list((first.path / STATE / "tmp").iterdir())  # extraction folders are gone
    again = stage(uri, tmp_path / "stage", threads=1)
    assert (again.copied_files, again.copied_shards, again.files) == (0, 0, first.files)


def test_the_marker_is_checked_before_any_manifest_is_read(packed, tmp_path, monkeypatch):
    _, bucket, _ = packed
    uri = f"file://{bucket}"
    stage(uri, tmp_path / "stage")
    reads = []
    real = staging._read_source
    monkeypatch.setattr(staging, "_read_source", lambda *a: reads.append(a[2]) or real(*a))
    assert stage(uri, tmp_path / "stage").copied_files == 0 and reads == []  # marker + one metadata request
    # Uploaded again unchanged (a new modification time): read once, nothing copied, then quiet again.
    os.utime(bucket / SHARDS, ns=(1, 10**18))
    assert stage(uri, tmp_path / "stage").copied_files == 0 and reads == [uri]
    assert stage(uri, tmp_path / "stage").copied_files == 0 and reads == [uri]


def test_a_changed_file_is_fetched_again_with_its_shard_only(packed, tmp_path):
    src, bucket, shard_set = packed
    uri = f"file://{bucket}"
    first = stage(uri, tmp_path / "stage")
    victim = "frames/0011/00004.jpg"
    size = (src / victim).stat().st_size
    (src / victim).write_bytes(b"\x01" * size)  # same size, other content: the same boundaries
    repacked = pack_folder(src, bucket, shard_size=60_000)
    (changed,) = [s for s in repacked.shards if s not in shard_set.shards]
    assert victim in _members(bucket, changed.path)
    untouched = next(m for s in repacked.shards if s in shard_set.shards for m in _members(bucket, s.path))
    inode = (first.path / untouched).stat().st_ino
    again = stage(uri, tmp_path / "stage")
    assert (again.copied_shards, again.copied_files) == (1, changed.files)
    assert (first.path / victim).read_bytes() == b"\x01" * size
    assert (first.path / untouched).stat().st_ino == inode  # a file of a kept shard is not rewritten
    # A video removed: its files go from the stage (with the shards that held them).
    shutil.rmtree(src / "frames" / "0020")
    pack_folder(src, bucket, shard_size=60_000)
    stage(uri, tmp_path / "stage")
    assert _files(first.path) == _files(src)


def test_a_changed_file_of_the_same_size_is_fetched_again_per_file(tmp_path):
    src = _source(tmp_path / "bucket", videos=3, frames=2)
    write_manifest(src)
    uri = f"file://{src}"
    first = stage(uri, tmp_path / "stage")
    victim = src / "frames" / "0001" / "00002.jpg"
    victim.write_bytes(bytes(256 - b for b in victim.read_bytes()[:1]) + victim.read_bytes()[1:])
    write_manifest(src)
    again = stage(uri, tmp_path / "stage")
    assert (again.copied_files, again.copied_bytes) == (1, victim.stat().st_size)
    assert _files(first.path) == _files(src)


KILL = r"""
import os, sys
from tdrl.data.staging import stage
def progress(path, done):
    if path == sys.argv[3] and done >= int(sys.argv[4]):  # half-way through this shard: die
        os._exit(9)
stage(sys.argv[1], sys.argv[2], threads=1, progress=progress)
"""


def test_a_killed_staging_resumes_shard_by_shard(packed, tmp_path):
    src, bucket, shard_set = packed
    uri, base = f"file://{bucket}", tmp_path / "stage"
    third = shard_set.shards[2]
    out = subprocess.run([sys.executable, "-c", KILL, uri, str(base), third.path, str(third.size // 2)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 9, out.stderr
    local = local_folder(uri, base)
    done = sorted(p.stem for p in (local / STATE / "shards").glob("*.txt"))
    assert done == sorted(s.sha256 for s in shard_set.shards[:2])
    assert list((local / STATE / "tmp").iterdir())  # the third one was being extracted
    assert not (local / COMPLETE).exists()
    kept = _members(bucket, shard_set.shards[0].path)[0]
    inode = (local / kept).stat().st_ino
    resumed = stage(uri, base)
    assert resumed.copied_shards == len(shard_set.shards) - 2
    assert (local / kept).stat().st_ino == inode
    assert _files(local) == _files(src)


def test_a_corrupted_or_missing_shard_is_refused_naming_it(packed, tmp_path):
    _, bucket, shard_set = packed
    uri = f"file://{bucket}"
    bad = shard_set.shards[1]
    data = bytearray((bucket / bad.path).read_bytes())
    data[700] ^= 0x55  # inside the first member's bytes
    (bucket / bad.path).write_bytes(bytes(data))
    with pytest.raises(StagingError, match=rf"{bucket}/{bad.path}: \d+ bytes, sha256 .* but tdrl-shards.tsv says"):
        stage(uri, tmp_path / "stage", threads=1)
    local = local_folder(uri, tmp_path / "stage")
    assert not (local / COMPLETE).exists()
    assert not any((local / m).exists() for m in _members(bucket, bad.path))  # none of its files placed
    (bucket / bad.path).unlink()
    with pytest.raises(StagingError, match=rf"{bad.path}: not found, but tdrl-shards.tsv lists it"):
        stage(uri, tmp_path / "stage")
    (bucket / SHARDS).write_text((bucket / SHARDS).read_text() + "shard\tnot-a-hash\n")
    with pytest.raises(ShardError, match=rf"{bucket}/tdrl-shards.tsv:\d+: malformed line"):
        stage(uri, tmp_path / "stage")


def test_a_source_switched_from_files_to_shards_is_restaged(tmp_path):
    src = _source(tmp_path / "src", videos=6, frames=3)
    bucket = tmp_path / "bucket"
    shutil.copytree(src, bucket)
    (bucket / "frames" / "0005" / "extra.jpg").write_bytes(b"only in the old upload")
    write_manifest(bucket)
    uri = f"file://{bucket}"
    first = stage(uri, tmp_path / "stage")
    shutil.rmtree(bucket)
    pack_folder(src, bucket, shard_size=5_000)
    again = stage(uri, tmp_path / "stage")
    assert again.path == first.path and again.copied_shards == again.shards > 1
    assert _files(first.path) == _files(src) and not (first.path / MANIFEST).exists()


def test_an_earlier_marker_is_reused_without_copying(tmp_path):
    src = _source(tmp_path / "bucket", videos=2, frames=2)
    write_manifest(src)
    uri = f"file://{src}"
    first = stage(uri, tmp_path / "stage")
    # What tdrl wrote before this version: the manifest's SHA-256 alone.
    (first.path / COMPLETE).write_text(hashlib.sha256((src / MANIFEST).read_bytes() + b"None").hexdigest())
    inode = (first.path / "train.txt").stat().st_ino
    assert stage(uri, tmp_path / "stage").copied_files == 0
    assert (first.path / "train.txt").stat().st_ino == inode
    assert json.loads((first.path / COMPLETE).read_text())["kind"] == MANIFEST


def test_the_driver_stages_the_top_level_files_of_a_packed_set(packed, tmp_path, monkeypatch):
    from tdrl.config.data import DataConfig
    from tdrl.data.staging import localize

    _, bucket, _ = packed
    monkeypatch.setenv(staging.STAGE_ENV, str(tmp_path / "stage"))
    uri = f"file://{bucket}"
    cfg = DataConfig(dataset="list", root=uri, train_annotations="train.txt", val_annotations="train.txt",
                     labels="labels.txt")
    meta = localize(cfg, annotations_only=True)
    assert sorted(p.name for p in Path(meta.root).iterdir() if not p.name.startswith(".")) == \
        ["labels.txt", MANIFEST, "train.txt"]  # the record of the two files staged
    assert not (local_folder(uri)).exists()  # no shard fetched for the driver's checks
    inside = DataConfig(dataset="list", root=uri, train_annotations="frames/0001/00001.jpg",
                        val_annotations="train.txt", labels="labels.txt")
    with pytest.raises(StagingError, match="keeps only its top-level files outside the shards"):
        localize(inside, annotations_only=True)


def test_stage_command(packed, tmp_path, capsys):
    from tdrl.cli import main

    _, bucket, shard_set = packed
    args = ["data", "stage", f"file://{bucket}", "--stage-dir", str(tmp_path / "stage"), "--threads", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{len(shard_set.shards)} of {len(shard_set.shards)} shards, 242 of 242 files" in out and "MB/s" in out
    assert main(args) == 0 and "nothing to copy" in capsys.readouterr().out
    assert main(["data", "stage", str(bucket)]) == 2
    assert "not a URI" in capsys.readouterr().err


def test_progress_shows_mb_per_s_as_a_bar_or_as_log_lines(packed, tmp_path, monkeypatch, capfd):
    _, bucket, shard_set = packed
    uri = f"file://{bucket}"
    stage(uri, tmp_path / "bar", show="bar", threads=1)
    err = capfd.readouterr().err
    assert uri in err and "B/s" in err and f"{len(shard_set.shards)}/{len(shard_set.shards)} shards" in err
    monkeypatch.setattr(staging, "LINE_EVERY_S", 0.0)  # a line per read instead of one per 30 s
    stage(uri, tmp_path / "lines", show="lines", threads=1)
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("[tdrl] staging")]
    assert lines and all(" MB/s, " in line and f"of {len(shard_set.shards)} shards, ETA" in line for line in lines)
    assert lines[-1].startswith(f"[tdrl] staging {uri}: ") and "(100%)" in lines[-1]
