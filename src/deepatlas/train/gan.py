"""Training GANs (MAP 4.3): ``deepatlas train gan-dcgan | gan-wgan-gp | gan-progan``.

One loop serves the three recipes; the config picks the loss and the schedule:

- **DCGAN** (Radford et al. 2016): ``max_D log D(x) + log(1 - D(G(z)))``; the generator
  maximises ``log D(G(z))`` (the non-saturating form; MAP 4.3's minimax form is
  ``gan.loss=minimax``). Adam 2e-4, beta1 0.5.
- **WGAN-GP** (Gulrajani et al. 2017): the critic maximises ``E f(x) - E f(G(z))`` minus
  ``lambda * E(||grad f(x^)|| - 1)^2``; 5 critic steps per generator step, Adam 1e-4, betas
  (0, 0.9), lambda 10, no BatchNorm in the critic.
- **ProGAN** (Karras et al. 2018): WGAN-GP plus the drift term ``0.001 E f(x)^2``, grown
  4 -> 8 -> 16 -> 32 px; each new resolution fades in (alpha 0 -> 1) and the real images are
  blended the same way; pixel norm, minibatch stddev, equalised LR (in the models) and an
  exponential moving average of the generator's weights for the samples. The paper's decay
  0.999 (a half-life of 693 steps) suits its 12k+ steps per stage; with the ~1,200 of a CPU
  budget the average still held mostly untrained new layers (measured: 1 class of 10 covered
  where the raw generator covered 6), so the recipe uses 0.995 (half-life 138 steps, 8.8k
  images, close to StyleGAN2's 10k-image half-life).

A run directory gets ``samples/epoch-NNN.png`` (fixed noise), ``samples/final.png``,
``losses.png``, ``metrics.jsonl``, ``summary.json`` and ``last.pt``; quality is the Frechet
distance and class coverage of :mod:`deepatlas.train.gan_quality`, every epoch.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import tomli_w
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from deepatlas.config import RunConfig
from deepatlas.errors import TrainingDiverged, UserError
from deepatlas.losses import (gan_discriminator_loss, gan_minimax_generator_loss,
                              gan_nonsaturating_generator_loss, gradient_penalty,
                              wasserstein_critic_loss, wasserstein_generator_loss)
from deepatlas.models import create_model, model_options
from deepatlas.train.checkpoint import load_checkpoint, save_checkpoint
from deepatlas.train.distributed import resolve_device
from deepatlas.train.gan_quality import class_coverage, frechet_distance, load_judge
from deepatlas.train.rundir import prepare_out_dir
from deepatlas.train.runinfo import machine_info
from deepatlas.train.runtime import rng_state, seed_everything, set_rng_state

GRID = 64  # samples in each grid, from fixed noise


def real_images(config: RunConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """The training images as floats in [-1, 1], padded or resized to ``gan.image_size``."""
    from deepatlas.data import TensorSplit, load_data

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
    options = model_options(config.gan.discriminator)
    d: dict[str, Any] = {"width": config.gan.discriminator_width}
    if "batch_norm" in options:  # a WGAN critic has no BatchNorm: the penalty is per sample
        d["batch_norm"] = config.gan.loss != "wgan-gp"
    critic = create_model(config.gan.discriminator, in_channels=channels, image_size=size, **d)
    return generator, critic


def is_progressive(generator: nn.Module) -> bool:
    return "stage" in inspect.signature(generator.forward).parameters


class Growth:
    """ProGAN's schedule: the run's steps split evenly over the stages; the first
    ``fade`` share of every stage after the first fades the new layers in."""

    def __init__(self, stages: int, total_steps: int, fade: float) -> None:
        self.stages, self.per_stage, self.fade = stages, max(1, total_steps // stages), fade

    def at(self, step: int) -> tuple[int, float]:
        stage = min(step // self.per_stage, self.stages - 1)
        into = (step - stage * self.per_stage) / self.per_stage
        alpha = 1.0 if stage == 0 or self.fade == 0 else min(1.0, into / self.fade)
        return stage, alpha


def at_stage(x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
    """Real images at stage ``stage``'s resolution (4 * 2^stage), blended during a fade-in
    with the previous resolution upsampled, as the generator's output is."""
    size = 4 * 2**stage
    factor = x.shape[-1] // size
    low = F.avg_pool2d(x, factor) if factor > 1 else x
    if alpha < 1 and stage > 0:
        coarse = F.interpolate(F.avg_pool2d(low, 2), scale_factor=2, mode="nearest")
        low = alpha * low + (1 - alpha) * coarse
    return low


