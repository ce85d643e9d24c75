"""Residual blocks (MAP 4.1, 5.1).

The source gives the block as ``conv3x3 -> ReLU -> conv3x3, add the identity, ReLU``:
``y = relu(x + F(x))``. The identity path carries the gradient past ``F`` unchanged
(dy/dx = 1 + dF/dx), which is why very deep residual nets still train.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """The source's block, exactly: ``relu(x + conv3x3(relu(conv3x3(x))))``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        residual = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(x + residual)


class ResidualBlockBN(nn.Module):
    """The source's block with BatchNorm after each conv (He et al. 2016), as ResNets use it.

    ``y = relu(shortcut(x) + BN(conv(relu(BN(conv(x))))))``; when the block changes width or
    stride, the shortcut is a 1x1 conv + BN so that the sum is defined.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(self.shortcut(x) + out)
