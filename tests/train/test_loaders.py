"""This rank's loaders (``loop.build_loaders``): its part of every global batch, every ``world``-th
validation video from its rank, and page-locked host memory only when the worker trains on a GPU.
Built by hand for a given rank and world (no Ray), on a 2-class set the test writes."""

from __future__ import annotations

import pytest
import torch

from tdrl.config.experiment import Experiment
from tdrl.train.loop import Job, build_loaders
from tdrl.train.runtime import Runtime


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory) -> str:
    """2 classes, 4 training and 3 validation clips each."""
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth-loaders")
    generate_synthetic(root, num_classes=2, train_per_class=4, val_per_class=3, frames=4, size=32, seed=0, workers=1)
    return str(root)


def _job(data_root: str, rank: int, world: int, device: str) -> Job:
    exp = Experiment.from_flat({"model.backbone": "resnet18", "model.num_classes": 2, "model.frames": 4,
                                "data.dataset": "sthv2", "data.root": data_root, "data.decoder": "pyav",
                                "data.input_size": 32, "data.short_side": 32, "data.workers": 0,
                                "train.batch_size": 2, "train.workers": world})
    # torch.device("cuda") is only a name here: nothing is moved, so no GPU is needed.
    return Job(exp=exp, flat=exp.flatten(), rank=rank, world=world,
               runtime=Runtime(torch.device(device), "fp32", False))


@pytest.mark.parametrize("device,pinned", [("cpu", False), ("cuda", True)])
def test_host_memory_is_pinned_only_for_a_gpu(micro_data, device, pinned):
    loaders = build_loaders(_job(micro_data, 0, 1, device))
    assert (loaders.train.pin_memory, loaders.val.pin_memory) == (pinned, pinned)


def test_each_rank_validates_every_worlds_video_from_its_rank(micro_data):
    shards = [build_loaders(_job(micro_data, r, 2, "cpu")).val.dataset.indices for r in (0, 1)]
    assert [list(s) for s in shards] == [[0, 2, 4], [1, 3, 5]]
