"""Losses of the map (MAP 3.3): label smoothing and soft-target cross-entropy (for Mixup)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i -sum_k q_ik log softmax(z_i)_k`` for target distributions ``q`` (B, K)."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def label_smoothing_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                  epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against ``y~ = (1 - eps) y + eps / K`` (Szegedy et al. 2016), where ``y``
    is the one-hot label: the model is never pushed to infinite logits. Equals
    ``nn.CrossEntropyLoss(label_smoothing=eps)``."""
    k = logits.shape[-1]
    smoothed = F.one_hot(target, k).to(logits.dtype) * (1 - epsilon) + epsilon / k
    return soft_target_cross_entropy(logits, smoothed)
