"""The multilayer perceptron of MAP 1.1.

``f(x) = W_L s(W_{L-1} s(... s(W_1 x + b_1) ...) + b_{L-1}) + b_L``: ``depth`` = L affine
layers with the activation ``s`` between them (none after the last: it returns logits).
"""

from __future__ import annotations

from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.activations import make_activation
from deepatlas.nn.dropout import Dropout
from deepatlas.nn.init import init_model


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, depth: int = 3, width: int = 256,
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, H, W) -> (B, C*H*W)
        features = in_features
        for _ in range(depth - 1):
            layers += [nn.Linear(features, width), make_activation(activation)]  # s(W x + b)
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
        init: str = "default") -> nn.Module:
    """MLP over the flattened image: ``depth`` Linear layers of ``width`` units, initialised
    with ``init`` (default, xavier or he: MAP 2.3)."""
    model = MLP(in_channels * image_size * image_size, num_classes, depth, width, activation,
                dropout)
    return init_model(model, init)
