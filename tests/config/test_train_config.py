"""train.workers as a count or an elastic range MIN-MAX: parsing, one spelling per value, the global batch
and lr of MAX workers, and what the driver hands Ray Train's ScalingConfig."""

from __future__ import annotations

import pytest

from tdrl.config.base import ConfigError, from_dict
from tdrl.config.experiment import Experiment
from tdrl.config.train import TrainConfig


@pytest.mark.parametrize("given,stored,lo,hi", [
    (1, 1, 1, 1), ("3", 3, 3, 3), ("2-4", "2-4", 2, 4), (" 2 - 4 ", "2-4", 2, 4), ("4-4", 4, 4, 4),
    ([1, 8], "1-8", 1, 8),
])
def test_workers_count_or_range(given, stored, lo, hi):
    t = from_dict(TrainConfig, {"workers": given, "batch_size": 8})
    assert (t.workers, t.min_workers, t.max_workers, t.elastic) == (stored, lo, hi, lo != hi)
    # The recipe is MAX workers': global batch and lr do not depend on how many are running.
    assert t.global_batch == 8 * hi and t.lr == pytest.approx(0.01 * 8 * hi / 64)


@pytest.mark.parametrize("bad,message", [
    ("0", "worker counts must be >= 1"), ("0-2", "worker counts must be >= 1"), ("4-2", "needs MIN <= MAX"),
    ("two", "like 4 or a range MIN-MAX"), ("1-2-3", "like 4 or a range MIN-MAX"), (True, "like 4 or a range"),
    (2.5, "like 4 or a range"),
])
def test_bad_worker_values_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, {"workers": bad}, section="train")


def test_fail_rank_must_exist_at_every_size():
    assert TrainConfig(workers="2-4", fail_rank=1).fail_rank == 1
    with pytest.raises(ConfigError, match=r"fail_rank=2 must be below train.workers=2-4 \(its MIN"):
        TrainConfig(workers="2-4", fail_rank=2)


def test_range_round_trips_through_flat_keys_and_the_command_line():
    exp = Experiment().override({"train.workers": "1-2"})
    flat = exp.flatten()
    assert flat["train.workers"] == "1-2"  # what MLflow records
    assert Experiment.from_flat(flat) == exp
    assert Experiment().override({"train.workers": 2}).flatten()["train.workers"] == 2  # fixed runs unchanged


def test_scaling_config_gets_a_tuple_for_a_range(monkeypatch, tmp_path):
    from tdrl.train.trainer import RESIZE_ENV, build_trainer, scaling_workers

    assert scaling_workers(TrainConfig(workers=3)) == 3
    assert scaling_workers(TrainConfig(workers="2-8")) == (2, 8)
    monkeypatch.setenv(RESIZE_ENV, "7.5")
    exp = Experiment().override({"train.workers": "1-2", "train.use_gpu": False,
                                 "train.storage_path": str(tmp_path), "train.name": "x"})
    scaling = build_trainer(exp, {}).scaling_config
    assert scaling.num_workers == (1, 2) and scaling.elasticity_enabled
    assert (scaling.min_workers, scaling.max_workers, scaling.elastic_resize_monitor_interval_s) == (1, 2, 7.5)
