"""Batched augmentation for in-memory image sets, done as tensor ops on the batch's device.

A DataLoader that builds a PIL image per sample spends most of a small model's step on Python;
here a whole batch is cropped and flipped at once. ``crop`` is the standard "pad by p and take
a random H x W window" (p = H/8: 4 px at 32, 3 px at 28), ``flip`` a horizontal flip with
probability 1/2.
"""

from __future__ import annotations

import math

import torch

AUGMENTATIONS = ("none", "flip", "crop", "crop-flip", "source")


def source_pipeline():
    """The source's augmentation (MAP 5.2), exactly: RandomHorizontalFlip,
    ColorJitter(0.2, 0.2, 0.2), RandomAffine(15), from torchvision.transforms.v2."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomHorizontalFlip(), v2.ColorJitter(0.2, 0.2, 0.2),
                       v2.RandomAffine(degrees=15)])


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of a zero-padded batch (B, C, H, W) back to (B, C, H, W)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Apply augmentation ``mode`` (one of :data:`AUGMENTATIONS`) to a uint8 batch.

    ``source`` runs torchvision's per-image pipeline on each image (each draws its own
    parameters, from torch's global RNG); the others are batched tensor ops drawing from
    ``generator``.
    """
    if mode == "source":
        pipeline = source_pipeline()
        return torch.stack([pipeline(image) for image in x])
    if mode in ("crop", "crop-flip"):
        x = random_crop(x, max(1, x.shape[-1] // 8), generator)
    if mode in ("flip", "crop-flip"):
        x = random_flip(x, generator)
    return x


def crop_flip_theta(area: torch.Tensor, ratio: torch.Tensor, cx: torch.Tensor,
                    cy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """``affine_grid``'s (B, 2, 3) matrices for crops of area fraction ``area`` and aspect
    ratio ``ratio`` centred at (cx, cy) in [-1, 1] coordinates, mirrored where ``flip``: an
    output pixel at u in [-1, 1] reads the input at centre + half-size * u."""
    width = (area * ratio).sqrt().clamp(max=1.0)  # fractions of the image's side
    height = (area / ratio).sqrt().clamp(max=1.0)
    theta = torch.zeros(len(area), 2, 3, dtype=area.dtype, device=area.device)
    theta[:, 0, 0] = torch.where(flip, -width, width)
    theta[:, 0, 2] = cx * (1 - width)  # cx in [-1, 1] keeps the crop inside the image
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy * (1 - height)
    return theta


def simclr_views(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 generator: torch.Generator, min_scale: float = 0.3) -> torch.Tensor:
    """One SimCLR view (Chen et al. 2020, appendix A) of each normalised image (B, C, H, W):

    - a random resized crop: area fraction s ~ U(min_scale, 1), aspect ratio r ~ log-U(3/4,
      4/3), position uniform inside the image, resized back to H x W (bilinear);
    - a horizontal flip with probability 1/2;
    - colour distortion of strength 0.4: brightness and contrast factors ~ U(0.6, 1.4), and
      for RGB images saturation ~ U(0.6, 1.4) and grey with probability 0.2 (no hue jitter:
      the paper's strongest single transform, left out for speed; grey images have neither).

    Crop, resize and flip are one affine map per sample through ``grid_sample``, so a batch is
    one tensor op. Returns normalised images (B, C, H, W)."""
    b, dev = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, device=dev, generator=generator,
                                               dtype=x.dtype)

    area = uniform(min_scale, 1.0)
    ratio = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
    cx, cy = uniform(-1.0, 1.0), uniform(-1.0, 1.0)
    flip = torch.rand(b, device=dev, generator=generator) < 0.5
    grid = torch.nn.functional.affine_grid(crop_flip_theta(area, ratio, cx, cy, flip),
                                           list(x.shape), align_corners=False)
    pixels = x * std + mean  # [0, 1] intensities, where jitter is defined
    view = torch.nn.functional.grid_sample(pixels, grid, mode="bilinear",
                                           padding_mode="border", align_corners=False)
    contrast = uniform(0.6, 1.4).view(-1, 1, 1, 1)
    brightness = uniform(0.6, 1.4).view(-1, 1, 1, 1)
    level = view.mean((1, 2, 3), keepdim=True)
    view = (((view - level) * contrast + level) * brightness).clamp(0, 1)
    if view.shape[1] == 3:
        luma = (view * view.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
            1, keepdim=True)  # (B, 1, H, W), BT.601
        saturation = uniform(0.6, 1.4).view(-1, 1, 1, 1)
        grey = (torch.rand(b, device=dev, generator=generator) < 0.2).view(-1, 1, 1, 1)
        view = torch.where(grey, luma.expand_as(view),
                           (luma + (view - luma) * saturation).clamp(0, 1))
    return (view - mean) / std
