"""An epoch's reported metrics from the sums over all ranks (``loop.epoch_metrics``), and the console
line made of them (``loop.progress_line``): every value by hand, from sums that differ from each other,
so a swapped or misspelled sum or key shows; and the rank-0 progress bar."""

from __future__ import annotations

import pytest
import torch

from tdrl.config.experiment import Experiment
from tdrl.train.loop import METRICS, Job, MetricMeter, epoch_metrics, progress_line
from tdrl.train.runtime import Runtime

# Two ranks' sums of one epoch: 8 training clips (2 right), 4 validation clips (3 right in the top 1,
# all 4 in the top 5); losses summed clip-weighted; each rank trained for 2 s.
SUMS = {"clips": 8.0, "hits": 2.0, "loss": 12.0, "ce": 6.0, "td": 4.0, "seconds": 4.0, "skipped": 1.0,
        "val_clips": 4.0, "val_hits1": 3.0, "val_hits5": 4.0, "val_loss": 1.0}


def test_epoch_metrics_are_the_clip_weighted_means_over_ranks():
    m = epoch_metrics(MetricMeter(dict(SUMS), [3.0, 5.0]), epoch=3, lr=0.01, world=2, epoch_time=2.4)
    assert m == {"epoch": 3, "val_top1": 75.0, "train_top1": 25.0, "train_loss": 1.5, "train_ce": 0.75,
                 "train_td": 0.5, "val_loss": 0.25, "val_top5": 100.0, "lr": 0.01,
                 "clips_per_s": 4.0,  # 8 clips in the ranks' mean 2 s, not in their summed 4 s
                 "skipped": 1.0, "epoch_time_s": 2.4, "workers": 2,
                 "step_clips_min": 3.0, "step_clips_max": 5.0}  # the smallest and largest step of the epoch
    assert set(m) == set(METRICS)  # what MLflow and Tune are told to expect


def test_step_clips_add_up_per_step():
    """Micro-batches of one step add up in that step (the sum over ranks is checked on two real ranks
    by tests/train/test_train_ray.py)."""
    meter = MetricMeter()
    for step, clips in [(0, 3), (0, 2), (1, 4), (3, 1)]:
        meter.add_step(step, clips)
    assert meter.step_clips == [5.0, 4.0, 0.0, 1.0]
    assert MetricMeter({"a": 1.0}).merged(meter).step_clips == meter.step_clips


def test_an_epoch_without_validation_clips_reports_zero_not_an_error():
    m = epoch_metrics(MetricMeter({**SUMS, "val_clips": 0.0, "val_hits1": 0.0, "val_hits5": 0.0, "val_loss": 0.0}),
                      epoch=0, lr=0.1, world=1, epoch_time=1.0)
    assert (m["val_top1"], m["val_top5"], m["val_loss"]) == (0.0, 0.0, 0.0)


def test_progress_line_shows_each_metric_once_in_its_place():
    exp = Experiment.from_flat({"model.backbone": "resnet18", "model.num_classes": 2, "train.epochs": 6})
    job = Job(exp=exp, flat=exp.flatten(), rank=0, world=2, runtime=Runtime(torch.device("cpu"), "fp32", False),
              name="tiny")
    m = epoch_metrics(MetricMeter(dict(SUMS)), epoch=3, lr=0.01, world=2, epoch_time=2.4)
    assert progress_line(job, m, eta_s=3665.7) == (
        "[tdrl] tiny epoch 4/6  loss 1.5000 (ce 0.7500 td 0.500)  train top-1 25.0%  val top-1 75.0% top-5 100.0%  "
        "lr 1.00e-02  4.0 clips/s  skipped 1  2s  ETA 1:01:05")


@pytest.mark.parametrize("seconds,text", [(-3.0, "0:00:00"), (59.9, "0:00:59"), (3600.0, "1:00:00"),
                                          (86399.0, "23:59:59")])
def test_eta_is_hours_minutes_seconds(seconds, text):
    from tdrl.train.loop import _fmt_time

    assert _fmt_time(seconds) == text


def test_progress_bar_only_on_rank_0_and_named_by_the_1_based_epoch(capsys):
    from tdrl.train.loop import _progress_bar

    exp = Experiment.from_flat({"model.backbone": "resnet18", "model.num_classes": 2, "train.epochs": 6})
    cpu = Runtime(torch.device("cpu"), "fp32", False)
    batches = [1, 2, 3]
    for rank, progress in ((1, "bar"), (0, "lines"), (0, "none")):
        job = Job(exp=exp, flat=exp.flatten(), rank=rank, world=2, runtime=cpu, progress=progress)
        assert _progress_bar(job, batches, epoch=2) is batches
    job = Job(exp=exp, flat=exp.flatten(), rank=0, world=2, runtime=cpu, progress="bar")
    capsys.readouterr()
    assert list(_progress_bar(job, batches, epoch=2)) == batches
    # Outside a Ray worker Ray's tqdm draws a plain bar on stderr.
    assert "epoch 3/6" in capsys.readouterr().err
