"""tdrl's ResNet at its default width is torchvision's: the same parameter names and shapes."""

from __future__ import annotations

import pytest
import torchvision

from tdrl.model.resnet import ResNet


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_default_width_has_torchvisions_names_and_shapes(name):
    ours = {k: tuple(v.shape) for k, v in ResNet(name, num_classes=10).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in getattr(torchvision.models, name)(weights=None, num_classes=10)
              .state_dict().items()}
    assert ours == theirs
    assert ours["layer2.0.conv1.weight"][0] == 128  # stage widths 64, 128, 256, 512 (x4 for Bottleneck)
