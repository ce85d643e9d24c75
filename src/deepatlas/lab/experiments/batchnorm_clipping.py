"""MAP 5.1: BatchNorm lets a deep sigmoid net train; clipping tames an RNN's exploding
gradients.

Both parts run over the same seeds and are judged with :mod:`deepatlas.lab.stats`:

- BatchNorm: test accuracy with BatchNorm minus without, paired by seed, must be above 0.
- Clipping: the clipped RNN's final loss must be below chance, ln 8 = 2.08 nats (the loss of
  guessing among the 8 tokens: without that floor "clipping helps" could mean "diverges less
  badly while learning nothing"), and below the unclipped RNN's, paired by seed.

A loss that became NaN or infinite counts as 10 x ln 8 (training wrecked, far above chance),
so that the statistics stay finite.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.lab.common import PLAIN_RUN, epoch_losses, fit_arms, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare, verdict
from deepatlas.nn import RNNCell

BATCH = 64
# The `digits` recipe's MLP as 12 sigmoid layers of 64 (13 Linear layers), on every training
# digit, SGD with momentum at a constant rate, the recipe's regularisers off: only
# model.batch_norm differs between the arms.
BN_COMMON = [*PLAIN_RUN, "model.depth=13", "model.width=64", "model.activation=sigmoid",
             "data.val_fraction=0", "optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.9",
             "optim.nesterov=false", f"train.batch_size={BATCH}"]


LENGTH = 10  # steps between the token and the answer


def rnn_run(clip: float, steps: int, seed: int) -> tuple[list[float], list[float]]:
    """Copy the first token of a LENGTH-step sequence to the end, trained with a high learning
    rate and a recurrent matrix initialised large (spectral radius ~ 1.5): the gradient through
    time explodes."""
    torch.manual_seed(seed)
    cell, head = RNNCell(8, 64), nn.Linear(64, 8)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if p.ndim == 2 and p.shape == (64, 64):
                p.copy_(torch.randn(64, 64) * 1.5 / math.sqrt(64))
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    losses, norms = [], []
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        tokens = torch.randint(0, 8, (32, LENGTH), generator=g)
        x = F.one_hot(tokens, 8).float()  # (B, T, 8)
        h = torch.zeros(32, 64)
        for t in range(LENGTH):
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
            source=("梯度消失/爆炸", "解决方案:残差连接、梯度裁剪、BatchNorm",
                    "\\hat{x}=\\frac{x-μ_B}{\\sqrt{μ^2_B+\\epsilon}}"),
            correction="The source divides by √(μ_B² + ε); BatchNorm divides by √(σ_B² + ε), "
                       "the batch variance (see the batchnorm-formula experiment).",
            implements="deepatlas.nn.BatchNorm1d (model mlp, batch_norm), "
                       "deepatlas.nn.RNNCell, train.clip_grad_norm")
def run(ctx: Context) -> Result:
    epochs = ctx.size(45, 23, smoke=1)  # about 1,000 (quick: 500) steps of 64 digits
    rnn_steps = ctx.size(600, 300, smoke=20)
    seeds = [ctx.seed + s for s in range(ctx.size(5, 2, smoke=2))]

    bn = fit_arms(ctx.out, seeds, {"without": ("digits", ["model.batch_norm=false"]),
                                   "with BatchNorm": ("digits", ["model.batch_norm=true"])},
                  lambda summary, run_dir: (summary["test_acc"], epoch_losses(run_dir)),
                  common=[*BN_COMMON, f"train.epochs={epochs}"])
    bn_acc = {key: [acc for acc, _ in runs] for key, runs in bn.items()}
    bn_loss = {key: runs[0][1] for key, runs in bn.items()}
    rnn: dict[str, list] = {}
    for seed in seeds:
        for name, clip in (("no clipping", 0.0), ("clip norm 1", 1.0)):
            rnn.setdefault(name, []).append(rnn_run(clip, rnn_steps, seed))

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for key, losses in bn_loss.items():
        axes[0].plot(range(1, len(losses) + 1), losses, label=key)
    axes[0].set_title(f"12 sigmoid layers on digits, seed {seeds[0]}")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss, epoch mean")
    axes[0].legend(fontsize=7)
    for key, runs in rnn.items():
        losses, norms = runs[0]
        axes[1].semilogy(norms, label=key)
        axes[2].plot([v if math.isfinite(v) else float("nan") for v in losses], label=key)
    axes[2].axhline(math.log(8), color="k", ls=":", lw=1, label="chance, ln 8")
    axes[1].set_title("RNN gradient norm (before clipping)")
    axes[2].set_title("RNN training loss")
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    chance = math.log(8)

    def tail(values):
        values = [v if math.isfinite(v) else 10 * chance for v in values[-30:]]
        return min(sum(values) / len(values), 10 * chance)

    unclipped = [tail(losses) for losses, _ in rnn["no clipping"]]
    clipped = [tail(losses) for losses, _ in rnn["clip norm 1"]]
    max_norm = max(v for _, norms in rnn["no clipping"] for v in norms if math.isfinite(v))
    effects = [
        compare("BatchNorm - none, test accuracy of 12 sigmoid layers",
                bn_acc["with BatchNorm"], bn_acc["without"]),
        against(f"clipped RNN's final loss - chance (ln 8 = {chance:.3f})", clipped, chance,
                direction="less"),
        compare("clipped - unclipped RNN, final loss", clipped, unclipped, direction="less"),
    ]
    metrics = {f"deep_sigmoid_test_acc_{k.replace(' ', '_')}": sum(v) / len(v)
               for k, v in bn_acc.items()}
    metrics.update(rnn_max_grad_norm_unclipped=max_norm,
                   rnn_final_loss_unclipped=sum(unclipped) / len(unclipped),
                   rnn_final_loss_clipped=sum(clipped) / len(clipped), chance_loss=chance,
                   seeds=len(seeds))
    result, note = verdict(effects)
    return Result(metrics, result,
                  f"Mean over seeds {seeds}: 12 sigmoid layers reach "
                  f"{metrics['deep_sigmoid_test_acc_without']:.1%} test accuracy without "
                  f"BatchNorm and {metrics['deep_sigmoid_test_acc_with_BatchNorm']:.1%} with it. "
                  f"The RNN's gradient norm reached {max_norm:.3g}; its final loss is "
                  f"{metrics['rnn_final_loss_unclipped']:.3f} unclipped and "
                  f"{metrics['rnn_final_loss_clipped']:.3f} clipped (chance: {chance:.3f}).",
                  [plot], effects, seeds, note=note)
