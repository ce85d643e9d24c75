"""MAP 1.3: one hidden layer approximates a continuous function; the error falls with width.

The theorem is about the best weights, so each width keeps the best of a few L-BFGS restarts
(no seeds to average: this is a minimum, not a mean). It holds when the error falls in all
but two of the six width doublings (the optimiser reaches a floor near 1e-6 at the largest
widths) and the widest net's error is at least 1000x below one unit's: one tanh unit fits a
single step, so a net that really approximates the curve must be orders of magnitude better;
1000x is three orders.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) + 0.3 * x**2  # smooth, several bumps on [-pi, pi]


@experiment(name="universal-approximation", map_id="1.3", title="Universal approximation",
            claim="A network with one hidden layer can approximate a continuous function; the "
                  "error falls as the hidden layer widens.",
            source="理论支撑:通用近似定理保证神经网络表达能力",
            implements="torch.nn.Linear + Tanh (f(x) = W2 tanh(W1 x + b1) + b2), fitted by L-BFGS")
def run(ctx: Context) -> Result:
    widths = [1, 2, 4, 8, 16, 32, 64]
    restarts, iterations = ctx.size((4, 2000), (2, 500), smoke=(1, 50))
    x = torch.linspace(-math.pi, math.pi, 512, dtype=torch.float64).unsqueeze(1)  # (N, 1)
    y = target(x)
    errors, fits = {}, {}
    for width in widths:
        best = None
        for r in range(restarts):  # the theorem is about the best weights, so search a little
            torch.manual_seed(ctx.seed * 100 + r)
            net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1)).double()
            # Full batch and quasi-Newton: the question is capacity, not generalisation.
            opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=iterations,
                                    history_size=50, tolerance_grad=1e-12,
                                    tolerance_change=1e-15, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = (net(x) - y).square().mean()
                loss.backward()
                return loss

            opt.step(closure)
            with torch.no_grad():
                error = (net(x) - y).square().mean().item()
            if best is None or error < best:
                best, fits[width] = error, net(x).detach().squeeze(1)
        errors[width] = best

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.plot(x.numpy(), y.numpy(), "k", lw=2, label="target sin(3x) + 0.3x²")
    for width in (2, 8, 64):
        left.plot(x.numpy(), fits[width].numpy(), label=f"width {width}")
    left.legend(fontsize=7)
    left.set_xlabel("x")
    right.loglog(widths, [errors[w] for w in widths], "o-")
    right.set_xlabel("hidden units")
    right.set_ylabel("mean squared error")
    plot = save(fig, ctx.path("plot.png"))

    drops = sum(errors[b] < errors[a] for a, b in zip(widths, widths[1:]))
    ratio = errors[widths[0]] / errors[widths[-1]]
    holds = ratio > 1e3 and drops >= len(widths) - 3  # allow a plateau at the optimiser's floor
    metrics = {f"mse_width_{w}": errors[w] for w in widths}
    metrics.update(error_ratio_narrowest_to_widest=ratio, restarts=restarts)
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  f"The error fell in {drops} of {len(widths) - 1} width doublings, from "
                  f"{errors[widths[0]]:.3g} with 1 unit to {errors[widths[-1]]:.2g} with "
                  f"{widths[-1]} ({ratio:.0f}x smaller).", [plot])
