"""decode_on=device: JPEG bytes from the loader, decode + augmentation on the device, equal to the CPU pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdrl.config import ConfigError
from tdrl.config.data import DataConfig
from tdrl.data.builders import build_dataset, build_loader
from tdrl.data.dataset import DataLoadError
from tdrl.data.decoding import DecodeError
from tdrl.data.gpu_decode import (FrameBytesDataset, JpegBatch, batch_to_device, collate_jpeg,
                                  decode_and_augment)
from tdrl.data.prepare import prepare_dataset

STD255 = 0.226 * 255  # normalised difference -> grey levels


@pytest.fixture(scope="module")
def frames_cfg(tiny_synth, tmp_path_factory) -> dict:
    info = prepare_dataset("sthv2", tiny_synth.root, tmp_path_factory.mktemp("prep"), workers=1)
    # 32x32 frames, crops of 32/28/24/21 px -> 24: shrinking (antialiased), enlarging and no resize.
    return dict(info.data_fields(), input_size=24, short_side=32, flip=True)


def _pair(cfg: dict, split: str, train: bool, **kw):
    cpu = build_dataset(DataConfig(**cfg), split, 8, train=train, seed=5, **kw)
    dev = build_dataset(DataConfig(**cfg, decode_on="device"), split, 8, train=train, seed=5, **kw)
    return cpu, dev


def _compare(cpu, dev, device: str, epoch: int = 0) -> tuple[float, float]:
    cpu.set_epoch(epoch)
    dev.set_epoch(epoch)
    n = len(cpu)
    batch, labels = collate_jpeg([dev[i] for i in range(n)])
    got = decode_and_augment(batch, device).cpu()
    ref = torch.stack([cpu[i][0] for i in range(n)])
    assert labels.tolist() == [cpu[i][1] for i in range(n)]
    assert got.shape == ref.shape and got.dtype == torch.float32
    d = (got - ref).abs()
    return d.max().item() * STD255, d.mean().item() * STD255


def test_train_and_eval_equal_cpu_pipeline(frames_cfg) -> None:
    cpu, dev = _pair(frames_cfg, "train", True)
    assert isinstance(dev, FrameBytesDataset)
    for epoch in (0, 1):  # new draws per epoch, the same in both
        mx, mean = _compare(cpu, dev, "cpu", epoch)
        # Same sampled frames/box/flip, same resize call; both decoders are libjpeg-turbo (bit-equal here).
        assert mx <= 2.0 and mean <= 0.05, (mx, mean)
    cpu, dev = _pair(frames_cfg, "val", False)
    mx, mean = _compare(cpu, dev, "cpu")
    assert mx <= 2.0 and mean <= 0.05


def test_multi_view_and_channels_last(frames_cfg) -> None:
    cfg = dict(frames_cfg, num_clips=2, num_crops=3)
    cpu, dev = _pair(cfg, "val", False)
    batch, _ = collate_jpeg([dev[0], dev[1]])
    assert batch.index.shape == (2, 6, 8) and batch.flips.sum() == 0
    got = decode_and_augment(batch, "cpu")
    assert got.shape == (2, 6, 8, 3, 24, 24)
    assert (got - torch.stack([cpu[0][0], cpu[1][0]])).abs().max().item() * STD255 <= 2.0
    cl = decode_and_augment(batch, "cpu", channels_last=True)
    assert torch.equal(cl, got) and cl.reshape(-1, 3, 24, 24).is_contiguous(memory_format=torch.channels_last)


def test_loader_and_batch_to_device(frames_cfg) -> None:
    cpu, dev = _pair(frames_cfg, "train", True)
    jb, labels = next(iter(build_loader(dev, 4, shuffle=False, workers=0)))
    assert isinstance(jb, JpegBatch) and len(jb) == 4 and jb.data.dtype == torch.uint8 and labels.shape == (4,)
    clips, y = batch_to_device((jb, labels), "cpu", channels_last=True)
    ref, ref_y = batch_to_device(next(iter(build_loader(cpu, 4, shuffle=False, workers=0))), "cpu",
                                 channels_last=True)
    assert torch.equal(y, ref_y) and clips.shape == ref.shape == (4, 8, 3, 24, 24)
    assert (clips - ref).abs().max().item() * STD255 <= 2.0
    assert ref.reshape(-1, 3, 24, 24).is_contiguous(memory_format=torch.channels_last)


def test_folder_listing_fallback(frames_cfg, tmp_path) -> None:
    """Without a frame count in the list file the folder is listed; the items are the same."""
    root = Path(frames_cfg["root"])
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{root / p} {y}\n" for p, _, y in
                             (line.split() for line in (root / "train.txt").read_text().splitlines())))
    _, fast = _pair(frames_cfg, "train", True)
    _, slow = _pair(dict(frames_cfg, train_annotations=str(plain)), "train", True)
    assert fast.records[0].num_frames == 8 and slow.records[0].num_frames is None
    a, b = collate_jpeg([fast[i] for i in range(3)])[0], collate_jpeg([slow[i] for i in range(3)])[0]
    assert torch.equal(a.data, b.data) and torch.equal(a.index, b.index) and torch.equal(a.boxes, b.boxes)


def test_errors(frames_cfg, tiny_synth, tmp_path) -> None:
    with pytest.raises(ConfigError, match="decode_on"):
        DataConfig(decode_on="gpu")
    videos = build_dataset(DataConfig(**tiny_synth.data_fields(), input_size=24, short_side=32,
                                      decode_on="device"), "train", 8, train=True)
    with pytest.raises(DataLoadError, match="tdrl data prepare"):
        videos[0]
    # A JPEG whose body is garbage passes the loader's header check and is named at decode time.
    cpu, dev = _pair(frames_cfg, "val", False)
    clip, _ = dev[0]
    good = bytes(clip.data[: int(clip.offsets[1])].tolist())
    broken = good[:200] + b"\x00" * 8 + good[-2:]
    clip.data = torch.frombuffer(bytearray(broken + bytes(clip.data[int(clip.offsets[1]):].tolist())),
                                 dtype=torch.uint8)
    clip.offsets = clip.offsets - clip.offsets[1] + len(broken)
    clip.offsets[0] = 0
    with pytest.raises(DecodeError, match="not a decodable JPEG") as err:
        decode_and_augment(collate_jpeg([(clip, 0)])[0], "cpu")
    assert clip.source in str(err.value)
    # A PNG frame is refused in the loader with the file named. Damage a copy: the prepared set is
    # shared by the module's other tests.
    import shutil

    from PIL import Image

    root = Path(tmp_path / "copy")
    shutil.copytree(frames_cfg["root"], root)
    _, dev = _pair(dict(frames_cfg, root=str(root)), "val", False)
    folder = Path(dev.records[1].path)
    assert folder.is_relative_to(root)
    first = sorted(folder.iterdir())[0]
    Image.open(first).save(first, format="PNG")  # still named .jpg
    with pytest.raises(DataLoadError, match="not a JPEG"):
        dev[1]


def _decoder_gap(dev, device: str) -> tuple[float, float]:
    """Max and mean |decode on ``device`` - libjpeg-turbo on the CPU| in grey levels, over every JPEG
    frame of the dataset's items: what the decoders alone contribute to a pipeline difference."""
    from torchvision.io import ImageReadMode, decode_jpeg

    batch, _ = collate_jpeg([dev[i] for i in range(len(dev))])
    offs = batch.offsets.tolist()
    blobs = [batch.data[offs[u]:offs[u + 1]] for u in range(len(offs) - 1)]
    on_dev = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)
    on_cpu = decode_jpeg(blobs, mode=ImageReadMode.RGB)
    d = torch.cat([(a.cpu().float() - b.float()).abs().flatten() for a, b in zip(on_dev, on_cpu)])
    return d.max().item(), d.mean().item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(frames_cfg) -> None:
    cpu, dev = _pair(frames_cfg, "train", True)
    mx, mean = _compare(cpu, dev, "cuda")
    dmx, dmean = _decoder_gap(dev, "cuda")
    print(f"pipeline |cuda - cpu|: max {mx:.1f} mean {mean:.2f}; decoders alone: max {dmx:.1f} mean {dmean:.2f} levels")
    # nvjpeg's IDCT and chroma upsampling differ from libjpeg-turbo's, most at colour edges: measured on
    # an H200 with these 32 px synthetic frames, mean 2.6 / max 55 levels through the pipeline. The
    # crops, resizing, flips and normalisation on the device must add nothing beyond the decoders'
    # own gap (a misplaced crop or a missed flip would: tens of levels on average), and the decoders
    # must agree closely on average (a colour-space or channel-order mistake would not).
    assert dmean <= 4.0, (dmx, dmean)
    assert mean <= 1.25 * dmean + 0.25 and mx <= dmx + 16, (mx, mean, dmx, dmean)


def test_predict_scores_equal_for_both_decode_modes(frames_cfg) -> None:
    """The evaluation path (tdrl.train.evaluate.predict) gives the same scores from JPEG batches."""
    from tdrl.config.model import ModelConfig
    from tdrl.model.network import TDRLNet
    from tdrl.train.evaluate import predict

    torch.manual_seed(0)
    cpu, dev = _pair(frames_cfg, "val", False)
    model = TDRLNet(ModelConfig(backbone="resnet18", width=0.25, reduction=4, num_classes=cpu.num_classes))
    loaders = [build_loader(ds, 4, shuffle=False, workers=0) for ds in (cpu, dev)]
    (s_cpu, l_cpu, loss_cpu), (s_dev, l_dev, loss_dev) = (predict(model, ld, torch.device("cpu"), channels_last=True)
                                                         for ld in loaders)
    assert torch.equal(l_cpu, l_dev) and len(l_cpu) == len(cpu)
    assert torch.allclose(s_cpu, s_dev, atol=1e-3) and abs(loss_cpu - loss_dev) < 1e-3
