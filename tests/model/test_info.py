"""Parameter and GMAC counts: the paper's 33 GMACs for an 8-frame ResNet-50 TDRL at 224."""

import json

import pytest

from tdrl.cli import main
from tdrl.config.model import ModelConfig
from tdrl.model.info import count


@pytest.mark.parametrize("frames,expected,tol", [(8, 33.0, 1.0), (16, 66.0, 2.0)])
def test_resnet50_tdrl_gmacs(frames, expected, tol):
    info = count(ModelConfig(frames=frames), 224)
    assert abs(info["gmacs"] - expected) <= tol


def test_tdrl_adds_under_one_percent_macs_over_tsn():
    tdrl = count(ModelConfig(), 224)["gmacs"]
    tsn = count(ModelConfig(temporal="none", enhance="none", td_ratio=0.0), 224)["gmacs"]
    assert 0 < tdrl - tsn < 0.01 * tsn


def test_cli_json(capsys):
    assert main(["model-info", "--backbone", "resnet18", "--width", "0.25", "--frames", "4", "--size", "64",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["backbone"] == "resnet18" and out["frames"] == 4
    assert out["params"] == count(ModelConfig(backbone="resnet18", width=0.25, frames=4), 64)["params"]
    assert out["gmacs"] > 0


def test_cli_bad_value_names_the_field(capsys):
    assert main(["model-info", "--td-ratio", "1.5"]) == 2
    assert "model.td_ratio=1.5" in capsys.readouterr().err
