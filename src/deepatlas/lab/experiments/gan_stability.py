"""MAP 4.3: on a ring of 8 Gaussians, a plain GAN tends to drop modes; WGAN-GP covers them.

Judged over seeds with :mod:`deepatlas.lab.stats`: WGAN-GP covers all 8 modes at the end (its
mean over seeds above 7, with the interval), and its worst coverage over the checkpoints of the
second half of training is above the GAN's, paired by seed (that is "keeps them covered").
The quick tour's 2 seeds are too few to decide, and the verdict says so.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare, verdict
from deepatlas.losses import (gan_discriminator_loss, gan_nonsaturating_generator_loss,
                              gradient_penalty, wasserstein_critic_loss,
                              wasserstein_generator_loss)

MODES, RADIUS, STD = 8, 2.0, 0.05
CENTRES = torch.tensor([[RADIUS * math.cos(2 * math.pi * i / MODES),
                         RADIUS * math.sin(2 * math.pi * i / MODES)] for i in range(MODES)])


def real_batch(n: int, g: torch.Generator) -> torch.Tensor:
    return CENTRES[torch.randint(0, MODES, (n,), generator=g)] + STD * torch.randn(n, 2,
                                                                                   generator=g)


def mlp(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, n_out))


def mode_stats(samples: torch.Tensor) -> tuple[int, float]:
    """(modes with >= 1% of the samples within 3 std, share of samples within 3 std of a mode)."""
    dist = torch.cdist(samples, CENTRES)  # (N, modes)
    near, nearest = dist.min(1)
    good = near < 3 * STD
    counts = torch.bincount(nearest[good], minlength=MODES)
    return int((counts >= 0.01 * len(samples)).sum()), good.float().mean().item()


def train(kind: str, steps: int, seed: int) -> tuple[list[tuple[int, int, float]], torch.Tensor]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    gen, disc = mlp(16, 2), mlp(2, 1)
    wgan = kind == "WGAN-GP"
    lr, betas = (1e-3, (0.5, 0.9)) if wgan else (1e-3, (0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    z_eval = torch.randn(2500, 16, generator=torch.Generator().manual_seed(7))
    history = []
    for step in range(1, steps + 1):
        for _ in range(5 if wgan else 1):  # WGAN-GP: 5 critic steps per generator step
            real = real_batch(256, g)
            fake = gen(torch.randn(256, 16, generator=g)).detach()
            if wgan:
                d_loss = wasserstein_critic_loss(disc(real).squeeze(1), disc(fake).squeeze(1)) \
                    + 10 * gradient_penalty(disc, real, fake)
            else:
                d_loss = gan_discriminator_loss(disc(real).squeeze(1), disc(fake).squeeze(1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        scores = disc(gen(torch.randn(256, 16, generator=g))).squeeze(1)
        g_loss = wasserstein_generator_loss(scores) if wgan else \
            gan_nonsaturating_generator_loss(scores)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if step % max(1, steps // 10) == 0:
            with torch.no_grad():
                history.append((step, *mode_stats(gen(z_eval))))
    with torch.no_grad():
        return history, gen(z_eval)


@experiment(name="gan-stability", map_id="4.3", title="GAN vs WGAN-GP on 8 Gaussians",
            claim="The Wasserstein distance with a gradient penalty (WGAN-GP) trains more stably "
                  "than the original GAN: it covers the data's modes and keeps them covered.",
            source=("训练技巧:", "使用Wasserstein距离改进稳定性", "添加梯度惩罚(WGAN-GP)"),
            implements="deepatlas.losses: gan_discriminator_loss, "
                       "gan_nonsaturating_generator_loss, wasserstein_critic_loss, "
                       "gradient_penalty")
def run(ctx: Context) -> Result:
    steps = ctx.size(2000, 250, smoke=20)
    seeds = [ctx.seed + s for s in range(2 if ctx.quick else 3)]
    runs = {kind: [train(kind, steps, s) for s in seeds] for kind in ("GAN", "WGAN-GP")}

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    real = real_batch(2500, torch.Generator().manual_seed(1))
    for ax, kind in zip(axes[:2], runs):
        samples = runs[kind][0][1]
        ax.scatter(real[:, 0].numpy(), real[:, 1].numpy(), s=2, c="0.8", label="data")
        ax.scatter(samples[:, 0].numpy(), samples[:, 1].numpy(), s=2, label=kind)
        ax.set_title(f"{kind}, seed {seeds[0]}, {steps} generator steps")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    for kind, results in runs.items():
        for i, (history, _) in enumerate(results):
            axes[2].plot([h[0] for h in history], [h[1] for h in history], "o-" if i == 0
                         else "o--", ms=3, color="C0" if kind == "GAN" else "C1",
                         label=kind if i == 0 else None)
    axes[2].set_xlabel("generator step")
    axes[2].set_ylabel("modes covered (of 8)")
    axes[2].legend()
    plot = save(fig, ctx.path("plot.png"))

    modes = {k: [r[0][-1][1] for r in v] for k, v in runs.items()}
    quality = {k: [r[0][-1][2] for r in v] for k, v in runs.items()}
    mean_modes = {k: sum(v) / len(v) for k, v in modes.items()}
    # Stability: the worst coverage seen at the checkpoints of the second half of training.
    worst = {k: [min(h[1] for h in r[0][len(r[0]) // 2:]) for r in v] for k, v in runs.items()}
    mean_worst = {k: sum(v) / len(v) for k, v in worst.items()}
    metrics = {f"modes_covered_{k}": m for k, m in mean_modes.items()}
    metrics.update({f"high_quality_share_{k}": sum(v) / len(v) for k, v in quality.items()})
    metrics.update({f"worst_modes_second_half_{k}": m for k, m in mean_worst.items()})
    metrics.update(steps=steps, seeds=len(seeds))
    effects = [against(f"WGAN-GP's modes covered at the end - {MODES - 1}", modes["WGAN-GP"],
                       MODES - 1),
               compare("WGAN-GP - GAN, worst coverage in the second half", worst["WGAN-GP"],
                       worst["GAN"])]
    result, note = verdict(effects)
    return Result(metrics, result,
                  f"Modes covered after {steps} generator steps, per seed: GAN {modes['GAN']}, "
                  f"WGAN-GP {modes['WGAN-GP']}; the worst coverage in the second half of "
                  f"training: GAN {worst['GAN']}, WGAN-GP {worst['WGAN-GP']}. Share of samples "
                  f"within 3 std of a mode: GAN "
                  f"{metrics['high_quality_share_GAN']:.0%}, WGAN-GP "
                  f"{metrics['high_quality_share_WGAN-GP']:.0%}.", [plot], effects, seeds,
                  note=note)
