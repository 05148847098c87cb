"""Staging a remote dataset onto the node (tdrl.data.staging) from a local ``file://`` "bucket", and
its manifest (tdrl.data.manifest): bytes equal, one copy per node when two workers race, an
interrupted copy resumed, mismatches refused, and a remote DataConfig read through the stage."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdrl.config.base import ConfigError
from tdrl.config.data import DataConfig
from tdrl.data.manifest import MANIFEST, Entry, ManifestError, build_manifest, format_manifest, parse_manifest, \
    write_manifest
from tdrl.data.staging import COMPLETE, PART, STAGE_ENV, StagingError, local_folder, localize, stage, stage_root

MIB = 1 << 20


def _bucket(root: Path, sizes: dict[str, int]) -> Path:
    """Files of the given sizes with distinct pseudo-random bytes, plus their manifest."""
    for i, (rel, size) in enumerate(sorted(sizes.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(hashlib.shake_256(f"{i}:{rel}".encode()).digest(size) if size else b"")
    write_manifest(root)
    return root


def _same_tree(src: Path, dst: Path, rels) -> None:
    for rel in rels:
        assert (dst / rel).read_bytes() == (src / rel).read_bytes(), rel


# --- the manifest ------------------------------------------------------------------------------

def test_manifest_lists_sizes_and_hashes_and_skips_temporaries(tmp_path):
    (tmp_path / "frames" / "1").mkdir(parents=True)
    (tmp_path / "frames" / "1" / "00001.jpg").write_bytes(b"abc")
    (tmp_path / "train.txt").write_text("frames/1 1 0\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "frames" / "2.part-123").mkdir()  # an interrupted prepare's folder
    (tmp_path / "frames" / "2.part-123" / "00001.jpg").write_bytes(b"x")
    (tmp_path / "labels.txt.part").write_text("half")
    entries = build_manifest(tmp_path)
    assert entries == [Entry("empty", 0, hashlib.sha256(b"").hexdigest()),
                       Entry("frames/1/00001.jpg", 3, hashlib.sha256(b"abc").hexdigest()),
                       Entry("train.txt", 13, hashlib.sha256(b"frames/1 1 0\n").hexdigest())]
    write_manifest(tmp_path)
    assert parse_manifest((tmp_path / MANIFEST).read_text()) == entries
    assert build_manifest(tmp_path) == entries  # the manifest does not list itself


def test_manifest_errors_name_the_line():
    good = format_manifest([Entry("a", 1, "0" * 64)])
    with pytest.raises(ManifestError, match="not a tdrl manifest"):
        parse_manifest("a\tb\n")
    with pytest.raises(ManifestError, match=r"m.tsv:3: malformed"):
        parse_manifest(good + "zz\t1\tb\n", "m.tsv")
    with pytest.raises(ManifestError, match=r":2: malformed"):
        parse_manifest(format_manifest([Entry("../x", 1, "0" * 64)]))


# --- staging -----------------------------------------------------------------------------------

def test_stage_copies_every_byte_once_and_reuses_the_copy(tmp_path):
    sizes = {"a.bin": 3, "sub/b.bin": MIB + 17, "sub/deep/c.bin": 0}
    bucket = _bucket(tmp_path / "bucket", sizes)
    uri = f"file://{bucket}"
    first = stage(uri, tmp_path / "stage")
    assert first.path == local_folder(uri, tmp_path / "stage")
    assert (first.files, first.bytes, first.copied_files, first.copied_bytes) == (3, MIB + 20, 3, MIB + 20)
    _same_tree(bucket, first.path, sizes)
    assert (first.path / COMPLETE).is_file() and (first.path / MANIFEST).read_bytes() == (bucket / MANIFEST).read_bytes()
    again = stage(uri + "/", tmp_path / "stage")  # a trailing slash is the same source
    assert (again.path, again.copied_files, again.copied_bytes) == (first.path, 0, 0)
    # The source is prepared again: one file changed, one removed, one added. Only those move.
    (bucket / "a.bin").write_bytes(b"abcd")
    (bucket / "sub" / "deep" / "c.bin").unlink()
    (bucket / "new.bin").write_bytes(b"n" * 10)
    write_manifest(bucket)
    b_inode = (first.path / "sub" / "b.bin").stat().st_ino
    third = stage(uri, tmp_path / "stage")
    assert (third.files, third.copied_files, third.copied_bytes) == (3, 2, 14)
    _same_tree(bucket, third.path, ["a.bin", "sub/b.bin", "new.bin"])
    assert not (third.path / "sub" / "deep" / "c.bin").exists()
    assert (third.path / "sub" / "b.bin").stat().st_ino == b_inode  # kept, not copied again


INTERRUPT = r"""
import os, sys
from tdrl.data.staging import stage
def progress(path, done):
    if path == sys.argv[3] and done >= 1 << 20:  # one chunk of this file written: die mid-file
        os._exit(9)
