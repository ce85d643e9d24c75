"""What the map's optimisers share: the closure protocol and the loop over parameters."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer


class ParameterwiseOptimizer(Optimizer):
    """A ``torch.optim.Optimizer`` whose rule updates one parameter at a time: subclasses
    write :meth:`update` and nothing else."""

    @abstractmethod
    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        """Apply the rule to ``w`` in place, given its gradient and its own ``state``."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    self.update(w, w.grad, self.state[w], group)
        return loss
