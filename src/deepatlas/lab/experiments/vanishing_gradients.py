"""MAP 2.1: sigmoid saturates and its gradients vanish with depth; ReLU and Swish do not."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from deepatlas.lab.common import accuracy, digits_tensors, fit, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.models import create_model

DEPTH = 20


def layer_grad_norms(model, x, y) -> list[float]:
    """||dL/dW_l|| for every Linear layer, first to last."""
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules()
            if isinstance(m, torch.nn.Linear)]


@experiment(name="vanishing-gradients", map_id="2.1", title="Activations and vanishing gradients",
            claim="Sigmoid's gradients vanish in a deep network; ReLU and Swish keep them "
                  "alive, so the deep network trains.",
            source="Sigmoid | 输出(0,1),易梯度消失 ; ReLU | 缓解梯度消失 ; Swish | 平滑非单调",
            implements="deepatlas.nn.Swish, deepatlas.nn.ACTIVATIONS, deepatlas.models mlp "
                       "(He initialisation for all three, so only the activation differs)")
def run(ctx: Context) -> Result:
    xtr, ytr, xte, yte = digits_tensors()
    steps = 400 if ctx.quick else 2000
    norms, after, accs = {}, {}, {}
    for name in ("sigmoid", "relu", "swish"):
        torch.manual_seed(ctx.seed)
        model = create_model("mlp", in_channels=1, image_size=8, num_classes=10, depth=DEPTH,
                             width=64, activation=name, init="he")
        norms[name] = layer_grad_norms(model, xtr[:256], ytr[:256])
        fit(model, xtr, ytr, steps, torch.optim.Adam(model.parameters(), lr=1e-3),
            seed=ctx.seed)
        after[name] = layer_grad_norms(model, xtr[:256], ytr[:256])
        accs[name] = accuracy(model, xte, yte)

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for name in norms:
        left.semilogy(range(1, DEPTH + 1), norms[name], "o-", ms=3, label=name)
        right.semilogy(range(1, DEPTH + 1), after[name], "o-", ms=3, label=name)
    left.set_title("at initialisation")
    right.set_title(f"after {steps} Adam steps")
    for ax in (left, right):
        ax.set_xlabel("layer (1 = next to the input)")
        ax.set_ylabel("||dL/dW||")
        ax.legend()
    plot = save(fig, ctx.path("plot.png"))

    ratio = {n: v[0] / v[-1] for n, v in norms.items()}  # first layer vs last, at init
    holds = (ratio["sigmoid"] < 1e-3 * min(ratio["relu"], ratio["swish"])
             and accs["sigmoid"] < min(accs["relu"], accs["swish"]) - 0.1)
    metrics = {f"first_to_last_grad_ratio_{n}": r for n, r in ratio.items()}
    metrics.update({f"test_acc_{n}": a for n, a in accs.items()}, depth=DEPTH, steps=steps)
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  f"In a {DEPTH}-layer MLP at init the first layer's gradient is "
                  + ", ".join(f"{r:.1e} of the last layer's with {n}" for n, r in ratio.items())
                  + f". After {steps} steps on digits: "
                  + ", ".join(f"{n} {a:.1%}" for n, a in accs.items()) + " test accuracy.",
                  [plot])
