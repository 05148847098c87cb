"""The speed model (tdrl/cluster/speed.py): the convolution share read from a profile, networks timed
from the measured rows, and rates carried to another GPU, each checked against numbers worked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdrl.cluster import speed as sp
from tdrl.cluster.instances import GPUS
from tdrl.config.model import ModelConfig

REPO = Path(__file__).resolve().parents[2]

# Four measured rows on one GPU at 8 frames, with easy per-clip times: tsn 1/500 s, tsm 1/400,
# tim 1/250, tdrl (tim + PEM + TD) 1/200.
TABLE = [sp.Throughput("H200", row, 8, "eager", rate, source="t.json") for row, rate in
         (("tsn", 500.0), ("tsm", 400.0), ("tim", 250.0), ("tdrl", 200.0), ("straightforward", 90.0))]
CONV = {"H200": sp.ConvShare("H200", 0.25, "p.txt")}
R50 = {"model.backbone": "resnet50", "model.width": 1.0, "model.frames": 8}


def flat(temporal: str, enhance: str = "none", td: float = 0.0, **extra) -> ModelConfig:
    """The ModelConfig of flat ``model.*`` keys (ResNet-50, 8 frames, TD lambda 2e-4 unless given)."""
    keys = {**R50, "model.temporal": temporal, "model.enhance": enhance, "model.td_ratio": td,
            "model.td_lambda": 2e-4, **extra}
    return ModelConfig(**{k.removeprefix("model."): v for k, v in keys.items()})


PROFILE = """## tdrl: 32 clips x 8 frames x 224^2, 3 steps
                       aten::convolution_backward         2.11%       9.602ms         3.56%      16.256ms     102.237us      99.000ms         7.66%      99.000ms     185.206us           159
                          aten::cudnn_convolution         2.11%       9.629ms         3.02%      13.759ms      86.532us      17.474ms         4.54%      17.474ms     109.897us           159
Self CUDA time total: 384.636ms

## tsn: 32 clips x 8 frames x 224^2, 3 steps
                       aten::convolution_backward         8.79%      12.844ms        14.80%      21.628ms     136.024us      30.000ms        18.47%      30.000ms     184.962us           159
                          aten::cudnn_convolution         2.78%       4.061ms         4.32%       6.308ms      39.672us     500.000us        11.02%     500.000us     110.318us           159
