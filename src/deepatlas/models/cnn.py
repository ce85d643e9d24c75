"""A small convolutional net (MAP 2.2, feed-forward CNN): the first model past the MLP."""

from __future__ import annotations

from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.dropout import Dropout


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


@register_model
def cnn(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: int = 32,
        dropout: float = 0.0) -> nn.Module:
    """conv-conv-pool, conv-pool, global average pool, linear: ``width`` -> ``2 width`` maps."""
    layers = _conv_bn_relu(in_channels, width) + _conv_bn_relu(width, width)
    layers.append(nn.MaxPool2d(2))  # (B, w, H/2, W/2)
    layers += _conv_bn_relu(width, 2 * width)
    if image_size >= 8:
        layers.append(nn.MaxPool2d(2))  # (B, 2w, H/4, W/4)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, 2w)
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(nn.Linear(2 * width, num_classes))
    return nn.Sequential(*layers)
