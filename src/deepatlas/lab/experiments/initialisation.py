"""MAP 2.3: Xavier keeps tanh activations' scale through depth, He keeps ReLU's; a naive
Gaussian makes them vanish or explode."""

from __future__ import annotations

import torch

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.nn import he_normal_, xavier_uniform_

DEPTH, WIDTH = 30, 256


def activation_stds(init, activation, seed: int) -> list[float]:
    torch.manual_seed(seed)
    h = torch.randn(1000, WIDTH)
    stds = []
    for _ in range(DEPTH):
        w = torch.empty(WIDTH, WIDTH)
        init(w)
        h = activation(h @ w.T)
        stds.append(h.std().item())
    return stds


SCHEMES = {
    "N(0, 0.01²), tanh": (lambda w: w.normal_(0, 0.01), torch.tanh),
    "N(0, 1), tanh": (lambda w: w.normal_(0, 1.0), torch.tanh),
    "Xavier, tanh": (xavier_uniform_, torch.tanh),
    "N(0, 0.01²), ReLU": (lambda w: w.normal_(0, 0.01), torch.relu),
    "He, ReLU": (he_normal_, torch.relu),
}


@experiment(name="initialisation", map_id="2.3", title="Initialisation",
            claim="Xavier (tanh) and He (ReLU) initialisation keep the activations' scale "
                  "through 30 layers; small or large naive Gaussians make it vanish or saturate.",
            source="Xavier初始化: W∼U(−√(6/(n_in+n_out)), √(6/(n_in+n_out))) ; He初始化:适配ReLU"
                   "的初始化方法,方差保持为 2/n_in",
            implements="deepatlas.nn.xavier_uniform_, deepatlas.nn.he_normal_")
def run(ctx: Context) -> Result:
    stds = {name: activation_stds(init, act, ctx.seed) for name, (init, act) in SCHEMES.items()}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for name, values in stds.items():
        ax.semilogy(range(1, DEPTH + 1), values, "o-", ms=3, label=name)
    ax.set_xlabel("layer")
    ax.set_ylabel("std of the activations")
    ax.legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    last = {name: v[-1] for name, v in stds.items()}
    kept = {name: v[-1] / v[0] for name, v in stds.items()}
    holds = (last["N(0, 0.01²), tanh"] < 1e-6 and last["N(0, 1), tanh"] > 0.9  # saturated
             and 0.1 < kept["Xavier, tanh"] <= 1.0 and 0.5 < kept["He, ReLU"] < 2.0
             and last["N(0, 0.01²), ReLU"] < 1e-6)
    metrics = {f"std_layer30 {n}": v for n, v in last.items()}
    metrics.update({f"std_30_over_std_1 {n}": v for n, v in kept.items()})
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  "Std of the activations at layer 30: " + "; ".join(
                      f"{n}: {v:.2g}" for n, v in last.items())
                  + ". N(0, 1) with tanh keeps a large std only because every unit is pinned at"
                  " ±1 (saturated, zero gradient).", [plot])