Self CUDA time total: 122.000ms
"""


def test_conv_share_is_the_tsn_sections_convolution_cuda_time_over_its_total():
    got = sp.parse_conv_share(PROFILE, "H200", "p.txt")
    assert got.share == pytest.approx((30.0 + 0.5) / 122.0)  # 0.5 ms from "500.000us"; tdrl's section ignored
    with pytest.raises(ValueError, match="no '## tim:'"):
        sp.parse_conv_share(PROFILE, "H200", row="tim")


def test_the_committed_h200_profile_gives_its_share():
    # benchmarks/results/h200_profile_8f.txt, tsn: convolution_backward 29.409 ms + cudnn_convolution
    # 17.541 ms (CUDA total) of 159.211 ms.
    shares = sp.load_conv_shares(REPO)
    assert set(shares) == {"H200"} and shares["H200"].gpu == "H200"
    assert shares["H200"].share == pytest.approx((29.409 + 17.541) / 159.211)


def test_networks_of_the_paper_tables():
    assert sp.network(flat("none")).name == "tsn"
    assert sp.network(flat("tsm", "pem")).name == "tsm+pem"
    assert sp.network(flat("tsm", td=0.5)).name == "tsm+td"
    assert sp.network(flat("tim", "pem", 0.5)).measured_row == "tdrl"
    assert sp.network(flat("tim", "mem")).measured_row is None
    assert sp.network(flat("tim", td=0.5, **{"model.td_lambda": 0.0})).name == "tim"  # lambda 0: trains as without TD


def test_reference_seconds_measured_and_composed():
    t = sp.reference_seconds(TABLE, sp.network(flat("tsm")), "H200", 8)
    assert t.seconds == pytest.approx(1 / 400) and t.derivation == "measured tsm"
    # tsm + PEM: tsm's time plus what PEM and the TD loss add to TIM together.
    t = sp.reference_seconds(TABLE, sp.network(flat("tsm", "pem")), "H200", 8)
    assert t.seconds == pytest.approx(1 / 400 + 1 / 200 - 1 / 250)
    # 16 frames from the 8-frame rows: twice the time.
    t = sp.reference_seconds(TABLE, sp.network(flat("tim", "pem", 0.5)), "H200", 16)
    assert t.seconds == pytest.approx(2 / 200) and t.measured_frames == 8
    assert sp.reference_seconds(TABLE, sp.network(flat("tsm")), "A10G", 8) is None


def test_gpu_factor_by_hand():
    # 1 ms per clip, 0.3 ms of it in convolutions, H200 -> A10G: 0.3 * 989/125 + 0.7 * 4.8/0.6.
    want = 1.0 / (0.3 * 989 / 125 + 0.7 * 4.8 / 0.6)
    assert sp.gpu_factor("H200", "A10G", 0.3e-3, 1e-3) == pytest.approx(want)
    assert sp.gpu_factor("H200", "H200", 0.3e-3, 1e-3) == pytest.approx(1.0)
    # Without a convolution share: the bandwidth ratio alone.
    assert sp.gpu_factor("H200", "H100", 0.0, 1e-3) == pytest.approx(3.35 / 4.8)


def test_estimate_on_the_measured_gpu_is_the_measurement():
    s = sp.estimate(TABLE, flat("tim"), "H200", size=224, convs=CONV)
    assert s.clips_per_s == pytest.approx(250.0) and s.exact and s.note == ""


def test_estimate_on_another_gpu_names_the_model_and_the_factor():
    s = sp.estimate(TABLE, flat("tim", "pem", 0.5), "A10G", size=224, convs=CONV)
    conv_s = 0.25 / 500  # TSN's convolutions, the same in every network
    a, b = GPUS["H200"], GPUS["A10G"]
    factor = (1 / 200) / (conv_s * a.bf16_tflops / b.bf16_tflops + (1 / 200 - conv_s) * a.bandwidth_tbs / b.bandwidth_tbs)
    assert s.clips_per_s == pytest.approx(200 * factor) and not s.exact
    assert s.note == f"estimated from H200 measurements x {factor:.2f}"
    assert "25% of the H200's TSN step in convolutions" in s.model and "dense BF16 989 -> 125 TFLOPS" in s.model
    assert "memory bandwidth 4.8 -> 0.6 TB/s" in s.model
    # Without a profile: bandwidth only, and said so.
    s = sp.estimate(TABLE, flat("tim", "pem", 0.5), "A10G", size=224, convs=None)
    assert s.clips_per_s == pytest.approx(200 * 0.6 / 4.8) and "no convolution profile" in s.model


def test_a_composed_network_says_its_time_is_an_upper_bound():
    s = sp.estimate(TABLE, flat("tsm", "pem"), "H200", size=224, convs=CONV)
    assert s.clips_per_s == pytest.approx(1 / (1 / 400 + 1 / 200 - 1 / 250)) and not s.exact
    assert "tsm+pem timed as tsm + (tdrl - tim) for pem" in s.note and "upper bound" in s.note
    both = sp.estimate(TABLE, flat("tsm", "pem", 0.5), "H200", size=224, convs=CONV)
    assert "upper bound" not in both.note  # PEM and TD together: what was measured


def test_estimate_override_and_what_cannot_be_estimated():
    assert sp.estimate(TABLE, flat("tsm"), "A10G", size=224, override=12.5) == sp.Speed(12.5, "--clips-per-s", True)
    assert sp.estimate(TABLE, flat("tsm", **{"model.backbone": "resnet18"}), "H200", size=224) is None
    assert sp.estimate(TABLE, flat("tsm"), "H200", size=160) is None  # no row at that crop
    assert sp.estimate(TABLE, flat("tsm"), "Some Future GPU", size=224, convs=CONV) is None
    assert sp.estimate(TABLE, flat("tsm"), "cpu", size=224, convs=CONV) is None


def test_without_measurements_the_spec_yardstick_on_its_h100():
    s = sp.estimate([], flat("none"), "H100", size=224)
    assert s.clips_per_s == pytest.approx(497.0) and s.exact
    s = sp.estimate([], flat("tim", "pem", 0.5), "H100", size=224)
    assert s.clips_per_s == pytest.approx(497.0) and "lower bound" in s.note


def test_the_committed_h200_rows_put_an_a10g_at_least_three_times_below_an_h100():
    """The issue's yardstick on the real table: an A10G trains these networks at well under a third of an
    H100's rate, an A100 (40 GB) at under two thirds."""
    table = sp.load_throughput(sp.throughput_files(REPO))
    convs = sp.load_conv_shares(REPO)
    for net in (flat("none"), flat("tsm"), flat("tsm", "pem"), flat("tim", "pem", 0.5)):
        rate = {g: sp.estimate(table, net, g, size=224, convs=convs).clips_per_s for g in ("H100", "A100", "A10G")}
        assert rate["H100"] >= 3 * rate["A10G"] and rate["H100"] >= 1.5 * rate["A100"], rate
