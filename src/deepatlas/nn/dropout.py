"""Dropout (MAP 3.3), the inverted form PyTorch uses.

In training each unit is kept with probability ``1 - p`` and the kept ones are scaled by
``1 / (1 - p)``: ``y = x * m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, so ``E[y] = x`` and
evaluation is the identity with no rescaling.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p)  # m ~ Bernoulli(1 - p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
