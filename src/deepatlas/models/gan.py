"""Generative adversarial networks (MAP 4.3): DCGAN parts and ProGAN's building blocks.

DCGAN (Radford et al. 2016): transposed convs with BatchNorm and ReLU up from a noise vector;
strided convs with LeakyReLU down to one logit. Works for 28 or 32 px images.

ProGAN (Karras et al. 2018) grows both networks 4 -> 8 -> 16 -> 32 px. While a new resolution
fades in, the output blends ``alpha * new + (1 - alpha) * upsampled(old)``; pixel norm,
minibatch standard deviation and equalised learning rate keep the game stable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.models.registry import register_model

# --------------------------------------------------------------------------- DCGAN


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 64, channels: int = 1, image_size: int = 32,
                 width: int = 64) -> None:
        super().__init__()
        if image_size not in (28, 32):
            raise ValueError(f"DCGAN here makes 28 or 32 px images, not {image_size}")
        self.z_dim, self.image_size = z_dim, image_size
        start = image_size // 4  # 7 or 8
        self.project = nn.Sequential(nn.Linear(z_dim, 2 * width * start * start, bias=False),
                                     nn.BatchNorm1d(2 * width * start * start), nn.ReLU())
        self.shape = (2 * width, start, start)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(),  # (B, w, 2s, 2s)
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh(),  # (B, C, 4s, 4s) in [-1, 1]
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, C, H, W)
        return self.up(self.project(z).view(-1, *self.shape))


class DCGANDiscriminator(nn.Module):
    """Returns one logit (or, with ``batch_norm=False``, a WGAN critic score) per image.
    WGAN-GP needs no BatchNorm in the critic: the penalty is per sample."""

    def __init__(self, channels: int = 1, image_size: int = 32, width: int = 64,
                 batch_norm: bool = True) -> None:
        super().__init__()
        norm = nn.BatchNorm2d(2 * width) if batch_norm else nn.LayerNorm(
            [2 * width, image_size // 4, image_size // 4])
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), norm, nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * width * (image_size // 4) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B,)
        return self.head(self.features(x).flatten(1)).squeeze(1)


# --------------------------------------------------------------------------- ProGAN parts


class PixelNorm(nn.Module):
    """``b = a / sqrt(mean_c a_c^2 + eps)`` at every pixel: feature vectors of unit scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStdDev(nn.Module):
    """Appends one channel: the standard deviation of each feature over the batch, averaged,
    so the discriminator can see when a batch of fakes lacks variety (mode collapse)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.std(dim=0, unbiased=False).mean()  # one scalar for the batch
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class EqualizedConv2d(nn.Module):
    """Weights drawn from N(0, 1) and scaled at run time by He's constant
    ``c = sqrt(2 / fan_in)``, so every layer learns at the same speed under Adam."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = math.sqrt(2 / (in_ch * kernel_size * kernel_size))
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(EqualizedConv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2), PixelNorm(),
                         EqualizedConv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2), PixelNorm())


