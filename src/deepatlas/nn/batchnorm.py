"""Batch normalisation (MAP 5.1; Ioffe and Szegedy 2015), from the formula.

    mu_B = mean over (N, H, W),  sigma_B^2 = biased variance over (N, H, W)
    x^ = (x - mu_B) / sqrt(sigma_B^2 + eps),   y = gamma x^ + beta

The source writes ``sqrt(mu_B^2 + eps)`` in the denominator: a typo, the variance is meant.
Running statistics for evaluation: ``r <- (1 - momentum) r + momentum * stat``, where the
running variance takes the unbiased batch variance (n / (n - 1) sigma_B^2), as torch does.
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNorm2d(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        if self.training:
            mean = x.mean(dim=(0, 2, 3))  # mu_B: (C,)
            var = x.var(dim=(0, 2, 3), unbiased=False)  # sigma_B^2: (C,)
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        return self.weight[:, None, None] * x_hat + self.bias[:, None, None]  # gamma x^ + beta

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(BatchNorm2d):
    """MAP 5.1 over features (N, C), as after a Linear layer: x^ = (x - mu_B) /
    sqrt(sigma_B^2 + eps) with mu_B and sigma_B^2 over the batch N, then gamma x^ + beta."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C) -> (N, C)
        return super().forward(x[:, :, None, None])[:, :, 0, 0]
