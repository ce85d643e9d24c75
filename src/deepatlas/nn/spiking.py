"""MAP 7.1 Spiking neural networks: the leaky integrate-and-fire neuron, its surrogate
gradient, and the codes that turn an image into spikes.

The LIF neuron in discrete time (Gerstner; snnTorch's ``Leaky``, the same equations)::

    r[t] = H(U[t-1] - theta)                      # did it fire last step? (no gradient)
    U[t] = beta U[t-1] + I[t] - r[t] theta        # leak, integrate, reset by subtraction
    S[t] = H(U[t] - theta)                        # fire

H is the Heaviside step, whose derivative is zero almost everywhere, so training uses a
surrogate in the backward pass only (Neftci, Mostafa and Zenke 2019):

    arctan (Fang et al. 2021):     dS/dU = (alpha / 2) / (1 + (pi alpha (U - theta) / 2)^2)
    fast sigmoid (Zenke & Ganguli): dS/dU = 1 / (1 + k |U - theta|)^2

Reset by subtraction keeps the charge above threshold, so the firing rate tracks the input
current more closely than reset to zero does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.errors import unknown_name


class _ArcTanSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, = ctx.saved_tensors
        return grad * (ctx.alpha / 2) / (1 + (math.pi / 2 * ctx.alpha * u).square()), None


class _FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, = ctx.saved_tensors
        return grad / (ctx.slope * u.abs() + 1).square(), None


SURROGATES = {"arctan": (_ArcTanSpike, 2.0), "fast-sigmoid": (_FastSigmoidSpike, 25.0)}


def spike(u: torch.Tensor, surrogate: str = "arctan") -> torch.Tensor:
    """H(u) forward, the named surrogate's derivative backward (u = U - theta)."""
    if surrogate not in SURROGATES:
        raise unknown_name("surrogate gradient", surrogate, SURROGATES)
    function, sharpness = SURROGATES[surrogate]
    return function.apply(u, sharpness)


class LIF(nn.Module):
    """Leaky integrate-and-fire neurons over a sequence: ``forward(currents)`` takes I of
    shape (T, B, ...) and returns the spikes S (T, B, ...); the membrane trace U of the last
    call is kept in ``self.trace`` when ``record`` is set (for tests and plots)."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0,
                 surrogate: str = "arctan") -> None:
        super().__init__()
        if not 0 <= beta <= 1:
            raise ValueError(f"beta is a decay factor in [0, 1], got {beta}")
        spike(torch.zeros(1), surrogate)  # an unknown surrogate fails here, at build time
        self.beta, self.threshold, self.surrogate = beta, threshold, surrogate
        self.record = False
        self.trace: torch.Tensor | None = None

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(currents[0])
        spikes, trace = [], []
        for current in currents:  # one time step: (B, ...)
            fired = (u > self.threshold).to(u.dtype)  # r[t]: last step's spike, no gradient
            u = self.beta * u + current - fired * self.threshold
            spikes.append(spike(u - self.threshold, self.surrogate))
            if self.record:
                trace.append(u.detach())
        if self.record:
            self.trace = torch.stack(trace)
        return torch.stack(spikes)  # (T, B, ...)


def rate_code(x: torch.Tensor, steps: int, generator: torch.Generator | None = None
              ) -> torch.Tensor:
    """Rate coding: at each of ``steps`` steps a pixel of intensity p in [0, 1] fires with
    probability p: (T, B, ...) of 0/1."""
    p = x.clamp(0, 1).expand(steps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def latency_code(x: torch.Tensor, steps: int, threshold: float = 0.01) -> torch.Tensor:
    """Latency coding: each pixel fires once, the brighter the earlier: at step
    round((1 - p) (T - 1)); pixels below ``threshold`` never fire. (T, B, ...) of 0/1."""
    p = x.clamp(0, 1)
    when = torch.round((1 - p) * (steps - 1)).long()  # (B, ...)
    t = torch.arange(steps, device=x.device).view(steps, *[1] * x.ndim)
    return ((t == when) & (p >= threshold)).to(x.dtype)


__all__ = ["LIF", "SURROGATES", "latency_code", "rate_code", "spike"]