class ProGenerator(nn.Module):
    """``forward(z, stage, alpha)``: stage 0 makes 4 px images, stage s makes 4 * 2^s px."""

    def __init__(self, z_dim: int = 64, channels: int = 1, width: int = 64, stages: int = 4):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.input = nn.Sequential(PixelNorm(), EqualizedLinear(z_dim, width * 16,
                                                                gain=math.sqrt(2) / 4),
                                   nn.LeakyReLU(0.2))
        self.first = nn.Sequential(EqualizedConv2d(width, width, 3, padding=1),
                                   nn.LeakyReLU(0.2), PixelNorm())
        self.blocks = nn.ModuleList(_conv_block(width, width) for _ in range(stages - 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(width, channels, 1) for _ in range(stages))

    def forward(self, z: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        x = self.first(self.input(z).view(-1, self.width, 4, 4))  # (B, w, 4, 4)
        if stage == 0:
            return self.to_rgb[0](x)
        for block in self.blocks[:stage - 1]:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"))
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        new = self.to_rgb[stage](self.blocks[stage - 1](up))
        old = self.to_rgb[stage - 1](up)  # the previous resolution's output, upsampled
        return alpha * new + (1 - alpha) * old


class ProDiscriminator(nn.Module):
    """The generator mirrored: ``forward(x, stage, alpha)`` for 4 * 2^stage px images."""

    def __init__(self, channels: int = 1, width: int = 64, stages: int = 4) -> None:
        super().__init__()
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualizedConv2d(channels, width, 1),
                                                    nn.LeakyReLU(0.2)) for _ in range(stages))
        self.blocks = nn.ModuleList(nn.Sequential(
            EqualizedConv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
            EqualizedConv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for _ in range(stages - 1))
        self.final = nn.Sequential(MinibatchStdDev(), EqualizedConv2d(width + 1, width, 3, 1),
                                   nn.LeakyReLU(0.2), EqualizedConv2d(width, width, 4),
                                   nn.LeakyReLU(0.2), nn.Flatten(), EqualizedLinear(width, 1, 1))

    def forward(self, x: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        h = self.from_rgb[stage](x)
        if stage > 0:
            h = self.blocks[stage - 1](h)
            skip = self.from_rgb[stage - 1](F.avg_pool2d(x, 2))  # the old path, downsampled
            h = alpha * h + (1 - alpha) * skip
            for block in reversed(self.blocks[:stage - 1]):
                h = block(h)
        return self.final(h).squeeze(1)  # (B,)


# --------------------------------------------------------------------------- growth schedule


def is_progressive(generator: nn.Module) -> bool:
    """True for a growing (ProGAN) network, whose forward takes ``stage`` and ``alpha``."""
    return isinstance(generator, (ProGenerator, ProDiscriminator))


class Growth:
    """ProGAN's schedule: the run's steps split evenly over the stages; the first
    ``fade`` share of every stage after the first fades the new layers in (alpha 0 -> 1)."""

    def __init__(self, stages: int, total_steps: int, fade: float) -> None:
        self.stages, self.per_stage, self.fade = stages, max(1, total_steps // stages), fade

    def at(self, step: int) -> tuple[int, float]:
        """(stage, alpha) at training step ``step``."""
        stage = min(step // self.per_stage, self.stages - 1)
        into = (step - stage * self.per_stage) / self.per_stage
        alpha = 1.0 if stage == 0 or self.fade == 0 else min(1.0, into / self.fade)
        return stage, alpha


def at_stage(x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
    """Real images (B, C, H, W) at stage ``stage``'s resolution (4 * 2^stage), blended during a
    fade-in with the previous resolution upsampled, as the generator's output is."""
    size = 4 * 2**stage
    factor = x.shape[-1] // size
    low = F.avg_pool2d(x, factor) if factor > 1 else x
    if alpha < 1 and stage > 0:
        coarse = F.interpolate(F.avg_pool2d(low, 2), scale_factor=2, mode="nearest")
        low = alpha * low + (1 - alpha) * coarse
    return low


# --------------------------------------------------------------------------- registry entries
# kind "gan": built like the classifiers, from the data's shape; num_classes is unused.


@register_model(kind="gan")
def dcgan_generator(*, in_channels: int = 1, image_size: int = 32, num_classes: int = 0,
                    z_dim: int = 64, width: int = 64) -> nn.Module:
    return DCGANGenerator(z_dim, in_channels, image_size, width)


@register_model(kind="gan")
def dcgan_discriminator(*, in_channels: int = 1, image_size: int = 32, num_classes: int = 0,
                        width: int = 64, batch_norm: bool = True) -> nn.Module:
    """``batch_norm=False`` gives the WGAN-GP critic (LayerNorm instead)."""
    return DCGANDiscriminator(in_channels, image_size, width, batch_norm)


@register_model(kind="gan")
def progan_generator(*, in_channels: int = 1, image_size: int = 32, num_classes: int = 0,
                     z_dim: int = 64, width: int = 64) -> nn.Module:
    """Grows 4 -> ``image_size`` px (a power of two)."""
    return ProGenerator(z_dim, in_channels, width, stages=int(math.log2(image_size)) - 1)


@register_model(kind="gan")
def progan_discriminator(*, in_channels: int = 1, image_size: int = 32, num_classes: int = 0,
                         width: int = 64) -> nn.Module:
    return ProDiscriminator(in_channels, width, stages=int(math.log2(image_size)) - 1)
