"""data.cache: items from memory equal freshly decoded items, in training (any epoch) and evaluation.

64 px frames: decord 0.6 fails on some widths (48 among them, docs/data.md)."""

import pytest
import torch

from tdrl.config.data import DataConfig
from tdrl.data.builders import build_dataset
from tdrl.data.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    info = generate_synthetic(tmp_path_factory.mktemp("cache-synth"), num_classes=4, train_per_class=2,
                              val_per_class=2, frames=10, size=64, seed=3, workers=1, jitter=1.0)
    return info.data_fields()


@pytest.mark.parametrize("decoder", ["pyav", "auto"])
def test_cached_items_equal_decoded_items(synth, decoder):
    fields = {**synth, "input_size": 32, "short_side": 40, "decoder": decoder}
    for train, split in ((True, "train"), (False, "val")):
        plain = build_dataset(DataConfig(**fields), split, 4, train=train, seed=5)
        cached = build_dataset(DataConfig(**fields, cache=True), split, 4, train=train, seed=5)
        for epoch in (0, 1, 2):
            plain.set_epoch(epoch)
            cached.set_epoch(epoch)
            for i in range(len(plain)):
                a, la = plain[i]
                b, lb = cached[i]
                assert la == lb and torch.equal(a, b), (split, epoch, i)
        # The cache was used: training keeps whole videos, evaluation keeps finished clips.
        if train:
            assert len(cached._frames) == len(cached) and not cached._clips
            assert next(iter(cached._frames.values())).shape[0] == 10  # every frame of the video
        else:
            assert len(cached._clips) == len(cached) and not cached._frames


def test_cache_off_keeps_nothing(synth):
    ds = build_dataset(DataConfig(**synth, input_size=32, short_side=40), "train", 4, train=True)
    ds[0]
    assert not ds._frames and not ds._clips
