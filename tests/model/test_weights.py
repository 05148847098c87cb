"""ImageNet weights come from a local file; torchvision's state dicts load with only new keys missing."""

import pytest
import torch
import torchvision

from tdrl.config.model import ModelConfig
from tdrl.model.network import TDRLNet, build_model
from tdrl.model.weights import WeightsError, imagenet_cache_path, load_imagenet


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_torchvision_state_dict_loads(tmp_path, backbone):
    reference = getattr(torchvision.models, backbone)()
    path = tmp_path / f"{backbone}.pth"
    torch.save(reference.state_dict(), path)
    model = TDRLNet(ModelConfig(backbone=backbone))
    missing = load_imagenet(model, str(path), backbone)
    assert missing and all(k.startswith("fc.") or ".enhance." in k or ".temporal." in k for k in missing)
    assert torch.equal(model.layer3[-1].conv2.weight, reference.layer3[-1].conv2.weight)
    assert torch.equal(model.bn1.running_var, reference.bn1.running_var)


def test_build_model_reads_pretrained_path(tmp_path):
    reference = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": reference.state_dict()}, path)  # wrapped checkpoints are accepted
    model = build_model(ModelConfig(backbone="resnet18", pretrained=str(path)))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)


def test_missing_file_names_the_path_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    expected = imagenet_cache_path("resnet50")
    assert str(expected).startswith(str(tmp_path))
    with pytest.raises(WeightsError) as err:
        build_model(ModelConfig(pretrained="imagenet"))
    assert str(expected) in str(err.value) and "resnet50-" in str(err.value) and "--pretrained" in str(err.value)


def test_other_architecture_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit backbone resnet50"):
        load_imagenet(TDRLNet(ModelConfig()), str(path), "resnet50")


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_imagenet(TDRLNet(ModelConfig(backbone="resnet18")), str(path), "resnet18")


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "obj": object()}, path)  # needs full unpickling
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_imagenet(TDRLNet(ModelConfig(backbone="resnet18")), str(path), "resnet18")
