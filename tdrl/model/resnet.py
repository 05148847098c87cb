"""torchvision-structured ResNets with a width multiplier.

The module tree and parameter names are exactly torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
..., ``fc``), built from torchvision's own ``BasicBlock``/``Bottleneck``, so ImageNet state dicts
load unchanged at width 1.0. A width below 1 scales every stage's channels for CPU-scale runs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from tdrl.config.model import Backbone

# backbone -> (block type, blocks per stage), as in torchvision.models.resnet; the names allowed are
# ModelConfig.backbone's type (a test checks that this table builds every one of them).
ARCHS: dict[Backbone, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """A torchvision ResNet (same names, same init) whose stage widths are ``width`` times 64..512."""

    def __init__(self, name: str, width: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        if name not in ARCHS:
            raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(ARCHS)}")
        block, layers = ARCHS[name]
        planes = [max(1, int(p * width)) for p in (64, 128, 256, 512)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = planes[3] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        # torchvision's initialisation, so a randomly initialised backbone trains like theirs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images or folded frames ``(B, 3, H, W)`` -> scores ``(B, num_classes)``, as torchvision's."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)
