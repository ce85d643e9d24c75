"""Graph neural networks (MAP 2.2) for node classification: two-layer GCN and GAT, as in
their papers' citation-network setups."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.graph import GATConv, GCNConv


class GCN(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.conv1, self.conv2 = GCNConv(in_features, hidden), GCNConv(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))  # (N, hidden)
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)  # (N, K) logits


class GAT(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: int, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.conv1 = GATConv(in_features, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=1, dropout=dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))  # (N, heads * hidden)
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)  # (N, K) logits


@register_model(kind="graph")
def gcn(*, in_channels: int = 34, image_size: int = 0, num_classes: int = 2, hidden: int = 16,
        dropout: float = 0.5) -> nn.Module:
    """Two GCN layers (Kipf and Welling 2017); ``in_channels`` = node feature size."""
    return GCN(in_channels, num_classes, hidden, dropout)


@register_model(kind="graph")
def gat(*, in_channels: int = 34, image_size: int = 0, num_classes: int = 2, hidden: int = 8,
        heads: int = 8, dropout: float = 0.6) -> nn.Module:
    """Two GAT layers (Velickovic et al. 2018): ``heads`` x ``hidden``, then one head."""
    return GAT(in_channels, num_classes, hidden, heads, dropout)
