"""Stochastic gradient descent, with and without momentum (MAP 3.2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


class SGD(Optimizer):
    """Plain SGD: ``W <- W - lr * grad``. Along a steep, narrow valley the step overshoots
    across it and back: the oscillation Momentum damps."""

    def __init__(self, params: Iterable, lr: float) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    w.add_(w.grad, alpha=-group["lr"])  # W <- W - lr g
        return loss


class Momentum(Optimizer):
    """Momentum, in the source's form: ``v <- gamma v - lr * grad``, ``W <- W + v``.

    torch.optim.SGD(momentum=gamma) keeps ``b <- gamma b + grad`` and steps ``W -= lr b``: with
    a constant ``lr`` the two are the same trajectory, since ``v = -lr b``.
    """

    def __init__(self, params: Iterable, lr: float, gamma: float = 0.9) -> None:
        if lr <= 0 or not 0 <= gamma < 1:
            raise ValueError(f"need lr > 0 and 0 <= gamma < 1, got lr={lr}, gamma={gamma}")
        super().__init__(params, {"lr": lr, "gamma": gamma})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(w)
                v = state["velocity"]
                v.mul_(group["gamma"]).add_(w.grad, alpha=-group["lr"])  # v <- gamma v - lr g
                w.add_(v)  # W <- W + v
        return loss
