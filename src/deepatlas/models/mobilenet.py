"""A MobileNet-style classifier (MAP 4.1; Howard et al. 2017) built from depthwise separable
convolutions: each block costs about 1/N + 1/9 of the full 3x3 conv it replaces."""

from __future__ import annotations

from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.conv import DepthwiseSeparableConv2d


@register_model
def mobilenet(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
              width: int = 32) -> nn.Module:
    """3x3 stem, then separable blocks ``w -> 2w (stride 2) -> 2w -> 4w (stride 2) -> 4w``,
    global average pooling, linear."""
    plan = [(width, 2 * width, 2), (2 * width, 2 * width, 1), (2 * width, 4 * width, 2),
            (4 * width, 4 * width, 1)]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU()]
    layers += [DepthwiseSeparableConv2d(cin, cout, 3, stride, padding=1, norm_act=True)
               for cin, cout, stride in plan]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes)]
    return nn.Sequential(*layers)
