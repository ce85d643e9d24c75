"""MAP 9: why deep learning works. Data: the test error falls as a power of the training set.

Recipe ``fashion-mnist-fast`` (the airbench-style net) trained on nested subsets of
Fashion-MNIST's training images (``data.train_examples``: each subset contains the smaller
ones), from 1,000 to 16,000 images (all 60,000 would double the experiment's 15 minutes;
``deepatlas train fashion-mnist-fast`` is that point). Each size trains its recipe's 6 epochs, but at least
``MIN_STEPS`` optimiser steps, so the small sets are not simply under-trained. The test error
is fitted to a power law, err(N) = a N^-b (a line in log-log axes; the "power-law region" of
Hestness et al. 2017).

The claim holds when the error falls from the smallest to the largest set beyond the spread
over seeds, b > 0, and the fit explains at least 90% of the variance of log err (R^2 >= 0.9).

The section's other parts are measured elsewhere on the page: compute (the throughput of
``benchmarks/throughput.py`` in the README's Speed section; the 1000x of 2012-2022 needs GPUs
from both years), algorithms (``vanishing-gradients``: ReLU, 2.1; ``residual-depth``:
ResNet, 4.1; ``batchnorm-clipping``: BatchNorm, 5.1) and theory (``universal-approximation``,
1.3).
"""

from __future__ import annotations

import math

import numpy as np

from deepatlas.lab.common import (fit_arms, plot_power_law, save, scaling_verdict,
                                  without_fashion_mnist)
from deepatlas.lab.registry import Context, Result, experiment

MIN_STEPS = 200
BATCH = 256  # fashion-mnist-fast's batch size


def plan(n: int, epochs: int, min_steps: int) -> int:
    """Epochs for ``n`` images: the recipe's, or enough for ``min_steps`` steps."""
    return max(epochs, math.ceil(min_steps / max(n // BATCH, 1)))


@experiment(name="data-scaling", map_id="9", title="Why deep learning works: data",
            claim="More data is a cause of deep learning's success: the test error falls as a "
                  "power of the number of training images.",
            source="数据驱动:ImageNet等大数据集提供丰富特征学习素材",
            timed=True,
            implements="data.train_examples (nested subsets) on recipe fashion-mnist-fast; "
                       "a power-law fit")
def run(ctx: Context) -> Result:
    absent = without_fashion_mnist()
    if absent is not None:
        return absent
    sizes = ctx.size([1000, 2000, 4000, 8000, 16000], [500, 1000],
                     smoke=[300, 600])
    epochs, min_steps = ctx.size((6, MIN_STEPS), (1, 20), smoke=(1, 2))
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    common = ["train.tensorboard=false",
              "train.checkpoint_every_epochs=100000"]  # last.pt once, at the end
    if ctx.smoke:  # the code path only: two batches, a plain test pass
        common += ["train.limit_train_batches=2", "train.tta=none"]
    arms = {f"n{n}": ("fashion-mnist-fast", [f"data.train_examples={n}",
                                             f"train.epochs={plan(n, epochs, min_steps)}"])
            for n in sizes}
    runs = fit_arms(ctx.out, seeds, arms, lambda summary, _: (
        1 - float(summary["test_acc"]), float(summary["wall_s"])), common)
    errors = {n: [e for e, _ in runs[f"n{n}"]] for n in sizes}
    walls = {n: [w for _, w in runs[f"n{n}"]] for n in sizes}
    means, (a, b, r2), effects, status, note = scaling_verdict(
        sizes, errors, f"test error with {sizes[0]:,} - with {sizes[-1]:,} images")

    fig, ax = plot_power_law(sizes, errors, (a, b, r2))
    ax.set_xlabel("training images N")
    ax.set_ylabel("test error")
    ax.legend(fontsize=8)
    plot = save(fig, ctx.path("plot.png"))
    metrics = {"power_law_a": a, "power_law_b": b, "power_law_r2": r2}
    for n, mean in zip(sizes, means):
        metrics[f"test_error_n{n}"] = mean
        metrics[f"wall_s_n{n}"] = float(np.mean(walls[n]))
    details = (f"Test error {means[0]:.2%} with {sizes[0]:,} training images, {means[-1]:.2%} "
               f"with {sizes[-1]:,}; err = {a:.2f} N^-{b:.2f} (R² {r2:.2f}; mean of "
               f"{len(seeds)} seeds per size).")
    return Result(metrics, status, details, [plot], effects, seeds, note=note)
