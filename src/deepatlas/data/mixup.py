"""Mixup (MAP 3.3; Zhang et al. 2018): train on convex combinations of pairs of examples.

``x~ = lam x_i + (1 - lam) x_j`` and ``y~ = lam y_i + (1 - lam) y_j`` with
``lam ~ Beta(alpha, alpha)`` and ``j`` a random permutation of the batch. The draws use torch's
global RNG, which checkpoints save, so a resumed run mixes the same pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.2, num_classes: int = 10
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixed inputs (B, ...) and soft targets (B, K) from a batch and its integer labels."""
    one_hot = F.one_hot(y, num_classes).to(x.dtype)  # (B, K)
    if alpha <= 0:
        return x, one_hot
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0]).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * one_hot + (1 - lam) * one_hot[perm]
