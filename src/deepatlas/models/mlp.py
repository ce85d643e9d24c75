"""The multilayer perceptron of MAP 1.1.

``f(x) = W_L s(W_{L-1} s(... s(W_1 x + b_1) ...) + b_{L-1}) + b_L``: ``depth`` = L affine
layers with the activation ``s`` between them (none after the last: it returns logits). With
``batch_norm``, each hidden layer is s(BN(W x + b)) (MAP 5.1).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.activations import make_activation
from deepatlas.nn.batchnorm import BatchNorm1d
from deepatlas.nn.dropout import Dropout
from deepatlas.nn.init import init_model


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, depth: int = 3, width: int = 256,
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False
                 ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, H, W) -> (B, C*H*W)
        features = in_features
        for _ in range(depth - 1):
            layers.append(nn.Linear(features, width))  # W x + b
            if batch_norm:
                layers.append(BatchNorm1d(width))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, num_classes))  # W_L h + b_L: logits (B, K)
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


@register_model
def mlp(*, in_channels: int = 1, image_size: int = 8, num_classes: int = 10, depth: int = 3,
        width: int = 256, activation: str = "relu", dropout: float = 0.0,
        init: str = "default", batch_norm: bool = False) -> nn.Module:
    """MLP over the flattened image: ``depth`` Linear layers of ``width`` units, initialised
    with ``init`` (default, xavier or he: MAP 2.3), with BatchNorm before each hidden
    activation when ``batch_norm``."""
    model = MLP(in_channels * image_size * image_size, num_classes, depth, width, activation,
                dropout, batch_norm)
    return init_model(model, init)


class LinearBlock(nn.Module):
    """The source's residual rule on fully connected layers (MAP 4.1, 5.1): ``relu(x + F(x))``
    with F = Linear-ReLU-Linear, or ``relu(F(x))`` without the skip."""

    def __init__(self, width: int, residual: bool) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W) -> (B, W)
        return (x + self.f(x) if self.residual else self.f(x)).relu()


@register_model
def residual_mlp(*, in_channels: int = 1, image_size: int = 8, num_classes: int = 10,
                 blocks: int = 8, width: int = 64, residual: bool = True) -> nn.Module:
    """Linear-ReLU to ``width`` units, ``blocks`` (>= 1) :class:`LinearBlock` s, with or
    without their skips, and a linear classifier: 2 ``blocks`` + 2 linear layers. The lab's
    residual-depth experiment trains it with and without skips at growing depth."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, width),
                         nn.ReLU(), *(LinearBlock(width, residual) for _ in range(blocks)),
                         nn.Linear(width, num_classes))
