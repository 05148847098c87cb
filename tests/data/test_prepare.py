"""tdrl data prepare: round trip to JPEG frame folders, resuming/idempotence, errors, the command."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tdrl.cli import main as cli_main
from tdrl.config.data import DataConfig
from tdrl.data.builders import build_dataset
from tdrl.data.prepare import PrepareError, parse_split_args, prepare_dataset, target_size

# ImageNet std in 0..255 units: a normalised difference times this is a difference in grey levels.
STD255 = 0.226 * 255


@pytest.fixture(scope="module")
def prepared(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    info = prepare_dataset("sthv2", tiny_synth.root, out, workers=1)
    return tiny_synth, info


def _clips(cfg: DataConfig, split: str) -> tuple[torch.Tensor, list[int]]:
    ds = build_dataset(cfg, split, 8, train=False)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([c for c, _ in items]), [y for _, y in items]


def test_round_trip_labels_and_pixels(prepared) -> None:
    synth, info = prepared
    assert set(info.splits) == {"train", "val"} and info.converted == 12 and not info.failed
    assert (Path(info.out) / "frames" / "1" / "00001.jpg").is_file()
    assert Path(info.splits["train"]).read_text().splitlines()[0] == "frames/1 8 0"
    common = dict(input_size=24, short_side=32)
    src_cfg = DataConfig(**synth.data_fields(), **common)
    dst_cfg = DataConfig(**info.data_fields(), **common)
    assert dst_cfg.dataset == "list"
    for split in ("train", "val"):
        a, la = _clips(src_cfg, split)
        b, lb = _clips(dst_cfg, split)
        assert la == lb and a.shape == b.shape
        err = (a - b).abs().mean().item() * STD255  # grey levels
        # JPEG q90 on the synthetic set's per-pixel sensor noise costs ~3-6 levels (real video ~1.7);
        # a frame from the wrong time or clip is far further off.
        assert err < 8.0, err
        assert (a - b.roll(1, dims=0)).abs().mean().item() * STD255 > 2 * err
    assert build_dataset(dst_cfg, "train", 8, train=True).classes == synth.classes


def test_resize_to_short_side(tiny_synth, tmp_path) -> None:
    assert target_size(240, 320, 256, False) == (240, 320)  # never enlarged by default
    assert target_size(240, 320, 256, True) == (256, 341)
    assert target_size(512, 680, 256, False) == (256, 340)
    info = prepare_dataset("sthv2", tiny_synth.root, tmp_path, annotations={"val": None}, short_side=16,
                           workers=1)
    from PIL import Image

    assert Image.open(Path(info.out) / "frames" / "9" / "00003.jpg").size == (16, 16)
    common = dict(input_size=16, short_side=16)
    a, la = _clips(DataConfig(**tiny_synth.data_fields(), **common), "val")
    b, lb = _clips(DataConfig(**info.data_fields(), **common), "val")
    assert la == lb and (a - b).abs().mean().item() * STD255 < 8.0  # resample + JPEG


def test_resume_and_idempotent(tiny_synth, tmp_path) -> None:
    first = prepare_dataset("sthv2", tiny_synth.root, tmp_path, workers=2)  # spawned processes
    assert (first.converted, first.skipped) == (12, 0)
    train = Path(first.splits["train"])
    stamp = train.stat().st_mtime_ns
    again = prepare_dataset("sthv2", tiny_synth.root, tmp_path, workers=1)
    assert (again.converted, again.skipped) == (0, 12) and train.stat().st_mtime_ns == stamp
    shutil.rmtree(tmp_path / "frames" / "3")
    (tmp_path / "frames" / "4.part-999").mkdir()  # debris of a killed run is not a finished video
    redo = prepare_dataset("sthv2", tiny_synth.root, tmp_path, workers=1)
    assert (redo.converted, redo.skipped) == (1, 11)
    assert len(os.listdir(tmp_path / "frames" / "3")) == 8
    assert train.read_text() == Path(redo.splits["train"]).read_text()
    with pytest.raises(PrepareError, match="was prepared with"):
        prepare_dataset("sthv2", tiny_synth.root, tmp_path, quality=50, workers=1)


def test_frame_folder_source_copies_jpegs(prepared, tmp_path) -> None:
    _, info = prepared
    again = prepare_dataset("list", info.out, tmp_path, annotations={"train": "train.txt"}, labels="labels.txt",
                            workers=1)
    # Item ids are paths under the source root, here "frames/<id>": labels and frame counts carry over.
    assert Path(again.splits["train"]).read_text() == Path(info.splits["train"]).read_text().replace(
        "frames/", "frames/frames/")
    a = (Path(info.out) / "frames" / "2" / "00005.jpg").read_bytes()
    assert (tmp_path / "frames" / "frames" / "2" / "00005.jpg").read_bytes() == a  # copied, not re-encoded


def test_bad_video_named(tiny_synth, tmp_path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_synth.root, src)
    (src / "2.webm").write_bytes(b"not a video at all" * 10)
    (src / "5.webm").unlink()
    out = tmp_path / "out"
    with pytest.raises(PrepareError, match=r"2 video\(s\)") as err:
        prepare_dataset("sthv2", src, out, annotations={"train": "something-something-v2-train.json"}, workers=1)
    msg = str(err.value)
    assert "2.webm" in msg and "5.webm" in msg and "entry 1" in msg and "not found" in msg
    assert not (out / "train.txt").exists() and not any(".part" in p for p in os.listdir(out / "frames"))
    info = prepare_dataset("sthv2", src, out, annotations={"train": "something-something-v2-train.json"},
                           workers=1, skip_bad=True)
    assert info.converted == 0 and info.skipped == 6 and len(info.failed) == 2
    lines = Path(info.splits["train"]).read_text().splitlines()
    assert len(lines) == 6 and not any(line.startswith(("frames/2 ", "frames/5 ")) for line in lines)


def test_split_args() -> None:
    assert parse_split_args(["train=a.csv", "b/val_x.csv"], "list") == {"train": "a.csv", "val_x": "b/val_x.csv"}
    assert parse_split_args(None, "sthv2")["val"] == "something-something-v2-validation.json"
    with pytest.raises(PrepareError, match="no official annotation"):
        parse_split_args(None, "kinetics400")
    with pytest.raises(PrepareError, match="twice"):
        parse_split_args(["train=a", "train=b"], "list")


def test_command(tiny_synth, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tiny_synth.root)  # --annotations is relative to the current folder
    argv = ["data", "prepare", "--dataset", "sthv2", "--root", ".", "--out", str(tmp_path),
            "--processes", "1", "--annotations", "val=something-something-v2-validation.json"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "4 videos converted" in out and "--dataset list" in out
    assert cli_main(argv) == 0 and "0 videos converted, 4 already done" in capsys.readouterr().out
    code = cli_main(argv[:-2] + ["--annotations", "train=missing.json"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tdrl data prepare: error: ") and "missing.json" in err
