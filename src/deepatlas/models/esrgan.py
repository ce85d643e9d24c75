"""ESRGAN (MAP 6.1, super-resolution): Wang et al., "ESRGAN: Enhanced Super-Resolution
Generative Adversarial Networks" (ECCV workshops 2018).

The generator, ``rrdb``, is the paper's RRDBNet:

- a 3x3 conv to ``width`` features, then ``blocks`` **residual-in-residual dense blocks**
  (RRDB), a 3x3 conv and a long skip around the whole trunk;
- an RRDB is three residual dense blocks (RDB) and a skip around them; an RDB is five 3x3
  convs, each fed the concatenation of the block's input and every earlier conv's output
  (``growth`` channels each), LeakyReLU(0.2) between;
- **residual scaling**: each RDB adds ``0.2 * F(x)`` to its input and each RRDB ``0.2 * F(x)``,
  and the convs start at a tenth of Kaiming's scale: a deep trunk without normalisation that
  starts close to the identity and so trains stably;
- **no BatchNorm** anywhere: the paper removes it because BN statistics differ between
  training patches and whole test images and cause artefacts;
- upsampling by nearest-neighbour x2 then a 3x3 conv, ``log2(scale)`` times, then two convs at
  high resolution.

The paper's size is width 64, growth 32 and 23 RRDBs (16.7 M parameters); the defaults here
(32, 16, 3: 0.58 M) train on two CPU cores. ``bicubic_skip`` (on by default; off is the
paper) adds the bicubic enlargement of the input to the output, so the network learns only
the residual detail, the global residual of VDSR (Kim et al. 2016): at CPU budgets it starts
near a bicubic enlargement instead of at grey (torch's bicubic, a = -0.75, a little sharper
than the PIL a = -0.5 baseline it is scored beside).

``esrgan-discriminator`` is the VGG-style critic of the paper's GAN stage: pairs of 3x3 and
strided 4x4 convs with BatchNorm and LeakyReLU, then two linear layers; global average
pooling before them (the paper flattens a fixed 128 px patch) lets it take any patch size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.models.registry import register_model

RESIDUAL_SCALE = 0.2  # ESRGAN's beta: each dense block adds 0.2 * F(x)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """x_k = lrelu(conv_k([x, x_1, ..., x_{k-1}])) for k = 1..4; out = x + 0.2 * conv_5([x,
    x_1, ..., x_4])."""

    def __init__(self, width: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(width + k * growth, growth, 3, padding=1)
                                    for k in range(4)])
        self.fuse = nn.Conv2d(width + 4 * growth, width, 3, padding=1)
        self.act = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs:
            features.append(self.act(conv(torch.cat(features, 1))))
        return x + RESIDUAL_SCALE * self.fuse(torch.cat(features, 1))


class RRDB(nn.Module):
    """Residual in residual: out = x + 0.2 * RDB_3(RDB_2(RDB_1(x)))."""

    def __init__(self, width: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualDenseBlock(width, growth) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.blocks(x)


class RRDBNet(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 32, growth: int = 16, blocks: int = 3,
                 scale: int = 4, bicubic_skip: bool = True) -> None:
        super().__init__()
        self.scale, self.bicubic_skip = scale, bicubic_skip
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.trunk = nn.Sequential(*[RRDB(width, growth) for _ in range(blocks)])
        self.trunk_out = nn.Conv2d(width, width, 3, padding=1)
        self.ups = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1)
                                  for _ in range(int(math.log2(scale)))])
        self.hr_conv = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, in_channels, 3, padding=1)
        self.act = _lrelu()
        # How far (in input pixels) an output pixel sees: 1 per 3x3 conv at input resolution
        # (head, 15 per RRDB, trunk_out), 2 for the 4 convs after upsampling together (1/2
        # + 3/4, rounded up); the bicubic skip (2 px) runs in parallel. Tiled inference
        # (deepatlas upscale --tile) overlaps tiles by this much, so tiles join exactly.
        self.receptive_radius = 4 + 15 * blocks
        for m in self.trunk.modules():
            if isinstance(m, nn.Conv2d):  # ESRGAN's init: Kaiming, scaled by 0.1
                nn.init.kaiming_normal_(m.weight, a=0.2)
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) in [0, 1]
        features = self.head(x)  # (B, W, h, w)
        features = features + self.trunk_out(self.trunk(features))
        for conv in self.ups:  # x2 each: (B, W, 2h, 2w), then (B, W, 4h, 4w)
            features = self.act(conv(F.interpolate(features, scale_factor=2, mode="nearest")))
        out = self.out(self.act(self.hr_conv(features)))  # (B, C, sh, sw)
        if self.bicubic_skip:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic",
                                      align_corners=False)
        return out


class VGGDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), _lrelu()]
        cin = width
        for i, cout in enumerate([width, 2 * width, 4 * width, 8 * width]):
            if i:  # a 3x3 conv at each new width, then a strided 4x4 that halves the size
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                           nn.BatchNorm2d(cout), _lrelu()]
            layers += [nn.Conv2d(cout, cout, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), _lrelu()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin, 100), _lrelu(), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B,) raw scores
        return self.classifier(self.features(x).mean((2, 3))).squeeze(1)


@register_model(kind="upscale")
def rrdb(in_channels: int = 3, image_size: int = 64, num_classes: int = 0, width: int = 32,
         growth: int = 16, blocks: int = 3, scale: int = 4, bicubic_skip: bool = True
         ) -> nn.Module:
    """ESRGAN's RRDBNet generator, enlarging ``scale`` times (2, 4 or 8)."""
    if scale not in (2, 4, 8):
        raise ValueError(f"model.scale must be 2, 4 or 8 (x2 upsampling steps), got {scale}")
    return RRDBNet(in_channels, width, growth, blocks, scale, bicubic_skip)


@register_model(kind="upscale-critic")
def esrgan_discriminator(in_channels: int = 3, image_size: int = 64, num_classes: int = 1,
                         width: int = 32) -> nn.Module:
    """ESRGAN's VGG-style discriminator, one raw score per image."""
    return VGGDiscriminator(in_channels, width)
