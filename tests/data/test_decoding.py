"""Decoders: frames equal an independent PyAV decode; every bad-input case names the file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from data_helpers import ramp_frames, write_video
from tdrl.data.decoding import DecodeError, FrameFolder, open_video


def pyav_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_real_mp4_frames_equal_independent_pyav_decode(real: Path, decoder: str) -> None:
    ref = pyav_frames(real / "test.mp4")  # (300, 256, 340, 3)
    assert ref.shape == (300, 256, 340, 3)
    v = open_video(real / "test.mp4", decoder)
    assert len(v) == 300
    idx = [0, 1, 37, 150, 151, 299, 37]
    got = v.get(idx)
    assert got.dtype == np.uint8 and got.shape == (7, 256, 340, 3)
    np.testing.assert_array_equal(got, ref[idx])


def test_real_frame_folder_equals_pyav_jpeg_decode(real: Path) -> None:
    v = open_video(real / "frames")
    assert isinstance(v, FrameFolder) and len(v) == 10
    got = v.get([0, 4, 9, 4])
    for k, i in enumerate([0, 4, 9, 4]):
        ref = pyav_frames(real / "frames" / f"img_{i + 1:05d}.jpg")[0]
        # libjpeg-turbo vs FFmpeg's mjpeg decoder: identical DCT data, different chroma upsampling.
        diff = np.abs(got[k].astype(int) - ref.astype(int))
        assert got[k].shape == (240, 320, 3) and diff.mean() < 2.0, diff.mean()


@pytest.mark.parametrize("suffix,codec", [(".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mp4", "libx264")])
def test_containers_decode_by_index(tmp_path: Path, suffix: str, codec: str) -> None:
    frames = ramp_frames(12)
    path = write_video(tmp_path / f"v{suffix}", frames, codec)
    v = open_video(path)
    assert len(v) == 12
    got = v.get([11, 0, 5])
    np.testing.assert_allclose(got.reshape(3, -1).mean(1), frames[[11, 0, 5]].reshape(3, -1).mean(1), atol=3)


def test_frame_folder_v1_names_sorted_numerically(tmp_path: Path) -> None:
    from PIL import Image

    for i in (1, 2, 10):  # 00010 must come after 00002 whatever the listing order
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / f"{i:05d}.jpg", quality=100)
    got = open_video(tmp_path).get([0, 1, 2])
    assert [int(round(g.mean())) for g in got] == [20, 40, 200]


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_bad_files_name_the_file(tmp_path: Path, real: Path, decoder: str) -> None:
    with pytest.raises(DecodeError, match=r"missing\.mp4: video file not found"):
        open_video(tmp_path / "missing.mp4", decoder)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.mp4: video file is empty"):
        open_video(tmp_path / "empty.mp4", decoder)
    data = (real / "test.mp4").read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"trunc\.mp4"):
        v = open_video(tmp_path / "trunc.mp4", decoder)
        v.get([0, len(v) - 1])
    (tmp_path / "corrupt.webm").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, np.uint8).tobytes())
    with pytest.raises(DecodeError, match=r"corrupt\.webm: cannot open"):
        open_video(tmp_path / "corrupt.webm", decoder)
    v = open_video(real / "test.mp4", decoder)
    with pytest.raises(DecodeError, match=r"test\.mp4: frame index 300 out of range; the video has 300"):
        v.get([0, 300])


def test_bad_frame_folders(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="frame folder has no numbered"):
        open_video(tmp_path)
    (tmp_path / "00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DecodeError, match=r"00001\.jpg: cannot decode frame 0"):
        open_video(tmp_path).get([0])
    with pytest.raises(DecodeError, match="not found"):
        FrameFolder(tmp_path / "nope")
