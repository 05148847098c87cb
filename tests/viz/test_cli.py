"""``tdrl visualize pem|tm`` end to end on a checkpoint file and the real video."""

from __future__ import annotations

from PIL import Image

from tdrl.cli import COMMANDS, main


def test_commands_registered():
    for name in ("visualize pem", "visualize tm", "visualize curves"):
        assert name in COMMANDS


def test_pem_cli_on_real_video(tiny_ckpt, real_video, tmp_path, capsys):
    out = tmp_path / "pem.png"
    assert main(["visualize", "pem", "--checkpoint", str(tiny_ckpt[0]), "--video", str(real_video),
                 "--block", "layer1.0", "--block", "layer4.-1", "--out", str(out)]) == 0
    with Image.open(out) as im:
        w, h = im.size
    # 4 frame columns and 1 + 3 * 2 rows of equal cells plus fixed margins: taller than wide.
    from tdrl.viz.grid import CELL_IN, DPI, LABEL_IN, TITLE_IN
    assert (w, h) == (round((LABEL_IN + 4 * CELL_IN) * DPI), round((TITLE_IN + 7 * CELL_IN) * DPI))


def test_tm_cli_on_frame_folder(tiny_ckpt, tiny_ckpt_no_td, real_frames_dir, tmp_path, capsys):
    out = tmp_path / "tm.png"
    assert main(["visualize", "tm", "--checkpoint", str(tiny_ckpt[0]), "--checkpoint", str(tiny_ckpt_no_td[0].parent),
                 "--video", str(real_frames_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "w/ TD loss" in text and "w/o TD loss" in text and out.is_file()


def test_errors_are_messages_not_traces(tiny_ckpt, real_frames_dir, tmp_path, capsys):
    import pytest

    def error(*argv: str) -> str:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tdrl {argv[0]} {argv[1]}: error: ") and "Traceback" not in err
        return err

    assert "no such checkpoint" in error("visualize", "pem", "--checkpoint", str(tmp_path / "missing.pt"),
                                         "--video", str(real_frames_dir), "--out", str(tmp_path / "x.png"))
    assert "layerK.I" in error("visualize", "pem", "--checkpoint", str(tiny_ckpt[0]), "--video", str(real_frames_dir),
                               "--block", "stage1", "--out", str(tmp_path / "x.png"))
    assert "not found" in error("visualize", "tm", "--checkpoint", str(tiny_ckpt[0]), "--video",
                                str(tmp_path / "none.mp4"), "--out", str(tmp_path / "x.png"))
    assert "--k 0 must be >= 1" in error("visualize", "pem", "--checkpoint", str(tiny_ckpt[0]), "--video",
                                         str(real_frames_dir), "--k", "0", "--out", str(tmp_path / "x.png"))
