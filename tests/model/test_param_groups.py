"""Optimizer parameter groups (spec.md "Parameter groups") and the seed-pairing of study rows."""

import pytest
import torch
import torch.nn as nn

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet
from tdrl.model.tim import TemporalInteraction
from tdrl.study.definitions import STUDIES

TINY = dict(width=0.125, reduction=4, num_classes=5, frames=3, dropout=0.0)


def _groups(model: TDRLNet, policy: str) -> dict[str, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {g["group"]: {names[id(p)] for p in g["params"]} for g in model.param_groups(1e-4, policy)}


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("enhance", ["pem", "mem"])
def test_weights_policy_decays_kernels_only(backbone, enhance):
    model = TDRLNet(ModelConfig(backbone=backbone, enhance=enhance, temporal="tim", **TINY))
    groups = _groups(model, "weights")
    # Expected membership derived independently from each parameter's owning module.
    expect_decay, expect_free = set(), set()
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            kernel = p_name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear, TemporalInteraction))
            (expect_decay if kernel else expect_free).add(full)
    assert groups["decay"] == expect_decay
    assert groups["no_decay"] == expect_free
    assert groups["decay"].isdisjoint(groups["no_decay"])
    assert groups["decay"] | groups["no_decay"] == {n for n, _ in model.named_parameters()}
    # Spot checks by name: BN weight/bias and every bias free; TIM kernel, PEM/MEM linear weights and fc decayed.
    assert "bn1.weight" in groups["no_decay"] and "layer1.0.bn2.bias" in groups["no_decay"]
    assert "fc.bias" in groups["no_decay"] and "fc.weight" in groups["decay"]
    assert "layer2.0.temporal.weight" in groups["decay"]
    assert "layer2.0.enhance.w_a.weight" in groups["decay"] and "layer2.0.enhance.w_a.bias" in groups["no_decay"]
    assert "layer1.0.conv1.weight" in groups["decay"]


def test_group_decay_values_and_all_policy():
    model = TDRLNet(ModelConfig(**TINY))
    decay, free = model.param_groups(3e-4, "weights")
    assert decay["weight_decay"] == 3e-4 and free["weight_decay"] == 0.0
    (everything,) = model.param_groups(3e-4, "all")
    assert everything["weight_decay"] == 3e-4
    assert len(everything["params"]) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="decay_policy"):
        model.param_groups(1e-4, "none")


def test_sgd_step_leaves_bn_untouched_by_decay():
    """With zero gradients only decay moves parameters: BN/bias stay, conv weights shrink."""
    model = TDRLNet(ModelConfig(**TINY))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(2.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.param_groups(0.1, "weights"), lr=1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["bn1.weight"], before["bn1.weight"])
    assert torch.equal(after["fc.bias"], before["fc.bias"])
    assert torch.allclose(after["conv1.weight"], before["conv1.weight"] * 0.9)


def test_unknown_parameter_is_refused():
    model = TDRLNet(ModelConfig(**TINY))
    model.layer1[0].extra = nn.Module()
    model.layer1[0].extra.scale = nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match=r"layer1\.0\.extra\.scale"):
        model.param_groups(1e-4, "weights")


def _row_models():
    seen = {}
    for study in STUDIES.values():
        for row in study.rows:
            flat = study.overrides(row.key)
            seen[f"{study.name}-{row.key}"] = {k.split(".", 1)[1]: v for k, v in flat.items()}
    return seen


def test_backbone_initial_weights_do_not_depend_on_the_row():
    """Pairing rows by seed needs the same backbone draw in every row: modules a row adds (PEM, MEM,
    TIM) are created after the backbone and must not shift its random stream."""
    rows = _row_models()
    reference = None
    for name, over in rows.items():
        torch.manual_seed(7)
        model = TDRLNet(ModelConfig(**{**TINY, **over}))
        backbone = {n: p for n, p in model.state_dict().items() if ".enhance." not in n and ".temporal." not in n}
        if reference is None:
            reference = backbone
            continue
        assert backbone.keys() == reference.keys(), name
        for key, value in backbone.items():
            assert torch.equal(value, reference[key]), f"{name}: {key} differs from the first row's draw"
    torch.manual_seed(8)
    other = TDRLNet(ModelConfig(**TINY)).state_dict()["conv1.weight"]
    assert not torch.equal(other, reference["conv1.weight"])  # the seed does matter
