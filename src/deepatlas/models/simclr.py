"""SimCLR's network (MAP 7.4; Chen et al. 2020): an encoder f and a projection head g.

    h = f(x)   # (B, 4w): the representation kept for downstream tasks
    z = g(h)   # (B, P): what NT-Xent compares; g = Linear -> BN -> ReLU -> Linear

The encoder is the CIFAR-style ResNet of :mod:`deepatlas.models.resnet` without its
classifier, so that "the same encoder trained supervised from scratch" is the ``resnet``
model of the same depth and width. The head is thrown away after pre-training: the paper
found h, before the head, several points better for linear evaluation than z.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.models.resnet import CifarResNet


class SimCLRNet(nn.Module):
    def __init__(self, in_channels: int, depth: int, width: int, projection_dim: int) -> None:
        super().__init__()
        self.encoder = CifarResNet(in_channels, 1, depth, width)
        features = self.encoder.head.in_features
        self.encoder.head = nn.Identity()  # f ends at the pooled features
        self.projector = nn.Sequential(nn.Linear(features, features), nn.BatchNorm1d(features),
                                       nn.ReLU(), nn.Linear(features, projection_dim))
        self.feature_dim = features

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 4w)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, P)
        return self.projector(self.features(x))


@register_model(kind="embedding")
def simclr_resnet(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                  depth: int = 8, width: int = 32, projection_dim: int = 128) -> nn.Module:
    """A ResNet-``depth`` encoder of base width ``width`` and a 2-layer projection head to
    ``projection_dim``; ``num_classes`` is unused (no labels in pre-training)."""
    return SimCLRNet(in_channels, depth, width, projection_dim)
