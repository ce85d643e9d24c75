"""An airbench-style speed net (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds"), MAP 8.

    whitening (frozen, 2x2 patches) -> GELU                      (B, 2 C 4, H-1, W-1)
    3 x [conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU]   widths w, 2w, 4w
    global max pool -> linear (no bias) -> x scale                (B, K)

What makes it fast to train, kept here: the whitening first layer fitted to the data
(:class:`~deepatlas.nn.whitening.PatchWhitening`), pooling straight after the first conv of
each group (the second conv runs at a quarter of the pixels), BatchNorm without a learned
scale, max rather than average pooling at the end, and small output logits (``scale``).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.whitening import PatchWhitening


def _batchnorm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with its scale fixed at 1 (only the shift is learned), as airbench does."""
    bn = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-12)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                         _batchnorm(cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), _batchnorm(cout),
                         nn.GELU())


class AirbenchNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int, scale: float,
                 whiten: bool = True) -> None:
        super().__init__()
        # whiten=False: the same 2x2 conv, trained from torch's default init (the ablation).
        self.whiten = (PatchWhitening(in_channels, kernel_size=2) if whiten
                       else nn.Conv2d(in_channels, 8 * in_channels, 2))
        widths = (width, 2 * width, 4 * width)
        cin = self.whiten.out_channels
        groups = []
        for cout in widths:
            groups.append(ConvGroup(cin, cout))
            cin = cout
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.scale = scale
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                # Identity on the first in_channels outputs (the rest keep torch's default):
                # the signal passes each conv unchanged at the start of training.
                with torch.no_grad():
                    nn.init.dirac_(m.weight[:m.in_channels])

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Fit the whitening filters to (a sample of) the normalised training images."""
        if isinstance(self.whiten, PatchWhitening):
            self.whiten.fit(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.whiten(x))  # (B, 8C, H-1, W-1)
        x = self.groups(x)  # (B, 4w, H/8, W/8)
        x = torch.amax(x, dim=(2, 3))  # (B, 4w)
        return self.head(x) * self.scale  # (B, K)


@register_model
def airbench(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
             width: int = 64, scale: float = 1 / 9, whiten: bool = True) -> nn.Module:
    """airbench-style net with widths ``w, 2w, 4w`` (airbench94 uses 64, 256, 256);
    ``whiten=False`` trains the first layer instead of fitting it to the data."""
    return AirbenchNet(in_channels, num_classes, width, scale, whiten)
