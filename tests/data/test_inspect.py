"""tdrl data inspect: counts, unreadable/short items, sample, --json, for each dataset format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdrl.cli import main


def _run(capsys, *argv: str) -> tuple[int, dict]:
    rc = main(["data", "inspect", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_sthv2_synthetic(tiny_synth, capsys) -> None:
    rc, rep = _run(capsys, "--dataset", "sthv2", "--root", tiny_synth.root, "--frames", "4")
    assert rc == 0
    assert rep["splits"]["train"]["items"] == 8 and rep["splits"]["val"]["items"] == 4
    assert rep["splits"]["train"]["per_class"]["Moving something up"] == 2
    assert rep["sample"]["decoded_shape_THWC"] == [4, 32, 32, 3]
    assert rep["sample"]["clip_shape_TCHW"] == [4, 3, 224, 224]
    assert len(rep["sample"]["indices"]) == 4


def test_kinetics_with_missing_and_short(real: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "abseiling").mkdir()
    (tmp_path / "abseiling" / "yt1_000001_000011.mp4").symlink_to(real / "test.mp4")
    csv = tmp_path / "k.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\nabseiling,yt1,1,11,train\n"
                   "zumba,yt2,5,15,train\n")
    rc, rep = _run(capsys, "--dataset", "kinetics400", "--root", str(tmp_path), "--annotations", str(csv),
                   "--frames", "400")
    s = rep["splits"][str(csv)]
    assert rc == 1 and s["items"] == 2 and s["per_class"] == {"abseiling": 1, "zumba": 1}
    assert s["unreadable_count"] == 1 and s["unreadable"][0]["source"] == f"{csv}:3"
    assert "yt2_000005_000015.mp4: video file not found" in s["unreadable"][0]["error"]
    assert s["short_count"] == 1 and s["short"][0]["num_frames"] == 300
    assert rep["sample"]["sampling"] == "window" and rep["sample"]["indices"][1] - rep["sample"]["indices"][0] == 0


@pytest.mark.parametrize("fmt", ["sthv1", "list"])
def test_frame_folder_formats(real: Path, tmp_path: Path, capsys, monkeypatch, fmt: str) -> None:
    monkeypatch.chdir(tmp_path)  # the files below are given relative to the current folder
    (tmp_path / "42").symlink_to(real / "frames")
    if fmt == "sthv1":
        (tmp_path / "labels.csv").write_text("Holding something\n")
        (tmp_path / "train.csv").write_text("42;Holding something\n")
        args = ["--labels", "labels.csv", "--annotations", "train.csv"]
    else:
        (tmp_path / "train.csv").write_text("42 10 0\n")
        args = ["--annotations", "train.csv"]
    rc, rep = _run(capsys, "--dataset", fmt, "--root", str(tmp_path), *args, "--frames", "8")
    assert rc == 0
    assert rep["sample"]["decoded_shape_THWC"] == [8, 240, 320, 3] and rep["splits"]["train.csv"]["frames_max"] == 10


def test_bad_annotation_reports_error(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "l.txt").write_text("a.mp4 x\n")
    monkeypatch.chdir(tmp_path)
    code = main(["data", "inspect", "--dataset", "list", "--root", ".", "--annotations", "l.txt", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tdrl data inspect: error: ") and "l.txt:1: malformed line" in err


def test_paths_on_the_command_line_are_relative_to_the_current_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    """``--root DIR --annotations DIR/x.txt`` reads DIR/x.txt (it used to look for DIR/DIR/x.txt)."""
    data = tmp_path / "DIR"
    data.mkdir()
    (data / "42").mkdir()
    (data / "x.txt").write_text("42 10 0\n")
    monkeypatch.chdir(tmp_path)
    rc, rep = _run(capsys, "--dataset", "list", "--root", "DIR", "--annotations", "DIR/x.txt", "--limit", "0")
    assert rc == 0 and rep["splits"]["DIR/x.txt"]["items"] == 1
