"""MAP 4.1 and 5.1: without skip connections a deeper net trains worse; with them it does not.

Judged over seeds with :mod:`deepatlas.lab.stats`, on the training loss over the whole
training set after the same number of SGD steps:

- plain: deep minus shallow, paired by seed, above 0 (deeper trains worse);
- residual: deep minus shallow minus 0.05 nats, paired by seed, below 0. "Does not train worse"
  needs a margin; 0.05 nats is 2% of chance (ln 10 = 2.30 nats), far below the gap the plain
  net opens, and above the seed-to-seed wobble of two small losses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.lab.common import digits_tensors, fit, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict


class Block(nn.Module):
    """``relu(x + F(x))`` with F = Linear-ReLU-Linear, or ``relu(F(x))`` without the skip."""

    def __init__(self, width: int, residual: bool) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.f(x) if self.residual else self.f(x))


def deep_mlp(blocks: int, residual: bool, width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(),
                         *(Block(width, residual) for _ in range(blocks)), nn.Linear(width, 10))


@experiment(name="residual-depth", map_id="4.1, 5.1", title="Residual connections and depth",
            claim="A plain network trains worse as it gets deeper; the same network with "
                  "residual connections y = relu(x + F(x)) does not.",
            source=("ResNet残差块:", "return F.relu(x + identity)", "解决方案:残差连接"),
            implements="deepatlas.nn.ResidualBlock's rule relu(x + F(x)), on MLP blocks")
def run(ctx: Context) -> Result:
    xtr, ytr, _, _ = digits_tensors()
    depths = ctx.size([2, 8, 24], [2, 24])
    steps = ctx.size(800, 200, smoke=60)  # quick: the tour stays in minutes
    seeds = [ctx.seed + s for s in range(ctx.size(5, 3, smoke=2))]
    final: dict[str, dict[int, list[float]]] = {"plain": {}, "residual": {}}
    curves = {}
    for kind in final:
        for blocks in depths:
            for seed in seeds:
                torch.manual_seed(seed)
                net = deep_mlp(blocks, kind == "residual")
                losses = fit(net, xtr, ytr, steps, torch.optim.SGD(net.parameters(), lr=0.02,
                                                                    momentum=0.9), seed=seed)
                with torch.no_grad():  # the whole training set, not the last noisy batches
                    loss = F.cross_entropy(net.eval()(xtr), ytr).item()
                final[kind].setdefault(blocks, []).append(loss)
                curves.setdefault((kind, blocks), losses)

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for (kind, blocks), losses in curves.items():
        smooth = torch.tensor(losses).unfold(0, 20, 1).mean(1)
        left.plot(smooth.numpy(), ls="-" if kind == "residual" else "--",
                  label=f"{kind}, {2 * blocks + 2} layers")
    left.set_xlabel(f"step (seed {seeds[0]})")
    left.set_ylabel("training loss")
    left.legend(fontsize=6)
    for kind, values in final.items():
        right.plot([2 * b + 2 for b in depths], [sum(values[b]) / len(seeds) for b in depths],
                   "o-", label=kind)
    right.set_xlabel("linear layers")
    right.set_ylabel(f"training loss after {steps} steps")
    right.set_yscale("log")
    right.legend()
    plot = save(fig, ctx.path("plot.png"))

    deep, shallow = depths[-1], depths[0]
    effects = [
        compare(f"plain, {2 * deep + 2} - {2 * shallow + 2} layers, training loss",
                final["plain"][deep], final["plain"][shallow]),
        compare(f"residual, {2 * deep + 2} - {2 * shallow + 2} layers, training loss, "
                "minus a 0.05-nat margin", final["residual"][deep],
                [v + 0.05 for v in final["residual"][shallow]], direction="less"),
    ]
    mean = {k: {b: sum(v) / len(v) for b, v in d.items()} for k, d in final.items()}
    metrics = {f"train_loss_{k}_{2 * b + 2}_layers": v for k, d in mean.items()
               for b, v in d.items()}
    metrics.update(steps=steps, seeds=len(seeds))
    result, note = verdict(effects)
    return Result(metrics, result,
                  f"Training loss after {steps} SGD steps on digits, mean over seeds {seeds}, "
                  f"{2 * shallow + 2} vs {2 * deep + 2} layers: plain "
                  f"{mean['plain'][shallow]:.3f} -> {mean['plain'][deep]:.3f}, residual "
                  f"{mean['residual'][shallow]:.3f} -> {mean['residual'][deep]:.3f} "
                  "(chance: ln 10 = 2.303).", [plot], effects, seeds, note=note)