stage(sys.argv[1], sys.argv[2], threads=1, progress=progress)
"""


def test_interrupted_copy_resumes_keeping_finished_files(tmp_path):
    sizes = {f"f{i}.bin": 2 * MIB + i for i in range(5)}
    bucket = _bucket(tmp_path / "bucket", sizes)
    uri, base = f"file://{bucket}", tmp_path / "stage"
    out = subprocess.run([sys.executable, "-c", INTERRUPT, uri, str(base), "f2.bin"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 9, out.stderr
    local = local_folder(uri, base)
    # The record of what the files are verified against is written before the first copy.
    assert sorted(p.name for p in local.iterdir()) == ["f0.bin", "f1.bin", "f2.bin" + PART, MANIFEST]
    assert (local / ("f2.bin" + PART)).stat().st_size == MIB  # the partial file, one chunk in
    kept = {n: (local / n).stat().st_ino for n in ("f0.bin", "f1.bin")}
    with open(local / "f1.bin", "r+b") as f:  # and a finished file damaged since: shorter than listed
        f.truncate(100)
    resumed = stage(uri, base, threads=2)
    assert resumed.copied_files == 4 and resumed.copied_bytes == sum(sizes.values()) - sizes["f0.bin"]
    assert (local / "f0.bin").stat().st_ino == kept["f0.bin"]  # finished before the kill: kept
    assert not list(local.glob("*" + PART))
    _same_tree(bucket, local, sizes)


RACER = r"""
import json, os, sys, time
from tdrl.data.staging import stage
go = sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.01)
t0, last = time.time(), [0.0]
def slow(path, done):  # slow chunks widen the window in which the other process asks for the same stage
    time.sleep(0.15)
    last[0] = time.time()
res = stage(sys.argv[1], sys.argv[2], threads=1, progress=slow)
print(json.dumps({"copied": res.copied_files, "start": t0, "last_chunk": last[0], "end": time.time(),
                  "path": str(res.path)}))
