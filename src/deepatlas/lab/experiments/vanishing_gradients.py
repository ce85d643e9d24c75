"""MAP 2.1: sigmoid saturates and its gradients vanish with depth; ReLU and Swish do not.

Judged over seeds with :mod:`deepatlas.lab.stats`, each paired by seed:

- at initialisation, log10 of (first-layer gradient / last-layer gradient) is higher with ReLU
  and with Swish than with sigmoid (the interval above 0): sigmoid's gradient vanishes on the
  way down;
- after training, test accuracy with ReLU and with Swish is above sigmoid's (the deep network
  trains).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from deepatlas.lab.common import PLAIN_RUN, digits_tensors, fit_arms, last_model, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict
from deepatlas.models import create_model

DEPTH = 20
NAMES = ("sigmoid", "relu", "swish")
BATCH = 64
# The `digits` recipe's MLP made deep and narrow, He-initialised for every activation (so only
# the activation differs), with Adam at a constant rate and the recipe's regularisers off.
COMMON = [*PLAIN_RUN, f"model.depth={DEPTH}", "model.width=64", "model.init=he",
          "optim.name=adam", "optim.lr=0.001", f"train.batch_size={BATCH}"]


def layer_grad_norms(model, x, y) -> list[float]:
    """||dL/dW_l|| for every Linear layer, first to last."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules()
            if isinstance(m, torch.nn.Linear)]


@experiment(name="vanishing-gradients", map_id="2.1", title="Activations and vanishing gradients",
            claim="Sigmoid's gradients vanish in a deep network; ReLU and Swish keep them "
                  "alive, so the deep network trains.",
            source=("| 输出(0,1),易梯度消失 |", "| ReLU | max(0,x) | 缓解梯度消失,计算高效 |",
                    "| Swish | x⋅sigmoid(βx) | 平滑非单调,Google提出 |"),
            implements="deepatlas.nn.Swish, deepatlas.nn.ACTIVATIONS, deepatlas.models mlp "
                       "(He initialisation for all three, so only the activation differs)")
def run(ctx: Context) -> Result:
    import math

    from deepatlas.config import load_recipe
    from deepatlas.data import load_data

    xtr, ytr, _, _ = digits_tensors()
    # The batch whose gradients are measured: from every training digit, so about a tenth of
    # it is the runs' validation split; the norms need only inputs of the data's kind.
    x, y = xtr[:256], ytr[:256]
    steps = ctx.size(800, 200, smoke=20)
    seeds = [ctx.seed + s for s in range(ctx.size(5, 3, smoke=2))]
    log_ratio, norms = {n: [] for n in NAMES}, {}
    for seed in seeds:  # at initialisation: the architecture and its init, before training
        for name in NAMES:
            torch.manual_seed(seed)
            model = create_model("mlp", in_channels=1, image_size=8, num_classes=10,
                                 depth=DEPTH, width=64, activation=name, init="he")
            at_init = layer_grad_norms(model, x, y)
            log_ratio[name].append(math.log10(max(at_init[0], 1e-300) / at_init[-1]))
            if seed == seeds[0]:
                norms[name] = at_init
    # Then each trained on the Trainer: its test accuracy, and (first seed) its gradients.
    val_fraction = load_recipe("digits", COMMON).data.val_fraction
    per_epoch = len(load_data("digits", val_fraction=val_fraction).train) // BATCH  # full batches
    epochs = max(1, round(steps / per_epoch))
    steps = epochs * per_epoch  # the steps actually run
    runs = fit_arms(ctx.out, seeds, {n: ("digits", [f"model.activation={n}"]) for n in NAMES},
                    lambda summary, run_dir: (summary["test_acc"], run_dir),
                    common=[*COMMON, f"train.epochs={epochs}"])
    accs = {n: [acc for acc, _ in runs[n]] for n in NAMES}
    after = {n: layer_grad_norms(last_model(runs[n][0][1]), x, y) for n in NAMES}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for name in norms:
        left.semilogy(range(1, DEPTH + 1), norms[name], "o-", ms=3, label=name)
        right.semilogy(range(1, DEPTH + 1), after[name], "o-", ms=3, label=name)
    left.set_title(f"at initialisation (seed {seeds[0]})")
    right.set_title(f"after {steps} Adam steps")
    for ax in (left, right):
        ax.set_xlabel("layer (1 = next to the input)")
        ax.set_ylabel("||dL/dW||")
        ax.legend()
    plot = save(fig, ctx.path("plot.png"))

    effects = []
    for name in ("relu", "swish"):
        effects.append(compare(f"{name} - sigmoid, log10 first/last layer gradient at init",
                               log_ratio[name], log_ratio["sigmoid"]))
        effects.append(compare(f"{name} - sigmoid, test accuracy after training", accs[name],
                               accs["sigmoid"]))
    ratio = {n: 10 ** (sum(v) / len(v)) for n, v in log_ratio.items()}
    acc = {n: sum(v) / len(v) for n, v in accs.items()}
    metrics = {f"first_to_last_grad_ratio_{n}": r for n, r in ratio.items()}
    metrics.update({f"test_acc_{n}": a for n, a in acc.items()}, depth=DEPTH, steps=steps,
                   seeds=len(seeds))
    result, note = verdict(effects)
    return Result(metrics, result,
                  f"In a {DEPTH}-layer MLP at init the first layer's gradient is "
                  + ", ".join(f"{r:.1e} of the last layer's with {n}" for n, r in ratio.items())
                  + f" (geometric mean over seeds {seeds}). After {steps} steps on digits: "
                  + ", ".join(f"{n} {a:.1%}" for n, a in acc.items()) + " test accuracy.",
                  [plot], effects, seeds, note=note)
