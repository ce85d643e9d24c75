"""A frozen patch-whitening convolution: airbench's first layer (Jordan 2024), MAP 8.

For k x k patches p (flattened to d = C k^2 values) of the training images, with mean m and
covariance S = V diag(lambda) V^T, the layer's 2d filters are

    w_i = +-v_i / sqrt(lambda_i + eps),   bias_i = -w_i . m

so its outputs are the patches' decorrelated, unit-variance coordinates (PCA whitening), each
with its negative so that a following ReLU/GELU keeps both signs. The filters are computed
once from data and never trained: the network starts from decorrelated inputs, which is what
lets a few epochs suffice.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchWhitening(nn.Conv2d):
    """``Conv2d(C, 2 C k^2, k)`` with frozen weights; call :meth:`fit` on training images."""

    def __init__(self, in_channels: int, kernel_size: int = 2, eps: float = 5e-4) -> None:
        d = in_channels * kernel_size**2
        super().__init__(in_channels, 2 * d, kernel_size, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from ``images`` (N, C, H, W), normalised as the model will see them."""
        k = self.kernel_size[0]
        patches = nn.functional.unfold(images.float(), k)  # (N, C k^2, L)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double()  # (N L, d)
        mean = patches.mean(0)
        cov = torch.cov(patches.T)  # (d, d)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
        filters = eigenvectors.T / (eigenvalues.clamp_min(0) + self.eps).sqrt()[:, None]
        filters = torch.cat([filters, -filters])  # (2d, d)
        self.weight.copy_(filters.reshape(self.weight.shape).to(self.weight.dtype))
        self.bias.copy_((-filters @ mean).to(self.bias.dtype))
