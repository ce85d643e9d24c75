"""ResNets: the CIFAR-style family built from the source's residual block (MAP 4.1, 5.1), and
torchvision's ImageNet ResNets for the curriculum's last step (MAP 8).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import register_model
from deepatlas.nn.residual import ResidualBlockBN, conv3x3


class CifarResNet(nn.Module):
    """He et al. (2016) section 4.2: a 3x3 stem, three stages of ``n`` blocks with widths
    ``w, 2w, 4w`` (stride 2 between stages), global average pooling, a linear classifier.
    Depth = 6n + 2 weighted layers (ResNet-20 is n = 3)."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, width: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise UserError(f"model.depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ResidualBlockBN(cin, cout, stride))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Each block starts as the identity (last BN scale 0): a known help for deep ResNets.
        for block in blocks:
            nn.init.zeros_(block.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))  # (B, 4w, H/4, W/4)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))  # (B, K)


@register_model
def resnet(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10, depth: int = 20,
           width: int = 16) -> nn.Module:
    """CIFAR-style ResNet-``depth`` with base width ``width``."""
    return CifarResNet(in_channels, num_classes, depth, width)


def _torchvision_resnet(builder, in_channels: int, num_classes: int) -> nn.Module:
    import torchvision

    model = builder(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    # Zero-init the last BN of each block, as torchvision's reference recipe does.
    for m in model.modules():
        if isinstance(m, torchvision.models.resnet.Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, torchvision.models.resnet.BasicBlock):
            nn.init.zeros_(m.bn2.weight)
    return model


@register_model
def resnet18(*, in_channels: int = 3, image_size: int = 224, num_classes: int = 1000) -> nn.Module:
    """torchvision's ImageNet ResNet-18, randomly initialised (no weights are downloaded)."""
    import torchvision  # at call time: importing torchvision costs every process 3 s

    return _torchvision_resnet(torchvision.models.resnet18, in_channels, num_classes)


@register_model
def resnet50(*, in_channels: int = 3, image_size: int = 224, num_classes: int = 1000) -> nn.Module:
    """torchvision's ImageNet ResNet-50, randomly initialised (no weights are downloaded)."""
    import torchvision

    return _torchvision_resnet(torchvision.models.resnet50, in_channels, num_classes)
