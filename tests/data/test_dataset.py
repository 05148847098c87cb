"""VideoDataset / build_dataset: real-file values, shapes, failure policy across DataLoader workers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tdrl.config.data import DataConfig
from tdrl.data.annotations import Annotations, VideoRecord
from tdrl.data.builders import build_dataset, build_loader, num_classes
from tdrl.data.dataset import DataLoadError, VideoDataset
from tdrl.data.transforms import EvalPreset, TrainPreset


def _ds(records, **kw) -> VideoDataset:
    kw.setdefault("transform", TrainPreset(input_size=16, short_side=32))
    return VideoDataset(Annotations(("a", "b"), tuple(records)), 4, train=True, **kw)


def test_eval_clip_values_follow_sampled_frames(real: Path) -> None:
    import av

    rec = VideoRecord(real / "test.mp4", 1, "x:1")
    ds = VideoDataset(Annotations(("a", "b"), (rec,)), 4, train=False,
                      transform=EvalPreset(input_size=256, short_side=256))
    clip, label = ds[0]
    assert label == 1 and clip.shape == (4, 3, 256, 256)
    with av.open(str(real / "test.mp4")) as c:
        ref = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    # 300 frames, T=4, centres floor((i+.5)*75) = 37, 112, 187, 262; centre 256x256 crop, x from 42.
    want = torch.from_numpy(ref[[37, 112, 187, 262], :, 42:298].astype(np.float32)).permute(0, 3, 1, 2)
    want = (want / 255 - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(clip, want, atol=1e-4, rtol=0)


def test_multi_view_and_training_determinism(real: Path) -> None:
    recs = (VideoRecord(real / "test.mp4", 0, "x:1"), VideoRecord(real / "frames", 1, "x:2"))
    ds = VideoDataset(Annotations(("a", "b"), recs), 4, train=False, num_clips=2,
                      transform=EvalPreset(input_size=32, short_side=40, num_crops=3))
    views, _ = ds[1]
    assert views.shape == (6, 4, 3, 32, 32)
    tr = _ds(recs, seed=7)
    a, b = tr[0][0], tr[0][0]
    assert torch.equal(a, b)  # same (seed, epoch, index)
    tr.set_epoch(1)
    assert not torch.equal(a, tr[0][0])


def test_raise_policy_names_file_and_line(tmp_path: Path, real: Path) -> None:
    ds = _ds([VideoRecord(tmp_path / "gone.webm", 0, "train.json:entry 3")])
    with pytest.raises(DataLoadError, match=r"train\.json:entry 3: cannot load .*gone\.webm.*not found"):
        ds[0]


def test_skip_policy_substitutes_counts_and_aborts(tmp_path: Path, real: Path) -> None:
    good = VideoRecord(real / "frames", 1, "l:1")
    bad = VideoRecord(tmp_path / "gone.mp4", 0, "l:2")
    ds = _ds([bad, good] * 5, on_error="skip", max_error_fraction=0.3)  # abort past 3 failures
    with pytest.warns(RuntimeWarning, match=r"l:2: cannot load .*gone\.mp4"):
        clip, label = ds[0]
    assert label == 1 and clip.shape == (4, 3, 16, 16)
    assert ds.load_stats() == {"attempted": 2, "failed": 1, "failed_fraction": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds[2], ds[4]
        with pytest.raises(DataLoadError, match="4 of 10 items failed to load this epoch"):
            ds[6]
    ds.set_epoch(1)
    assert ds.load_stats()["failed"] == 0


def test_counts_aggregate_across_loader_workers(tmp_path: Path, real: Path) -> None:
    good = VideoRecord(real / "frames", 1, "l:1")
    bad = VideoRecord(tmp_path / "gone.mp4", 0, "l:2")
    ds = _ds([bad, good] * 4, on_error="skip", max_error_fraction=1.0)
    loader = build_loader(ds, batch_size=2, shuffle=False, workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert batches[0][0].shape == (2, 4, 3, 16, 16)  # (N, T, C, H, W)
    assert torch.equal(batches[0][1], torch.tensor([1, 1]))
    assert ds.load_stats() == {"attempted": 12, "failed": 4, "failed_fraction": 4 / 12}


def test_build_dataset_on_synthetic_v2(tiny_synth) -> None:
    cfg = DataConfig(**tiny_synth.data_fields(), input_size=32, short_side=32, num_clips=2, num_crops=3)
    assert num_classes(cfg) == 4
    tr = build_dataset(cfg, "train", 4, train=True)
    assert len(tr) == 8 and tr.transform.flip is False  # Something-Something: no flip
    clip, label = tr[5]
    assert clip.shape == (4, 3, 32, 32) and label == 5 % 4
    va = build_dataset(cfg, "val", 4, train=False)
    assert va[0][0].shape == (6, 4, 3, 32, 32)
    assert build_dataset(cfg, "val", 4, train=False, multi_view=False)[0][0].shape == (4, 3, 32, 32)
