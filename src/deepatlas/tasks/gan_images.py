"""A GAN run's pictures: the loss and FD curves, and ``deepatlas sample`` (MAP 4.3)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn import functional as F

from deepatlas.errors import UserError


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [m["train_d_loss"] for m in history], label="discriminator / critic")
    left.plot(epochs, [m.get("train_g_loss", math.nan) for m in history], label="generator")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (mean over the epoch)")
    left.legend()
    right.plot([m["epoch"] for m in history if "fd" in m],
               [m["fd"] for m in history if "fd" in m], color="C2")
    right.set_xlabel("epoch")
    right.set_ylabel("Frechet distance (own classifier)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


MAX_SAMPLES = 4096  # a 64 x 64 grid; more would be a picture no one can see, and gigabytes


@torch.no_grad()
def sample_grid(run_or_file: str, n: int, out: str | Path, seed: int = 0,
                force: bool = False) -> Path:
    """``deepatlas sample``: ``n`` images from a trained generator (its EMA when kept)."""
    from torchvision.utils import save_image

    from deepatlas.config import from_dict
    from deepatlas.models.gan import is_progressive
    from deepatlas.models.saved import load_weights
    from deepatlas.tasks.gan import build_gan
    from deepatlas.outputs import check_output, write_via_temp
    from deepatlas.train.checkpoint import load_run

    state, path = load_run(run_or_file, "gan", "sample draws from `deepatlas train gan-*` runs",
                           label="GAN")
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"--n must be in [1, {MAX_SAMPLES}], got {n}")
    if not 0 <= seed < 2**63:
        raise UserError(f"--seed must be in [0, 2^63), got {seed}")
    out = check_output(out, force, protect=path)
    config = from_dict(state["config"])
    generator, _ = build_gan(config, state["data"]["in_channels"])
    weights = state["models"]["generator"]
    if state.get("ema"):
        weights = {k[len("module."):]: v for k, v in state["ema"].items()
                   if k.startswith("module.")}
    load_weights(generator, weights, state["config"]["model"])
    generator.eval()
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    if is_progressive(generator):
        stage, alpha = state["data"]["stage"]  # where growth had got to at this checkpoint
        images = F.interpolate(generator(z, stage, alpha), size=config.gan.image_size)
    else:
        images = generator(z)
    write_via_temp(out, lambda tmp: save_image(images.clamp(-1, 1), tmp,
                                               nrow=int(math.ceil(math.sqrt(n))),
                                               normalize=True, value_range=(-1, 1)))
    return out
