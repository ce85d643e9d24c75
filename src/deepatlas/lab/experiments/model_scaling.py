"""MAP 6.2, going further: a scaling law. Held-out loss falls as a power of the model's size.

Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") fit L(N) = (N_c / N)^alpha_N,
with N the non-embedding parameters (``GPT.num_params(embeddings=False)``: the token and
position tables left out) and alpha_N ~ 0.076, for models trained to convergence on ample
data. Here: the ``gpt-austen`` recipe (character level) at five sizes, from 1 layer of width 32
to 4 layers of width 128 (about 13 thousand to 0.8 million non-embedding parameters), each
trained on the same number of characters (``STEPS`` steps of 16 windows of 64), the same
schedule and learning rate. The held-out loss (nats per character on the last 5% of each
novel; nothing is chosen on it) is fitted to L = a N^-b, a line in log-log axes.

At a fixed token budget the law is Kaplan's L(N, D): small models are limited by their size,
and the largest ones by the data they have seen, so the curve bends. The claim holds when the
largest model's loss is below the smallest's beyond the spread over seeds, b > 0, and the fit
explains at least 90% of the variance of log L (R^2 >= 0.9).
"""

from __future__ import annotations

from deepatlas.lab.common import (fit_arms, plot_power_law, save, scaling_verdict,
                                  without_data)
from deepatlas.lab.registry import Context, Result, experiment

SIZES = [(1, 32), (2, 48), (2, 64), (3, 96), (4, 128)]  # (layers, d_model), 4 heads each
STEPS, BATCH, CONTEXT = 800, 16, 64  # 819,200 characters seen by every size
KAPLAN_ALPHA_N = 0.076


def non_embedding_parameters(layers: int, d_model: int) -> int:
    """Kaplan's N for a character GPT of this shape (the vocabulary does not enter N)."""
    import torch

    from deepatlas.models.gpt import GPT, GPTConfig

    with torch.device("meta"):
        return GPT(GPTConfig(context=CONTEXT, d_model=d_model, heads=4,
                             layers=layers)).num_params(embeddings=False)


@experiment(name="model-scaling", map_id="6.2", title="Scaling: held-out loss against size",
            claim="Bigger language models are better, as a power law: held-out loss falls as "
                  "N^-alpha in the non-embedding parameters N (Kaplan et al. 2020).",
            source="文本生成:GPT-3(1750亿参数)",
            implements="deepatlas.models.gpt (num_params(embeddings=False)); recipe "
                       "gpt-austen at five sizes; a power-law fit")
def run(ctx: Context) -> Result:
    absent = without_data("austen")
    if absent is not None:
        return absent
    sizes = ctx.size(SIZES, SIZES[:3], smoke=SIZES[:3])
    steps = ctx.size(STEPS, 100, smoke=3)
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    params = [non_embedding_parameters(*size) for size in sizes]
    common = ["train.epochs=1", "data.download=false", "train.tensorboard=false",
              "model.heads=4", f"model.context={CONTEXT}", f"train.batch_size={BATCH}",
              f"train.limit_train_batches={steps}"]
    arms = {f"L{layers}-d{width}": ("gpt-austen", [f"model.layers={layers}",
                                                   f"model.d_model={width}"])
            for layers, width in sizes}
    runs = fit_arms(ctx.out, seeds, arms,
                    lambda summary, _: float(summary["test_nats_per_char"]), common)
    losses = {n: runs[arm] for n, arm in zip(params, arms)}
    means, (a, b, r2), effects, status, note = scaling_verdict(
        params, losses, f"held-out nats/char, N = {params[0]:,} - N = {params[-1]:,}", digits=3)

    fig, ax = plot_power_law(params, losses, (a, b, r2), digits=3)
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # 10^4, 10^5, 10^6 only: no crowding
    ax.yaxis.set_major_locator(LogLocator(subs="all"))  # the losses span less than a decade
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("held-out nats per character")
    ax.set_title(f"{steps * BATCH * CONTEXT:,} characters seen by each size", fontsize=9)
    ax.legend(fontsize=8)
    plot = save(fig, ctx.path("plot.png"))
    metrics = {"power_law_a": a, "power_law_b": b, "power_law_r2": r2,
               "kaplan_alpha_n": KAPLAN_ALPHA_N, "characters_seen": steps * BATCH * CONTEXT}
    for (layers, width), n, mean in zip(sizes, params, means):
        metrics[f"test_nats_per_char_L{layers}_d{width}"] = mean
        metrics[f"non_embedding_parameters_L{layers}_d{width}"] = n
    details = (f"Held-out {means[0]:.3f} nats/char at N = {params[0]:,}, {means[-1]:.3f} at "
               f"N = {params[-1]:,}; L = {a:.2f} N^-{b:.3f} (R² {r2:.2f}; Kaplan et al.'s "
               f"alpha_N: {KAPLAN_ALPHA_N}); {steps * BATCH * CONTEXT:,} characters per size, "
               f"mean of {len(seeds)} seeds.")
    return Result(metrics, status, details, [plot], effects, seeds, note=note)
