"""Activation functions by name (MAP 2.1).

Sigmoid 1/(1+e^-x) saturates, so its gradient s(x)(1-s(x)) <= 1/4 shrinks layer after layer;
ReLU max(0, x) passes a gradient of exactly 1 where it is active; Swish x * sigmoid(beta x) is
smooth and non-monotonic. Sigmoid, ReLU, Tanh and GELU are torch's own modules.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.errors import unknown_name


class Swish(nn.Module):
    """Swish (MAP 2.1): ``f(x) = x * sigmoid(beta * x)``.

    ``beta = 1`` is SiLU; ``beta -> inf`` tends to ReLU; ``learnable=True`` makes beta a
    parameter trained with the rest of the network, as in the original paper.
    """

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        beta_tensor = torch.tensor(float(beta))
        if learnable:
            self.beta = nn.Parameter(beta_tensor)
        else:
            self.register_buffer("beta", beta_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)  # x * s(beta x)

    def extra_repr(self) -> str:
        return f"beta={float(self.beta):g}, learnable={isinstance(self.beta, nn.Parameter)}"


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "swish": Swish,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()
