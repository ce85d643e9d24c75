"""U-Net (MAP 6.1, segmentation): Ronneberger, Fischer and Brox, MICCAI 2015.

A contracting path of ``depth`` stages (two 3x3 conv-BN-ReLU, then 2x2 max-pool, channels
doubling: ``width * 2^i``) and an expanding path that mirrors it: a 2x2 transposed conv
doubles the resolution, the result is **concatenated with the contracting path's features at
that resolution** (the skip connection), and two 3x3 conv-BN-ReLU follow. A 1x1 conv gives
per-pixel class logits.

The skips carry the fine, early features to the decoder, which otherwise has only the coarse
bottleneck to place boundaries from: ``skips=False`` drops them (the decoder convs then take
half the channels) and is the ablation of the lab's ``unet-skips`` experiment. Padding keeps
sizes ("same" convs), unlike the paper's valid convs and cropping, so that output = input
size; BatchNorm after each conv, as is usual since 2015. Input sides must divide by
``2^depth``.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):  # bias-free: the BatchNorm after each conv has its own shift
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 16,
                 depth: int = 3, skips: bool = True) -> None:
        super().__init__()
        self.depth, self.skips = depth, skips
        widths = [width * 2 ** i for i in range(depth + 1)]  # the bottleneck is widths[depth]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])] + [
            _double_conv(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_double_conv(widths[i] * (2 if skips else 1), widths[i])
                                    for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K, H, W)
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise ValueError(f"U-Net of depth {self.depth} needs sides divisible by "
                             f"{2 ** self.depth}, got {tuple(x.shape[-2:])}")
        features = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))  # (B, width * 2^i, H / 2^i, W / 2^i)
            features.append(x)
        x = features.pop()  # the bottleneck
        for up, merge in zip(self.up, self.merge):
            x = up(x)  # twice the resolution, half the channels
            skip = features.pop()
            x = merge(torch.cat([skip, x], dim=1) if self.skips else x)
        return self.head(x)


@register_model(kind="dense")
def unet(in_channels: int = 3, image_size: int = 64, num_classes: int = 2, width: int = 16,
         depth: int = 3, skips: bool = True) -> nn.Module:
    """U-Net with ``depth`` poolings; ``skips=False`` is the no-skip ablation."""
    if image_size % 2 ** depth:
        raise ValueError(f"image_size {image_size} must be divisible by 2^depth = {2 ** depth}")
    return UNet(in_channels, num_classes, width, depth, skips)