"""


def test_two_workers_racing_make_one_copy(tmp_path):
    sizes = {f"f{i}.bin": 2 * MIB for i in range(4)}  # 8 chunks x 0.15 s: a copy of >= 1.2 s
    bucket = _bucket(tmp_path / "bucket", sizes)
    uri, base, go = f"file://{bucket}", tmp_path / "stage", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, uri, str(base), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3.0)  # both interpreters up and polling
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    winner, loser = sorted(results, key=lambda r: -r["copied"])
    assert (winner["copied"], loser["copied"]) == (4, 0)  # one copy, and the other reused it
    # It asked while the copy ran and returned only after the copy's last chunk: it waited for it.
    assert loser["start"] < winner["last_chunk"] < loser["end"]
    assert winner["path"] == loser["path"]
    _same_tree(bucket, Path(winner["path"]), sizes)


def test_a_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    bucket = _bucket(tmp_path / "bucket", {"a.bin": 10, "b.bin": 20})
    (bucket / "b.bin").write_bytes(b"y" * 20)  # same size, other bytes
    with pytest.raises(StagingError, match=r"b.bin: 20 bytes, sha256 .* but the manifest says"):
        stage(f"file://{bucket}", tmp_path / "stage", threads=1)
    local = local_folder(f"file://{bucket}", tmp_path / "stage")
    assert not (local / "b.bin").exists() and not (local / COMPLETE).exists()
    assert not list(local.glob("*" + PART))


def test_a_source_without_manifest_is_refused(tmp_path):
    (tmp_path / "bucket").mkdir()
    with pytest.raises(StagingError, match=r"tdrl-manifest.tsv: not found"):
        stage(f"file://{tmp_path / 'bucket'}", tmp_path / "stage")


def test_stage_root_default_and_override(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.delenv(STAGE_ENV, raising=False)
    assert stage_root() == Path(tempfile.gettempdir()) / "tdrl-stage"
    monkeypatch.setenv(STAGE_ENV, str(tmp_path / "nvme"))
    assert stage_root() == tmp_path / "nvme"
    assert local_folder("s3://b/sets/prepared").parent == tmp_path / "nvme"
    assert local_folder("s3://b/sets/prepared").name.startswith("prepared-")
    assert local_folder("s3://b/sets/prepared") != local_folder("s3://c/sets/prepared")


def test_remote_roots_are_checked():
    with pytest.raises(ConfigError, match=r"scheme http:// is not supported"):
        DataConfig(root="http://example.org/data")
    with pytest.raises(ConfigError, match=r"file:///abs/folder"):
        DataConfig(root="file://relative/data")
    assert DataConfig(root="s3://bucket/prepared").root == "s3://bucket/prepared"


# --- a prepared dataset read from a remote root ------------------------------------------------

def test_prepared_set_reads_the_same_through_a_file_uri(tiny_synth, tmp_path, monkeypatch):
    import torch

    from tdrl.data.builders import annotations_for, build_dataset
    from tdrl.data.prepare import prepare_dataset

    info = prepare_dataset("sthv2", tiny_synth.root, tmp_path / "prepared", workers=1)
    entries = parse_manifest((Path(info.out) / MANIFEST).read_text())
    assert len(entries) == 12 * 8 + 4  # 12 videos x 8 frames, train/val lists, labels, prepare.json
    monkeypatch.setenv(STAGE_ENV, str(tmp_path / "stage"))
    uri = f"file://{info.out}"
    common = dict(dataset="list", input_size=24, short_side=32)
    local_cfg = DataConfig(**{**info.data_fields(), **common})
    remote_cfg = DataConfig(root=uri, train_annotations=f"{uri}/train.txt", val_annotations="val.txt",
                            labels=f"{uri}/labels.txt", **common)
    # The driver's check stages the three list files alone.
    ann = annotations_for(remote_cfg, "train")
    meta = local_folder(uri).with_name(local_folder(uri).name + ".annotations")
    assert sorted(p.name for p in meta.iterdir() if not p.name.startswith(".")) == \
        sorted(["labels.txt", "train.txt", "val.txt", MANIFEST])
    assert [r.label for r in ann.records] == [r.label for r in annotations_for(local_cfg, "train").records]
    # A worker stages everything, then reads clips equal to the local set's.
    staged = localize(remote_cfg)
    assert staged.root == str(local_folder(uri)) and staged.train_annotations == f"{staged.root}/train.txt"
    assert staged.val_annotations == "val.txt"  # relative: resolved against the new root
    a = build_dataset(remote_cfg, "val", 8, train=False)
    b = build_dataset(local_cfg, "val", 8, train=False)
    assert len(a) == len(b) == 4
    for i in range(len(a)):
        (ca, ya), (cb, yb) = a[i], b[i]
        assert ya == yb and torch.equal(ca, cb)
    with pytest.raises(ConfigError, match="outside data.root"):
        localize(DataConfig(root=uri, labels="s3://elsewhere/labels.txt", **common))
