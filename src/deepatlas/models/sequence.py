"""Recurrent classifiers (MAP 2.2): an image read as a sequence of its rows."""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.recurrent import LSTM


class RowLSTM(nn.Module):
    """Reads a (B, C, H, W) image top to bottom, one row of C*W values per step, and
    classifies from the last hidden state: the LSTM must carry what it saw across H steps."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = LSTM(in_features, hidden, layers)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W): a sequence of H rows
        _, (h, _) = self.lstm(rows)
        return self.head(h)  # (B, K)


@register_model
def lstm(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, hidden: int = 128,
         layers: int = 1) -> nn.Module:
    """deepatlas's LSTM over image rows (28 steps for MNIST-sized images)."""
    return RowLSTM(in_channels * image_size, num_classes, hidden, layers)
