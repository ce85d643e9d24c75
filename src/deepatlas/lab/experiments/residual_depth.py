"""MAP 4.1 and 5.1: without skip connections a deeper net trains worse; with them it does not."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.lab.common import digits_tensors, fit, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment


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
            source="ResNet残差块: return F.relu(x + identity) ; 解决方案:残差连接",
            implements="deepatlas.nn.ResidualBlock's rule relu(x + F(x)), on MLP blocks")
def run(ctx: Context) -> Result:
    xtr, ytr, _, _ = digits_tensors()
    depths = [2, 8, 24] if ctx.quick else [2, 8, 24, 48]
    steps = 400 if ctx.quick else 1500
    final: dict[str, dict[int, float]] = {"plain": {}, "residual": {}}
    curves = {}
    for kind in final:
        for blocks in depths:
            torch.manual_seed(ctx.seed)
            net = deep_mlp(blocks, kind == "residual")
            losses = fit(net, xtr, ytr, steps, torch.optim.SGD(net.parameters(), lr=0.02,
                                                                momentum=0.9), seed=ctx.seed)
            with torch.no_grad():  # the whole training set, not the last noisy minibatches
                final[kind][blocks] = F.cross_entropy(net.eval()(xtr), ytr).item()
            curves[(kind, blocks)] = losses

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for (kind, blocks), losses in curves.items():
        smooth = torch.tensor(losses).unfold(0, 20, 1).mean(1)
        left.plot(smooth.numpy(), ls="-" if kind == "residual" else "--",
                  label=f"{kind}, {2 * blocks + 2} layers")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend(fontsize=6)
    for kind, values in final.items():
        right.plot([2 * b + 2 for b in depths], [values[b] for b in depths], "o-", label=kind)
    right.set_xlabel("linear layers")
    right.set_ylabel(f"training loss after {steps} steps")
    right.set_yscale("log")
    right.legend()
    plot = save(fig, ctx.path("plot.png"))

    deep, shallow = depths[-1], depths[0]
    # "Worse" is a clear gap; "not worse" allows 0.05 nats of noise between two small losses.
    plain_worse = final["plain"][deep] > 2 * final["plain"][shallow] + 0.05
    residual_fine = final["residual"][deep] <= final["residual"][shallow] + 0.05
    metrics = {f"train_loss_{k}_{2 * b + 2}_layers": v for k, d in final.items()
               for b, v in d.items()}
    metrics["steps"] = steps
    return Result(metrics, "holds" if plain_worse and residual_fine
                  else "does not hold at this scale",
                  f"Training loss after {steps} SGD steps on digits, "
                  f"{2 * shallow + 2} vs {2 * deep + 2} layers: plain "
                  f"{final['plain'][shallow]:.3f} -> {final['plain'][deep]:.3f}, residual "
                  f"{final['residual'][shallow]:.3f} -> {final['residual'][deep]:.3f}.", [plot])
