"""Adam (MAP 3.2; Kingma and Ba 2015), with bias correction.

    m_t = b1 m_{t-1} + (1 - b1) g_t          first moment (momentum)
    v_t = b2 v_{t-1} + (1 - b2) g_t^2        second moment (per-weight scale)
    m^_t = m_t / (1 - b1^t),  v^_t = v_t / (1 - b2^t)   (both start at 0: undo that bias)
    W <- W - lr * m^_t / (sqrt(v^_t) + eps)

``weight_decay`` adds ``wd * W`` to the gradient (L2, as torch.optim.Adam does; AdamW's
decoupled decay is torch.optim.AdamW).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from deepatlas.optim.base import ParameterwiseOptimizer


class Adam(ParameterwiseOptimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay})

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
               group: dict[str, Any]) -> None:
        b1, b2 = group["betas"]
        if group["weight_decay"]:
            grad = grad.add(w, alpha=group["weight_decay"])
        if not state:
            state.update(step=0, m=torch.zeros_like(w), v=torch.zeros_like(w))
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        m.mul_(b1).add_(grad, alpha=1 - b1)  # m_t = b1 m + (1 - b1) g
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)  # v_t = b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1**t)  # bias correction: both moments start at 0
        v_hat = v / (1 - b2**t)
        w.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])
