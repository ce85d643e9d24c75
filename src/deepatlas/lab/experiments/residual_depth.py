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
from torch.nn import functional as F

from deepatlas.lab.common import (PLAIN_RUN, digits_tensors, epoch_losses, fit_arms, last_model,
                                  pyplot, save)
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict

BATCH = 64
# Model residual-mlp on every training digit (no validation split), SGD with momentum at a
# constant rate: only the depth and the skips differ between the arms.
COMMON = [*PLAIN_RUN, "model.name=residual-mlp", "model.width=64", "data.val_fraction=0",
          "optim.name=sgd", "optim.lr=0.02", "optim.momentum=0.9", "optim.nesterov=false",
          f"train.batch_size={BATCH}"]


@experiment(name="residual-depth", map_id="4.1, 5.1", title="Residual connections and depth",
            claim="A plain network trains worse as it gets deeper; the same network with "
                  "residual connections y = relu(x + F(x)) does not.",
            source=("ResNet残差块:", "return F.relu(x + identity)", "解决方案:残差连接"),
            implements="deepatlas.nn.ResidualBlock's rule relu(x + F(x)), on MLP blocks: "
                       "model residual-mlp")
def run(ctx: Context) -> Result:
    xtr, ytr, _, _ = digits_tensors()  # every training digit, as the runs train on
    depths = ctx.size([2, 8, 24], [2, 24])
    steps = ctx.size(800, 200, smoke=60)  # quick: the tour stays in minutes
    seeds = [ctx.seed + s for s in range(ctx.size(5, 3, smoke=2))]
    epochs = max(1, round(steps / (len(xtr) // BATCH)))
    steps = epochs * (len(xtr) // BATCH)  # the steps actually run

    def read(summary, run_dir) -> tuple[float, list[float]]:
        """The last model's loss on the whole training set (not the last noisy batches),
        and the run's mean training loss of every epoch."""
        with torch.no_grad():
            loss = F.cross_entropy(last_model(run_dir)(xtr), ytr).item()
        return loss, epoch_losses(run_dir)

    arms = {f"{kind} {blocks}": ("digits", [f"model.blocks={blocks}",
                                            f"model.residual={str(kind == 'residual').lower()}"])
            for kind in ("plain", "residual") for blocks in depths}
    runs = fit_arms(ctx.out, seeds, arms, read, common=[*COMMON, f"train.epochs={epochs}"])
    final: dict[str, dict[int, list[float]]] = {
        kind: {b: [loss for loss, _ in runs[f"{kind} {b}"]] for b in depths}
        for kind in ("plain", "residual")}
    curves = {(kind, b): runs[f"{kind} {b}"][0][1] for kind in final for b in depths}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for (kind, blocks), losses in curves.items():
        left.plot(range(1, len(losses) + 1), losses, ls="-" if kind == "residual" else "--",
                  label=f"{kind}, {2 * blocks + 2} layers")
    left.set_xlabel(f"epoch (seed {seeds[0]})")
    left.set_ylabel("training loss, epoch mean")
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
