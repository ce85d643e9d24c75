"""Weight initialisation (MAP 2.3), written from the formulas and checked against torch.nn.init.

Xavier/Glorot keeps the variance of activations and gradients equal across a layer for
tanh-like units: ``W ~ U(-a, a)``, ``a = gain * sqrt(6 / (n_in + n_out))`` (variance
``a^2 / 3 = 2 / (n_in + n_out)``). He/Kaiming compensates for ReLU zeroing half its inputs:
``W ~ N(0, 2 / n_in)``. For a conv weight (out, in, kh, kw), ``n_in = in * kh * kw`` and
``n_out = out * kh * kw``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.errors import unknown_name


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """(n_in, n_out) of a Linear (out, in) or conv (out, in, *kernel) weight."""
    if tensor.ndim < 2:
        raise ValueError(f"fan_in/fan_out need a weight with >= 2 dims, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])  # kh * kw for a conv, 1 for a Linear
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


@torch.no_grad()
def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """In place: ``W ~ U(-a, a)`` with ``a = gain * sqrt(6 / (n_in + n_out))``."""
    n_in, n_out = fans(tensor)
    bound = gain * math.sqrt(6.0 / (n_in + n_out))
    return tensor.uniform_(-bound, bound)


@torch.no_grad()
def he_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: ``W ~ N(0, 2 / n_in)`` (He et al. 2015, for ReLU)."""
    n_in, _ = fans(tensor)
    return tensor.normal_(0.0, math.sqrt(2.0 / n_in))


INIT_SCHEMES = ("xavier", "he", "default")


def normal_002_(module: nn.Module) -> None:
    """GPT-2's and BERT's initialisation, for ``model.apply``: Linear and Embedding weights
    ~ N(0, 0.02), Linear biases 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def init_model(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every Linear and Conv weight with ``scheme`` (biases to zero);
    ``default`` keeps PyTorch's own initialisation."""
    if scheme not in INIT_SCHEMES:
        raise unknown_name("init scheme", scheme, INIT_SCHEMES)
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            (xavier_uniform_ if scheme == "xavier" else he_normal_)(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
