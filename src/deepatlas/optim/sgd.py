"""Stochastic gradient descent, with and without momentum (MAP 3.2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from deepatlas.optim.base import ParameterwiseOptimizer


class SGD(ParameterwiseOptimizer):
    """Plain SGD: ``W <- W - lr * grad``. Along a steep, narrow valley the step overshoots
    across it and back: the oscillation Momentum damps."""

    def __init__(self, params: Iterable, lr: float) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr})

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        w.add_(grad, alpha=-group["lr"])  # W <- W - lr g


class Momentum(ParameterwiseOptimizer):
    """Momentum, in the source's form: ``v <- gamma v - lr * grad``, ``W <- W + v``.

    torch.optim.SGD(momentum=gamma) keeps ``b <- gamma b + grad`` and steps ``W -= lr b``: with
    a constant ``lr`` the two are the same trajectory, since ``v = -lr b``.
    """

    def __init__(self, params: Iterable, lr: float, gamma: float = 0.9) -> None:
        if lr <= 0 or not 0 <= gamma < 1:
            raise ValueError(f"need lr > 0 and 0 <= gamma < 1, got lr={lr}, gamma={gamma}")
        super().__init__(params, {"lr": lr, "gamma": gamma})

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(w)
        v = state["velocity"]
        v.mul_(group["gamma"]).add_(grad, alpha=-group["lr"])  # v <- gamma v - lr g
        w.add_(v)  # W <- W + v