class GanTrainer:
    def __init__(self, config: RunConfig, out_dir: str | Path, *, device: str = "auto",
                 resume: bool = False) -> None:
        self.config, self.out_dir, self.resume = config, Path(out_dir), resume
        self.device = resolve_device(device)

    def _setup(self) -> None:
        cfg = self.config
        prepare_out_dir(self.out_dir, self.resume)
        (self.out_dir / "samples").mkdir(exist_ok=True)
        seed_everything(cfg.seed)
        self.real, self.meta = real_images(cfg)
        self.real = self.real.to(self.device)
        if len(self.real) < cfg.train.batch_size:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(self.real)} training images; lower it")
        self.G, self.D = (m.to(self.device) for m in build_gan(cfg, self.real.shape[1]))
        self.progressive = is_progressive(self.G)
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.optim.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.optim.lr, betas=betas)
        self.ema = None
        if cfg.gan.generator_ema > 0:
            self.ema = AveragedModel(self.G, multi_avg_fn=get_ema_multi_avg_fn(
                cfg.gan.generator_ema), use_buffers=True)
        self.steps_per_epoch = len(self.real) // cfg.train.batch_size
        stages = int(math.log2(cfg.gan.image_size)) - 1
        self.growth = Growth(stages, self.steps_per_epoch * cfg.train.epochs,
                             cfg.gan.fade_fraction) if self.progressive else None
        z_dim = self.G.z_dim
        self.fixed_z = torch.randn(GRID, z_dim, generator=torch.Generator().manual_seed(1234)
                                   ).to(self.device)
        self.judge = load_judge(self._classifier(), self.device)
        n = min(cfg.gan.fd_samples, len(self.real))
        pick = torch.randperm(len(self.real), generator=torch.Generator().manual_seed(0))[:n]
        self.real_features, _ = self.judge(self.real[pick])
        self.start_epoch, self.step, self.history, self.elapsed_before = 0, 0, [], 0.0
        if self.resume:
            self._restore(load_checkpoint(self.out_dir / "last.pt"))

    def _classifier(self) -> str:
        """The FD's ruler: the bundled Fashion-MNIST classifier, or for other data a quick
        classifier trained on the same data in ``out/classifier`` (seconds for digits)."""
        choice = self.config.gan.classifier
        if choice != "auto":
            return choice
        if self.meta["name"] == "fashion-mnist":
            from deepatlas.train.gan_quality import bundled_classifier

            return str(bundled_classifier())
        path = self.out_dir / "classifier"
        if not (path / "best.pt").is_file():
            from deepatlas.config import list_recipes, load_recipe, set_key
            from deepatlas.train.trainer import Trainer

            name = self.meta["name"]
            if name not in list_recipes():
                raise UserError(f"no classifier to judge {name} samples with: set "
                                "gan.classifier to a trained run of that data set")
            with torch.random.fork_rng(devices=[]):
                recipe = load_recipe(name, ["train.tensorboard=false"])
                set_key(recipe, "data.dir", self.config.data.dir)
                Trainer(recipe, path, progress=False).fit()
        return str(path)

    # ------------------------------------------------------------------ one step

    def _generate(self, z: torch.Tensor, model: nn.Module | None = None,
                  stage: int = 0, alpha: float = 1.0) -> torch.Tensor:
        model = model or self.G
        return model(z, stage, alpha) if self.progressive else model(z)

    def _critic(self, x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
        return self.D(x, stage, alpha) if self.progressive else self.D(x)

    def _train_step(self, real: torch.Tensor) -> dict[str, float]:
        gan = self.config.gan
        stage, alpha = self.growth.at(self.step) if self.progressive else (0, 1.0)
        if self.progressive:
            real = at_stage(real, stage, alpha)
        z = torch.randn(len(real), self.G.z_dim, device=self.device)
        fake = self._generate(z, stage=stage, alpha=alpha)

        real_scores = self._critic(real, stage, alpha)
        fake_scores = self._critic(fake.detach(), stage, alpha)
        if gan.loss == "wgan-gp":
            d_loss = wasserstein_critic_loss(real_scores, fake_scores) + gan.gp_lambda * \
                gradient_penalty(lambda x: self._critic(x, stage, alpha), real, fake)
            if gan.drift:
                d_loss = d_loss + gan.drift * real_scores.square().mean()
        else:
            d_loss = gan_discriminator_loss(real_scores, fake_scores)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        out = {"d_loss": d_loss.item(), "stage": stage, "alpha": alpha}

        if (self.step + 1) % gan.critic_steps == 0:
            scores = self._critic(fake, stage, alpha)
            g_loss = {"wgan-gp": wasserstein_generator_loss,
                      "minimax": gan_minimax_generator_loss,
                      "nonsaturating": gan_nonsaturating_generator_loss}[gan.loss](scores)
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            if self.ema is not None:
                self.ema.update_parameters(self.G)
            out["g_loss"] = g_loss.item()
        if not math.isfinite(out["d_loss"]) or not math.isfinite(out.get("g_loss", 0.0)):
            raise TrainingDiverged(f"the GAN losses became {out} at step {self.step}; the last "
                                   f"good checkpoint is kept. Try a lower optim.lr")
        self.step += 1
        return out

    # ------------------------------------------------------------------ quality and images

    def sampler(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.G

    @torch.no_grad()
    def samples(self, z: torch.Tensor) -> torch.Tensor:
        """Images at full size in [-1, 1] from the (averaged) generator, in eval mode."""
        model = self.sampler()
        was_training = model.training
        model.eval()
        stage, alpha = self.growth.at(max(0, self.step - 1)) if self.progressive else (0, 1.0)
        images = torch.cat([self._generate(chunk, model, stage, alpha) for chunk in z.split(500)])
        model.train(was_training)
        if images.shape[-1] != self.config.gan.image_size:  # an early ProGAN stage
            images = F.interpolate(images, size=self.config.gan.image_size, mode="nearest")
        return images.clamp(-1, 1)

    def quality(self) -> dict[str, float]:
        n = len(self.real_features)
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(99)
                        ).to(self.device)
        features, probs = self.judge(self.samples(z))
        return {"fd": frechet_distance(self.real_features, features), **class_coverage(probs)}

    def save_grid(self, name: str) -> Path:
        from torchvision.utils import save_image

        path = self.out_dir / "samples" / name
        save_image(self.samples(self.fixed_z), path, nrow=8, normalize=True, value_range=(-1, 1))
        return path

    # ------------------------------------------------------------------ checkpoints

    def _state(self, epoch: int) -> dict[str, Any]:
        return {"recipe": self.config.recipe, "config": self.config.to_dict(),
                "task": "gan", "data": self.meta, "epoch": epoch, "step": self.step,
                "stage": self.growth.at(max(0, self.step - 1)) if self.progressive else None,
                "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "generator_ema": self.ema.state_dict() if self.ema is not None else None,
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "history": self.history, "rng": rng_state(self.device),
                "elapsed_s": self.elapsed_before + time.perf_counter() - self.t0}

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("task") != "gan" or state["config"]["model"] != self.config.model:
            raise UserError("--resume: the checkpoint is not a GAN run of this recipe's model")
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        if self.ema is not None and state["generator_ema"]:
            self.ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.start_epoch, self.step = state["epoch"], state["step"]
        self.history, self.elapsed_before = list(state["history"]), state["elapsed_s"]
        set_rng_state(state["rng"], self.device)

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        cfg = self.config
        self._setup()
        self.t0 = time.perf_counter()
        (self.out_dir / "config.toml").write_text(tomli_w.dumps(cfg.to_dict()))
        batch = cfg.train.batch_size
        for epoch in range(self.start_epoch, cfg.train.epochs):
            self.G.train()
            self.D.train()
            order = torch.randperm(len(self.real), generator=torch.Generator().manual_seed(
                cfg.seed * 1000 + epoch)).to(self.device)
            sums: dict[str, list[float]] = {"d_loss": [], "g_loss": []}
            for i in range(self.steps_per_epoch):
                out = self._train_step(self.real[order[i * batch:(i + 1) * batch]])
                for key in sums:
                    if key in out:
                        sums[key].append(out[key])
            metrics = {"epoch": epoch + 1, **{k: sum(v) / max(1, len(v)) for k, v in sums.items()},
                       **self.quality()}
            if self.progressive:
                metrics["stage"], metrics["alpha"] = out["stage"], out["alpha"]
                metrics["resolution"] = 4 * 2 ** out["stage"]
            metrics["wall_s"] = self.elapsed_before + time.perf_counter() - self.t0
            self.history.append(metrics)
            self.save_grid(f"epoch-{epoch + 1:03d}.png")
            save_checkpoint(self._state(epoch + 1), self.out_dir / "last.pt")
            with (self.out_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            print(f"epoch {epoch + 1:>3}/{cfg.train.epochs}  d_loss {metrics['d_loss']:.4f}  "
                  f"g_loss {metrics['g_loss']:.4f}  FD {metrics['fd']:.2f}  classes "
                  f"{metrics['classes_covered']}/{metrics['num_classes']}  "
                  f"{metrics['wall_s']:.1f}s", flush=True)
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        last = self.history[-1]
        grid = self.save_grid("final.png")
        plot_losses(self.history, self.out_dir / "losses.png")
        summary = {"recipe": self.config.recipe, "task": "gan", "loss": self.config.gan.loss,
                   "fd": last["fd"], "best_fd": min(m["fd"] for m in self.history),
                   "class_entropy": last["class_entropy"],
                   "classes_covered": last["classes_covered"],
                   "num_classes": last["num_classes"], "fd_samples": len(self.real_features),
                   "fd_features": "deepatlas classifier (not Inception FID)",
                   "epochs": len(self.history), "steps": self.step,
                   "generator_params": sum(p.numel() for p in self.G.parameters()),
                   "discriminator_params": sum(p.numel() for p in self.D.parameters()),
                   "wall_s": last["wall_s"], "seed": self.config.seed, "samples": str(grid),
                   "test_acc": None, "data": self.meta, "out_dir": str(self.out_dir),
                   **machine_info(self.device)}
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [m["d_loss"] for m in history], label="discriminator / critic")
    left.plot(epochs, [m["g_loss"] for m in history], label="generator")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (mean over the epoch)")
    left.legend()
    right.plot(epochs, [m["fd"] for m in history], color="C2")
    right.set_xlabel("epoch")
    right.set_ylabel("Frechet distance (own classifier)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_gan(config: RunConfig, out_dir: str | Path, *, device: str = "auto",
              resume: bool = False) -> dict[str, Any]:
    return GanTrainer(config, out_dir, device=device, resume=resume).fit()


@torch.no_grad()
def sample_grid(run_or_file: str, n: int, out: str | Path, seed: int = 0) -> Path:
    """``deepatlas sample``: ``n`` images from a trained generator (its EMA when kept)."""
    from torchvision.utils import save_image

    from deepatlas.config import from_dict
    from deepatlas.train.checkpoint import find_checkpoint

    path = find_checkpoint(run_or_file)
    state = load_checkpoint(path)
    if state.get("task") != "gan":
        raise UserError(f"{path} is not a GAN run; sample draws from `deepatlas train gan-*` "
                        "runs")
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    config = from_dict(state["config"])
    generator, _ = build_gan(config, state["data"]["in_channels"])
    weights = state["generator"]
    if state.get("generator_ema"):
        weights = {k[len("module."):]: v for k, v in state["generator_ema"].items()
                   if k.startswith("module.")}
    generator.load_state_dict(weights)
    generator.eval()
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    if is_progressive(generator):
        stage, alpha = state["stage"]  # where growth had got to when the run stopped
        images = F.interpolate(generator(z, stage, alpha), size=config.gan.image_size)
    else:
        images = generator(z)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.clamp(-1, 1), out, nrow=int(math.ceil(math.sqrt(n))), normalize=True,
               value_range=(-1, 1))
    return out
