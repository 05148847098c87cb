"""Tar shards (tdrl.data.shards): the plan's boundaries, packing that is deterministic and complete,
unpacking that verifies the bytes and refuses unsafe members, and the shard manifest's errors."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest

from tdrl.config.base import ConfigError
from tdrl.data.manifest import MANIFEST, write_manifest
from tdrl.data.shards import (HEADER, SHARDS, Shard, ShardError, ShardSet, format_shards, pack_folder, parse_shards,
                              parse_size, plan_shards, tar_bytes, unpack_shard)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _frames(videos: int, frames: int, seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {f"frames/{v:04d}/{f:05d}.jpg": rng.randbytes(rng.randint(200, 900))
             for v in range(videos) for f in range(1, frames + 1)}
    files.update({"train.txt": b"frames/0000 4 0\n", "labels.txt": b"a\nb\n"})
    return files


def test_parse_size_units():
    assert parse_size("1G") == 10**9 and parse_size("1GB") == 10**9 and parse_size("256Mi") == 256 * 2**20
    assert parse_size("4000") == 4000 and parse_size("1.5k") == 1500
    for bad in ("", "G", "1X", "-1G", "0"):
        with pytest.raises(ConfigError, match="shard size"):
            parse_size(bad)


def test_plan_keeps_order_sizes_and_boundaries():
    rng = random.Random(1)
    files = [(f"v{i // 40:04d}/{i % 40:05d}.jpg", rng.randint(1000, 3000)) for i in range(3000)]
    target = 1 << 20
    plan = plan_shards(files, target)
    assert [p for shard in plan for p in shard] == [p for p, _ in files]  # every file once, in order
    size = {p: tar_bytes(n) for p, n in files}  # what a file takes in the tar, header and padding
    totals = [sum(size[p] for p in shard) for shard in plan]
    assert len(plan) >= 4
    assert all(target <= t <= 2 * target for t in totals[:-1]), totals  # full shards, never past 2x
    # One file grows by 100 bytes: its shard changes and every other shard keeps its files.
    changed = [(p, n + 100) if p == files[1234][0] else (p, n) for p, n in files]
    again = plan_shards(changed, target)
    assert len(again) == len(plan)
    assert [a == b for a, b in zip(plan, again)].count(False) == 0  # same members, the bytes differ in one
    # A file inserted early changes its own shard only (anchors are ~64 KB apart here, so a 2 KB
    # insertion moves a boundary with a probability of ~3%; with these paths it does not).
    inserted = plan_shards(sorted(files + [("v0002/00007x.jpg", 2000)]), target)
    assert sum(1 for shard in inserted if shard not in plan) == 1, [len(s) for s in inserted]
    # A greedy cut at exactly shard_size would have moved every later boundary: the anchors matter.
    assert len(inserted) == len(plan) and inserted[1:] == plan[1:]


def test_pack_is_deterministic_and_complete(tmp_path):
    src = _tree(tmp_path / "src", _frames(30, 12))
    write_manifest(src)  # the per-file manifest is not packed
    (src / "frames" / "0001.part-77").mkdir()  # an interrupted prepare's folder is left out
    (src / "frames" / "0001.part-77" / "x.jpg").write_bytes(b"x")
    first = pack_folder(src, tmp_path / "a", shard_size=50_000)
    assert tar_bytes(0) == 512 and tar_bytes(1) == tar_bytes(512) == 1024 and tar_bytes(513) == 1536
    second = pack_folder(src, tmp_path / "b", shard_size=50_000)
    assert first == second and len(first.shards) >= 3
    assert [e.path for e in first.loose] == ["labels.txt", "train.txt"]
    assert (tmp_path / "a" / "train.txt").read_bytes() == b"frames/0000 4 0\n"
    assert parse_shards((tmp_path / "a" / SHARDS).read_text()) == first
    for s in first.shards:
        data = (tmp_path / "a" / s.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (s.size, s.sha256)
    members = []
    for s in first.shards:
        with tarfile.open(tmp_path / "a" / s.path) as tar:
            infos = tar.getmembers()
            assert {(m.mtime, m.uid, m.mode, m.uname) for m in infos} == {(0, 0, 0o644, "")}
            members += [m.name for m in infos]
    expected = sorted(p for p in _frames(30, 12) if p.startswith("frames/"))
    assert members == expected and first.files == len(expected) + 2
    # Packing again after a file changed rewrites its shard and removes a shard no longer needed.
    (src / "frames" / "0003" / "00002.jpg").write_bytes(b"new" * 100)
    (tmp_path / "a" / "shards" / "99999.tar").write_bytes(b"stale")
    third = pack_folder(src, tmp_path / "a", shard_size=50_000)
    assert sum(a != b for a, b in zip(first.shards, third.shards)) == 1
    assert sorted(p.name for p in (tmp_path / "a" / "shards").iterdir()) == [Path(s.path).name for s in third.shards]


def test_pack_refuses_a_destination_inside_the_source(tmp_path):
    src = _tree(tmp_path / "src", {"a/b.jpg": b"1"})
    with pytest.raises(ShardError, match="must be outside"):
        pack_folder(src, src / "packed")
    with pytest.raises(ShardError, match="not a folder"):
        pack_folder(tmp_path / "absent", tmp_path / "out")


def test_unpack_restores_the_files_and_checks_every_byte(tmp_path):
    files = _frames(4, 5)
    src = _tree(tmp_path / "src", files)
    packed = pack_folder(src, tmp_path / "packed", shard_size=10**9)
    (shard,) = packed.shards
    data = (tmp_path / "packed" / shard.path).read_bytes()
    seen = []
    members = unpack_shard(io.BytesIO(data), tmp_path / "out", shard, "s3://b/x/shards/00000.tar", seen.append)
    assert sorted(members) == sorted(p for p in files if "/" in p)
    assert all((tmp_path / "out" / m).read_bytes() == files[m] for m in members)
    assert seen[-1] == len(data)  # the trailing blocks were read and hashed too
    # One byte flipped inside a file's content: the tar reads, the hash does not match.
    bad = bytearray(data)
    bad[1024 + 10] ^= 0xFF
    with pytest.raises(ShardError, match=r"s3://b/x/shards/00000.tar: \d+ bytes, sha256 .* but tdrl-shards.tsv says"):
        unpack_shard(io.BytesIO(bytes(bad)), tmp_path / "bad", shard, "s3://b/x/shards/00000.tar")
    with pytest.raises(ShardError, match=r"00000.tar: (not a readable tar|\d+ bytes)"):  # cut short
        unpack_shard(io.BytesIO(data[: len(data) // 2]), tmp_path / "cut", shard, "s3://b/x/shards/00000.tar")
    wrong_count = Shard(shard.path, shard.size, shard.sha256, shard.files + 1)
    with pytest.raises(ShardError, match="holds 20 files but tdrl-shards.tsv says 21"):
        unpack_shard(io.BytesIO(data), tmp_path / "count", wrong_count, "x.tar")


def _tar(members: list[tarfile.TarInfo]) -> tuple[bytes, Shard]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"z" * m.size) if m.isreg() else None)
    data = buf.getvalue()
    return data, Shard("shards/0.tar", len(data), hashlib.sha256(data).hexdigest(), len(members))


@pytest.mark.parametrize("name,kind", [("../escape.jpg", tarfile.REGTYPE), ("/abs/x.jpg", tarfile.REGTYPE),
                                       ("top-level.txt", tarfile.REGTYPE), ("a/link", tarfile.SYMTYPE),
                                       ("a/dev", tarfile.CHRTYPE)])
def test_unpack_refuses_members_that_are_not_plain_files_inside(tmp_path, name, kind):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, 3 if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    data, shard = _tar([info])
    with pytest.raises(ShardError, match="is not a regular file in a sub-folder"):
        unpack_shard(io.BytesIO(data), tmp_path / "out", shard, "shard.tar")
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "out" / "a" / "link").exists()


def test_shard_manifest_round_trip_and_errors():
    from tdrl.data.manifest import Entry

    s = ShardSet((Shard("shards/00000.tar", 10, "a" * 64, 3),), (Entry("train.txt", 4, "b" * 64),))
    text = format_shards(s)
    assert text.startswith(HEADER + "\n") and parse_shards(text) == s
    assert (s.files, s.bytes) == (4, 14)
    with pytest.raises(ShardError, match="not a tdrl shard manifest"):
        parse_shards("shard\tx\n", "s3://b/tdrl-shards.tsv")
    with pytest.raises(ShardError, match=r"s3://b/t.tsv:4: malformed line"):
        parse_shards(text + "shard\tzz\t1\t1\tshards/1.tar\n", "s3://b/t.tsv")
    with pytest.raises(ShardError, match=r":2: malformed"):
        parse_shards(HEADER + "\nfile\t" + "a" * 64 + "\t1\t../up.txt\n")
    with pytest.raises(ShardError, match=r":3: shards/00000.tar is listed twice"):
        parse_shards(text.replace("file\t" + "b" * 64 + "\t4\ttrain.txt", "shard\t" + "c" * 64 + "\t1\t1\tshards/00000.tar"))


def test_manifest_file_is_not_packed(tmp_path):
    src = _tree(tmp_path / "src", {"a/1.jpg": b"1", "top.txt": b"t"})
    write_manifest(src)
    packed = pack_folder(src, tmp_path / "p")
    assert [e.path for e in packed.loose] == ["top.txt"] and not (tmp_path / "p" / MANIFEST).exists()


def test_pack_command(tmp_path, capsys):
    from tdrl.cli import main

    src = _tree(tmp_path / "src", _frames(3, 4))
    assert main(["data", "pack", str(src), str(tmp_path / "p"), "--shard-size", "2k"]) == 0
    out = capsys.readouterr().out
    shards = parse_shards((tmp_path / "p" / SHARDS).read_text())
    assert f"{len(shards.shards)} shards and 2 top-level files, 14 files" in out and len(shards.shards) >= 2
    with pytest.raises(SystemExit):
        main(["data", "pack", str(src), str(tmp_path / "q"), "--shard-size", "lots"])
    assert "shard size 'lots'" in capsys.readouterr().err
