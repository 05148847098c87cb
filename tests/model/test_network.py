"""The whole network: every configuration trains on CPU, TSN equivalence, TD wiring, gradients."""

import itertools

import pytest
import torch

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet
from tdrl.model.resnet import ResNet
from tdrl.model.td_loss import temporal_diversity

TINY = dict(width=0.125, reduction=4, num_classes=5, frames=3, dropout=0.0)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def _enhance_variants():
    yield dict(enhance="none")
    for pos in ("before", "after"):
        yield dict(enhance="mem", enhance_position=pos)
        for init in ("last", "first", "zeros"):
            yield dict(enhance="pem", enhance_position=pos, mem_init=init)


COMBOS = [
    dict(backbone=bb, temporal=tm, **enh, **td)
    for bb, tm, enh, td in itertools.product(
        ("resnet18", "resnet50"), ("tim", "tsm", "none"), list(_enhance_variants()),
        (dict(td_ratio=0.0), dict(td_ratio=0.5, td_position="before"), dict(td_ratio=0.5, td_position="after")))
]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_every_configuration_forward_backward(combo):
    torch.manual_seed(0)
    model = TDRLNet(tiny(**combo))
    clips = torch.randn(2, 3, 3, 32, 32)  # (N, T, C, H, W)
    scores, td = model(clips)
    assert scores.shape == (2, 5) and td.shape == ()
    assert torch.isfinite(scores).all()
    assert (td.item() > 0) == (combo["td_ratio"] > 0)
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1])) + 2e-4 * td
    loss.backward()
    assert model.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_every_new_parameter_gets_a_gradient(backbone):
    torch.manual_seed(0)
    # width 0.25 gives PEM at least 4 reduced units; at 2 units a ReLU can be dead for a whole batch.
    model = TDRLNet(tiny(backbone=backbone, width=0.25))
    scores, td = model(torch.randn(4, 3, 3, 32, 32))
    (scores.logsumexp(1).sum() + td).backward()
    new = {n: p for n, p in model.named_parameters() if ".enhance." in n or ".temporal." in n}
    assert len(new) > 0
    dead = [n for n, p in new.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []


def test_tsn_configuration_equals_plain_resnet_per_frame():
    torch.manual_seed(0)
    cfg = tiny(backbone="resnet18", temporal="none", enhance="none", td_ratio=0.0)
    model = TDRLNet(cfg).eval()
    plain = ResNet("resnet18", cfg.width, cfg.num_classes).eval()
    plain.load_state_dict(model.state_dict())  # same names, nothing new in TSN
    clips = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        scores, td = model(clips)
        frame_scores = plain(clips.flatten(0, 1)).view(2, 3, -1).mean(1)
    assert torch.allclose(scores, frame_scores, atol=1e-5) and td.item() == 0.0


def test_td_term_sums_the_chosen_blocks():
    torch.manual_seed(0)
    cfg = tiny(backbone="resnet18", td_blocks=("layer3.-1", "layer4.0"), td_ratio=0.25)
    model = TDRLNet(cfg).eval()
    seen = {}

    def grab(name):
        def hook(module, inputs, output):
            seen[name] = output
        return hook

    model.layer3[1].temporal.register_forward_hook(grab("layer3.1"))
    model.layer4[0].temporal.register_forward_hook(grab("layer4.0"))
    with torch.no_grad():
        _, td = model(torch.randn(2, 3, 3, 64, 64))
    expected = sum(temporal_diversity(z, 3, round(0.25 * z.shape[1])) for z in seen.values())
    assert torch.allclose(td, expected, atol=1e-6)
    assert [b.td_channels > 0 for b in model.layer4] == [True, False]


def test_wrong_number_of_frames_is_refused():
    model = TDRLNet(tiny())
    with pytest.raises(ValueError, match="built for 3 frames"):
        model(torch.randn(1, 4, 3, 32, 32))


def test_td_block_index_out_of_range():
    with pytest.raises(ValueError, match="layer4 of resnet18 has 2 blocks"):
        TDRLNet(tiny(backbone="resnet18", td_blocks=("layer4.5",)))


def test_parameter_names_keep_torchvision_layout():
    names = set(TDRLNet(tiny(backbone="resnet50")).state_dict())
    assert {"conv1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
            "layer4.2.bn3.running_mean", "fc.weight"} <= names
    assert "layer1.0.temporal.weight" in names and "layer2.3.enhance.w_g.weight" in names


@pytest.mark.parametrize("enhance,temporal", [("pem", "tim"), ("pem", "tsm"), ("none", "tim")])
def test_fast_paths_equal_straightforward_paths(enhance, temporal):
    from tdrl.model.reference import straightforward

    torch.manual_seed(0)
    model = TDRLNet(tiny(backbone="resnet50", width=0.25, enhance=enhance, temporal=temporal)).eval()
    for name, p in model.named_parameters():  # random TIM kernels and PEM weights, not the init
        if ".temporal." in name or ".enhance." in name:
            torch.nn.init.normal_(p, std=0.3)
    slow = straightforward(model)
    clips = torch.randn(2, 3, 3, 48, 48)
    with torch.no_grad():
        fast_scores, fast_td = model(clips)
        slow_scores, slow_td = slow(clips)
    assert torch.allclose(fast_scores, slow_scores, atol=1e-5, rtol=1e-5)
    assert torch.allclose(fast_td, slow_td, atol=1e-5, rtol=1e-5)
    # Shared parameters: training the straightforward network trains the fast one.
    assert {id(p) for p in slow.parameters()} == {id(p) for p in model.parameters()}
