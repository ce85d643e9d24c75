"""MAP 5.1: BatchNorm lets a deep sigmoid net train; clipping tames an RNN's exploding
gradients."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.lab.common import accuracy, digits_tensors, fit, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.nn import BatchNorm2d, RNNCell


class BN1d(nn.Module):
    """deepatlas's BatchNorm2d over (B, C) features, viewed as (B, C, 1, 1)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.bn = BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x[:, :, None, None])[:, :, 0, 0]


def deep_sigmoid_net(depth: int, batch_norm: bool, width: int = 64) -> nn.Module:
    layers: list[nn.Module] = []
    features = 64
    for _ in range(depth):
        layers += [nn.Linear(features, width)] + ([BN1d(width)] if batch_norm else [])
        layers.append(nn.Sigmoid())
        features = width
    return nn.Sequential(*layers, nn.Linear(width, 10))


def rnn_run(clip: float, steps: int, seed: int) -> tuple[list[float], list[float]]:
    """Copy the first token of a 40-step sequence to the end: a long dependency, trained with
    a high learning rate and a recurrent matrix initialised large (spectral radius ~ 1.5)."""
    torch.manual_seed(seed)
    cell, head = RNNCell(8, 64), nn.Linear(64, 8)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if p.ndim == 2 and p.shape == (64, 64):
                p.copy_(torch.randn(64, 64) * 1.5 / math.sqrt(64))
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    losses, norms = [], []
    for _ in range(steps):
        tokens = torch.randint(0, 8, (32, 40))
        x = F.one_hot(tokens, 8).float()  # (B, T, 8)
        h = torch.zeros(32, 64)
        for t in range(40):
            h = cell(x[:, t], h)
        loss = F.cross_entropy(head(h), tokens[:, 0])
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    return losses, norms


@experiment(name="batchnorm-clipping", map_id="5.1", title="BatchNorm and gradient clipping",
            claim="BatchNorm x̂ = (x − μ_B)/√(σ_B² + ε) lets a deep network train; clipping the "
                  "gradient norm keeps an RNN's exploding gradients from wrecking training.",
            source="梯度消失/爆炸 解决方案:残差连接、梯度裁剪、BatchNorm ; x̂=(x−μ_B)/√(μ_B²+ε) "
                   "(the source's μ_B² is a typo for σ_B²)",
            implements="deepatlas.nn.BatchNorm2d, deepatlas.nn.RNNCell, train.clip_grad_norm")
def run(ctx: Context) -> Result:
    xtr, ytr, xte, yte = digits_tensors()
    steps = 500 if ctx.quick else 2000
    bn_acc, bn_loss = {}, {}
    for batch_norm in (False, True):
        torch.manual_seed(ctx.seed)
        net = deep_sigmoid_net(12, batch_norm)
        losses = fit(net, xtr, ytr, steps, torch.optim.SGD(net.parameters(), lr=0.1,
                                                           momentum=0.9), seed=ctx.seed)
        key = "with BatchNorm" if batch_norm else "without"
        bn_acc[key], bn_loss[key] = accuracy(net, xte, yte), losses
    rnn_steps = 150 if ctx.quick else 600
    rnn = {"no clipping": rnn_run(0.0, rnn_steps, ctx.seed),
           "clip norm 1": rnn_run(1.0, rnn_steps, ctx.seed)}

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for key, losses in bn_loss.items():
        axes[0].plot(torch.tensor(losses).unfold(0, 20, 1).mean(1).numpy(), label=key)
    axes[0].set_title("12 sigmoid layers on digits")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize=7)
    for key, (losses, norms) in rnn.items():
        axes[1].semilogy(norms, label=key)
        axes[2].plot([v if math.isfinite(v) else float("nan") for v in losses], label=key)
    axes[1].set_title("RNN gradient norm (before clipping)")
    axes[2].set_title("RNN training loss")
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    def tail(values):
        finite = [v for v in values[-30:] if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else float("inf")

    unclipped, clipped = tail(rnn["no clipping"][0]), tail(rnn["clip norm 1"][0])
    max_norm = max(v for v in rnn["no clipping"][1] if math.isfinite(v))
    metrics = {f"deep_sigmoid_test_acc_{k.replace(' ', '_')}": v for k, v in bn_acc.items()}
    metrics.update(rnn_max_grad_norm_unclipped=max_norm, rnn_final_loss_unclipped=unclipped,
                   rnn_final_loss_clipped=clipped, chance_loss=math.log(8))
    holds = (bn_acc["with BatchNorm"] > bn_acc["without"] + 0.1 and clipped < unclipped)
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  f"12 sigmoid layers reach {bn_acc['without']:.1%} test accuracy without "
                  f"BatchNorm and {bn_acc['with BatchNorm']:.1%} with it. The RNN's gradient "
                  f"norm reached {max_norm:.3g}; its final loss is {unclipped:.3f} unclipped and "
                  f"{clipped:.3f} clipped (chance: {math.log(8):.3f}).", [plot])
