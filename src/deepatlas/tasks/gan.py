"""GANs (MAP 4.3): ``task = "gan"``, for ``deepatlas train gan-dcgan | gan-wgan-gp | gan-progan``.

Two optimiser groups, the critic (every batch) and the generator (every ``gan.critic_steps``-th
batch, after the critic); both take ``optim.*``. The config picks the loss and the schedule:

- **DCGAN** (Radford et al. 2016): ``max_D log D(x) + log(1 - D(G(z)))``; the generator
  maximises ``log D(G(z))`` (the non-saturating form; MAP 4.3's minimax form is
  ``gan.loss=minimax``). Adam 2e-4, beta1 0.5.
- **WGAN-GP** (Gulrajani et al. 2017): the critic maximises ``E f(x) - E f(G(z))`` minus
  ``lambda * E(||grad f(x^)|| - 1)^2``; 5 critic steps per generator step, Adam 1e-4, betas
  (0, 0.9), lambda 10, no BatchNorm in the critic.
- **ProGAN** (Karras et al. 2018): WGAN-GP plus the drift term ``0.001 E f(x)^2``, grown
  4 -> 8 -> 16 -> 32 px with fade-in (:class:`deepatlas.models.gan.Growth`), and an
  exponential moving average of the generator (``train.ema_decay``). The paper's decay 0.999
  (a half-life of 693 steps) suits its 12k+ steps per stage; with the ~1,200 of a CPU budget
  the average still held mostly untrained new layers (measured: 1 class of 10 covered where
  the raw generator covered 6), so the recipe uses 0.995 (half-life 138 steps).

Quality is the Frechet distance and class coverage of :mod:`deepatlas.tasks.gan_quality`
against real training images (the monitor: best.pt has the lowest FD). The run directory also
gets ``samples/epoch-NNN.png`` (fixed noise), ``samples/final.png`` and ``losses.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.config import RunConfig
from deepatlas.data import TensorSplit, load_data
from deepatlas.data.loaders import TensorBatches
from deepatlas.errors import UserError
from deepatlas.losses import (gan_discriminator_loss, gan_minimax_generator_loss,
                              gan_nonsaturating_generator_loss, gradient_penalty,
                              wasserstein_critic_loss, wasserstein_generator_loss)
from deepatlas.models import create_model, model_options
from deepatlas.models.gan import Growth, at_stage, is_progressive
from deepatlas.tasks.gan_quality import class_coverage, frechet_distance, load_judge
from deepatlas.train import Context, OptimizerGroup, StepOutput, Task

GRID = 64  # samples in each grid, from fixed noise
GENERATOR_LOSSES = {"wgan-gp": wasserstein_generator_loss, "minimax": gan_minimax_generator_loss,
                    "nonsaturating": gan_nonsaturating_generator_loss}


def real_images(config: RunConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """The training images as floats in [-1, 1], padded or resized to ``gan.image_size``."""
    data = load_data(config.data.name, data_dir=config.data.dir, download=config.data.download)
    if not isinstance(data.train, TensorSplit):
        raise UserError(f"GAN recipes train on in-memory data sets (digits, mnist, "
                        f"fashion-mnist, cifar10), not {data.name}")
    x = data.train.images.float().div(127.5).sub(1)  # (N, C, H, W) in [-1, 1]
    size, h = config.gan.image_size, x.shape[-1]
    if size - 4 <= h < size:
        pad = (size - h) // 2
        x = F.pad(x, (pad, size - h - pad, pad, size - h - pad), value=-1.0)  # black border
    elif h != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    meta = {"name": data.name, "classes": data.classes, "in_channels": data.in_channels,
            "image_size": size, "source": data.source}
    return x.clamp(-1, 1), meta


def build_gan(config: RunConfig, channels: int) -> tuple[nn.Module, nn.Module]:
    size, g = config.gan.image_size, {k: v for k, v in config.model.items() if k != "name"}
    generator = create_model(config.model["name"], in_channels=channels, image_size=size, **g)
    d: dict[str, Any] = {"width": config.gan.discriminator_width}
    if "batch_norm" in model_options(config.gan.discriminator):
        d["batch_norm"] = config.gan.loss != "wgan-gp"  # a WGAN critic's penalty is per sample
    critic = create_model(config.gan.discriminator, in_channels=channels, image_size=size, **d)
    return generator, critic


class Gan(Task):
    name = "gan"
    uses = {"gan.*"}
    monitor = ("fd", "min")  # against training images: the test set plays no part
    primary = "fd"
    image_task = True
    ema_model = "generator"

    def setup(self, ctx: Context) -> None:
        cfg, self.ctx, self.step = self.config, ctx, 0
        if ctx.dist.enabled and cfg.gan.loss == "wgan-gp":
            raise UserError("the gradient penalty needs a second backward pass, which "
                            "DistributedDataParallel cannot give; train WGAN-GP in one process")
        real, self.meta = real_images(cfg)
        real = real.to(ctx.device)
        self.train_size = len(real)
        generator, critic = build_gan(cfg, real.shape[1])
        self.models = {"critic": critic.to(ctx.device), "generator": generator.to(ctx.device)}
        self.progressive = is_progressive(generator)
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = TensorBatches(real, batch_size=per_rank, seed=cfg.seed,
                                          device=ctx.device, rank=ctx.dist.rank,
                                          world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(real)} training images; lower it")
        stages = int(math.log2(cfg.gan.image_size)) - 1
        self.growth = Growth(stages, len(self.train_loader) * cfg.train.epochs,
                             cfg.gan.fade_fraction) if self.progressive else None
        self.fixed_z = torch.randn(GRID, generator.z_dim,
                                   generator=torch.Generator().manual_seed(1234)).to(ctx.device)
        self.judge = load_judge(self._classifier(), ctx.device)
        n = min(cfg.gan.fd_samples, len(real))
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:n]
        self.real_features, _ = self.judge(real[pick])
        if ctx.is_main:
            (ctx.out_dir / "samples").mkdir(exist_ok=True)

    def _classifier(self) -> str:
        """The FD's ruler: the bundled Fashion-MNIST classifier, or for other data a quick
        classifier trained on the same data in ``out/classifier`` (seconds for digits)."""
        choice = self.config.gan.classifier
        if choice != "auto":
            return choice
        if self.meta["name"] == "fashion-mnist":
            from deepatlas.tasks.gan_quality import bundled_classifier

            return str(bundled_classifier())
        path = self.ctx.out_dir / "classifier"
        if not (path / "last.pt").is_file():
            from deepatlas.config import list_recipes, load_recipe, set_key
            from deepatlas.tasks.classify_images import ClassifyImages
            from deepatlas.train.trainer import Trainer

            name = self.meta["name"]
            if name not in list_recipes():
                raise UserError(f"no classifier to judge {name} samples with: set "
                                "gan.classifier to a trained run of that data set")
            with torch.random.fork_rng(devices=[]):
                recipe = load_recipe(name, ["train.tensorboard=false"])
                set_key(recipe, "data.dir", self.config.data.dir)
                Trainer(ClassifyImages(recipe), path, progress=False).fit()
        return str(path)

    # ------------------------------------------------------------------ one step

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("critic"), OptimizerGroup("generator", self.config.gan.critic_steps)]

    def _stage(self, step: int) -> tuple[int, float]:
        return self.growth.at(step) if self.progressive else (0, 1.0)

    def _run(self, name: str, x: torch.Tensor, stage: int, alpha: float,
             model: nn.Module | None = None) -> torch.Tensor:
        model = model or self.train_models[name]
        return model(x, stage, alpha) if self.progressive else model(x)

    def training_step(self, batch: torch.Tensor, group: str) -> StepOutput:
        gan, real = self.config.gan, batch  # (B, C, H, W) in [-1, 1]
        stage, alpha = self._stage(self.step)
        if group == "critic":
            if self.progressive:
                real = at_stage(real, stage, alpha)
            z = torch.randn(len(real), self.models["generator"].z_dim, device=real.device)
            # One sample serves both steps: the generator's step reuses it (as Radford et al.).
            self.fake = self._run("generator", z, stage, alpha)
            real_scores = self._run("critic", real, stage, alpha)
            fake_scores = self._run("critic", self.fake.detach(), stage, alpha)
            if gan.loss == "wgan-gp":
                loss = wasserstein_critic_loss(real_scores, fake_scores) + gan.gp_lambda * \
                    gradient_penalty(lambda x: self._run("critic", x, stage, alpha), real,
                                     self.fake)
                if gan.drift:
                    loss = loss + gan.drift * real_scores.square().mean()
            else:
                loss = gan_discriminator_loss(real_scores, fake_scores)
            return StepOutput(loss, {"d_loss": loss.detach()}, n=len(real))
        scores = self._run("critic", self.fake, stage, alpha)
        loss = GENERATOR_LOSSES[gan.loss](scores)
        return StepOutput(loss, {"g_loss": loss.detach()}, n=len(scores))

    # ------------------------------------------------------------------ quality and images

    @torch.no_grad()
    def samples(self, generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Images at full size in [-1, 1] from ``generator`` (the EMA's when kept)."""
        stage, alpha = self._stage(max(0, self.step - 1))
        images = torch.cat([self._run("generator", chunk, stage, alpha, generator)
                            for chunk in z.split(500)])
        if images.shape[-1] != self.config.gan.image_size:  # an early ProGAN stage
            images = F.interpolate(images, size=self.config.gan.image_size, mode="nearest")
        return images.clamp(-1, 1)

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        generator = models["generator"]
        z = torch.randn(len(self.real_features), generator.z_dim,
                        generator=torch.Generator().manual_seed(99)).to(self.ctx.device)
        features, probs = self.judge(self.samples(generator, z))
        out = {"fd": frechet_distance(self.real_features, features), **class_coverage(probs)}
        if self.progressive:
            stage, alpha = self._stage(max(0, self.step - 1))
            out.update(stage=stage, alpha=alpha, resolution=4 * 2**stage)
        return out

    def save_grid(self, generator: nn.Module, name: str) -> Path:
        from torchvision.utils import save_image

        path = self.ctx.out_dir / "samples" / name
        save_image(self.samples(generator, self.fixed_z), path, nrow=8, normalize=True,
                   value_range=(-1, 1))
        return path

    def on_epoch_end(self, epoch: int, metrics: dict[str, float],
                     models: dict[str, nn.Module]) -> None:
        self.save_grid(models["generator"], f"epoch-{epoch + 1:03d}.png")

    def finish(self, history: list[dict[str, float]], models: dict[str, nn.Module]
               ) -> dict[str, Any]:
        from deepatlas.tasks.gan_images import plot_losses

        grid = self.save_grid(models["generator"], "final.png")
        plot_losses(history, self.ctx.out_dir / "losses.png")
        return {"loss": self.config.gan.loss, "fd_samples": len(self.real_features),
                "fd_features": "deepatlas classifier (not Inception FID)", "steps": self.step,
                "generator_params": sum(p.numel() for p in self.models["generator"].parameters()),
                "critic_params": sum(p.numel() for p in self.models["critic"].parameters()),
                "samples": str(grid)}

    def describe_data(self) -> dict[str, Any]:
        return {**self.meta, "stage": list(self._stage(max(0, self.step - 1)))}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.meta["name"], "source": self.meta["source"],
                "train": self.train_size, "val": 0}
