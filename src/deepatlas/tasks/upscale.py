"""Super-resolution x4 (MAP 6.1, ESRGAN): ``task = "upscale"``, for ``deepatlas train
upscale-psnr`` and then ``upscale-esrgan``.

ESRGAN trains in two stages (Wang et al. 2018, section 4.1), both here on the one Trainer:

1. **PSNR-oriented** (``upscale-psnr``): the RRDB generator with the L1 loss alone,
   ``L = || G(x) - y ||_1``. Its output is the conditional median: sharp where the low
   resolution input decides the detail, smooth where it does not; it maximises PSNR.
2. **GAN** (``upscale-esrgan``, ``train.init_from`` = the stage-1 run):
   ``L_G = L_percep + lambda L_G^Ra + eta L_1`` with lambda = 5e-3 and eta = 1e-2, against a
   VGG-style discriminator trained with the relativistic average loss
   (:func:`deepatlas.losses.relativistic_discriminator_loss`). It trades PSNR for texture.
   The perceptual features are a random-weight VGG19 prefix, as no pretrained weights can be
   fetched here (:class:`deepatlas.losses.PerceptualLoss` says why that still measures local
   structure, and what it lacks). Model selection cannot use PSNR for this stage, whose aim
   is to trade it away, so the stage keeps no best.pt: its last.pt is the model.

Data: :mod:`deepatlas.data.superres` (``photos``, split by photograph). Metrics follow the
super-resolution papers: **PSNR and SSIM on the Y channel** (ITU-R BT.601, studio range
16-235), after rounding the output to 8 bits, with a border of ``scale`` pixels cropped, per
image and averaged; the computations are torchmetrics', tested against ``skimage.metrics``.
Every figure stands beside **bicubic** enlargement, scored the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.superres import SRImages, bicubic_upscale, load_superres
from deepatlas.errors import UserError
from deepatlas.losses import (PerceptualLoss, relativistic_discriminator_loss,
                              relativistic_generator_loss)
from deepatlas.models import create_model
from deepatlas.train import Context, OptimizerGroup, StepOutput, Task


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 255] -> (..., H, W) luma, ITU-R BT.601 studio range:
    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (MATLAB's ``rgb2ycbcr``)."""
    r, g, b = rgb.double().unbind(-3)
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def y_psnr_ssim(sr: torch.Tensor, hr: torch.Tensor, border: int) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two (3, H, W) uint8 images on the Y channel, ``border`` pixels
    cropped from each side; SSIM with Wang et al.'s 11x11 Gaussian window, sigma 1.5, averaged
    where the window fits (as ``skimage.metrics.structural_similarity``)."""
    from torchmetrics.functional.image import (peak_signal_noise_ratio,
                                               structural_similarity_index_measure)

    crop = (slice(border, -border or None),) * 2
    y_sr, y_hr = rgb_to_y(sr)[crop], rgb_to_y(hr)[crop]
    psnr = peak_signal_noise_ratio(y_sr, y_hr, data_range=255.0)
    _, ssim_map = structural_similarity_index_measure(
        y_sr[None, None], y_hr[None, None], data_range=255.0, return_full_image=True)
    # torchmetrics averages the map over the whole image, its edges from reflected pixels;
    # Wang et al.'s code (and skimage, and the SR papers) average where the 11 x 11 window
    # fits inside the image: the map without its 5 px edge.
    return float(psnr), float(ssim_map[..., 5:-5, 5:-5].mean())


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8, rounded: what an image file would hold."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)


@torch.no_grad()
def upscale_tiled(model: nn.Module, lr: torch.Tensor, tile: int = 0) -> torch.Tensor:
    """``model`` on (1, 3, h, w) in [0, 1], in ``tile`` x ``tile`` pieces (0: whole) that
    overlap by the model's receptive radius, so the pieces join into exactly the whole
    image's result while memory stays bounded by the tile."""
    h, w = lr.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return model(lr)
    s, pad = model.scale, model.receptive_radius
    out = lr.new_zeros(1, lr.shape[1], h * s, w * s)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa, yb, xb = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
            sr = model(lr[..., ya:yb, xa:xb])
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = sr[..., (y0 - ya) * s:(y1 - ya) * s,
                                                         (x0 - xa) * s:(x1 - xa) * s]
    return out


def pretrained_generator(run_or_file: str, model_config: dict[str, Any]
                         ) -> tuple[dict[str, torch.Tensor], str]:
    """The generator weights of an upscale run (stage 1 for stage 2), after checking that its
    model is the one this recipe builds."""
    from deepatlas.models.saved import inference_weights
    from deepatlas.train.checkpoint import load_pretrained

    state, path = load_pretrained(run_or_file, Upscale.name, "deepatlas train upscale-psnr",
                                  model_config)
    return inference_weights(state), str(path)


class Upscale(Task):
    name = "upscale"
    uses = {"upscale.*", "train.init_from", "train.channels_last"}
    monitor = ("val_psnr", "max")
    primary = "test_psnr"
    image_task = True
    ema_model = "generator"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.adversarial = config.upscale.gan_weight > 0
        if self.adversarial:
            self.monitor = None  # the GAN stage trades PSNR away on purpose: last.pt it is

    def setup(self, ctx: Context) -> None:
        cfg, up, self.ctx = self.config, self.config.upscale, ctx
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        generator = create_model(cfg.model["name"], in_channels=3, **options)
        self.scale = generator.scale
        patches = up.patches
        if cfg.train.limit_train_batches:
            patches = min(patches, cfg.train.limit_train_batches * cfg.train.batch_size)
        self.data = load_superres(cfg.data.dir, cfg.data.download, scale=self.scale,
                                  photo_side=up.photo_side, patch=up.patch, patches=patches,
                                  seed=cfg.seed, eval_images=up.eval_images)
        self.pretrained = ""
        if cfg.train.init_from:
            from deepatlas.models.saved import load_weights

            weights, self.pretrained = pretrained_generator(cfg.train.init_from, cfg.model)
            load_weights(generator, weights, cfg.model)
        self.models = {"generator": generator.to(ctx.device)}
        if self.adversarial:
            self.models["critic"] = create_model(
                up.discriminator, in_channels=3, image_size=up.patch,
                width=up.discriminator_width).to(ctx.device)
        self.perceptual = PerceptualLoss().to(ctx.device) if up.perceptual_weight else None
        from deepatlas.data.loaders import TensorBatches

        dist = ctx.dist
        self.train_loader = TensorBatches(self.data.train_lr, self.data.train_hr,
                                          batch_size=cfg.train.batch_size // dist.world_size,
                                          seed=cfg.seed, rank=dist.rank,
                                          world_size=dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{patches} training patches; lower it")
        self.bicubic = {split: self._bicubic(getattr(self.data, split)) for split in
                        ("val", "test")}

    def _bicubic(self, images: SRImages) -> dict[str, float]:
        scores = [y_psnr_ssim(torch.from_numpy(bicubic_upscale(lr.permute(1, 2, 0).numpy(),
                                                               self.scale)).permute(2, 0, 1),
                              hr, self.scale) for lr, hr in zip(images.lr, images.hr)]
        return {"bicubic_psnr": float(np.mean([p for p, _ in scores])),
                "bicubic_ssim": float(np.mean([s for _, s in scores]))}

    # ------------------------------------------------------------------ one step

    def optimizer_groups(self) -> list[OptimizerGroup]:
        if self.adversarial:  # the critic first; the generator then reuses its fakes
            return [OptimizerGroup("critic"), OptimizerGroup("generator")]
        return [OptimizerGroup("generator")]

    def _content_loss(self, sr: torch.Tensor, hr: torch.Tensor
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        up = self.config.upscale
        l1 = F.l1_loss(sr, hr)
        loss, logs = up.l1_weight * l1, {"l1": l1.detach()}
        if self.perceptual is not None:
            percep = self.perceptual(sr, hr)
            loss = loss + up.perceptual_weight * percep
            logs["perceptual"] = percep.detach()
        return loss, logs

    def training_step(self, batch: Any, group: str) -> StepOutput:
        lr, hr = (t.float().div(255).contiguous(memory_format=self.ctx.memory_format)
                  for t in batch)  # (B, 3, h, w), (B, 3, sh, sw) in [0, 1]
        if not self.adversarial:
            sr = self.train_models["generator"](lr).float()
            loss, logs = self._content_loss(sr, hr)
            return StepOutput(loss, {"loss": loss.detach(), **logs}, n=len(lr))
        critic = self.train_models["critic"]
        if group == "critic":
            self.fake = self.train_models["generator"](lr).float()
            loss = relativistic_discriminator_loss(critic(hr).float(),
                                                   critic(self.fake.detach()).float())
            return StepOutput(loss, {"d_loss": loss.detach()}, n=len(lr))
        fake, self.fake = self.fake, None  # the generator's graph is not kept past its step
        content, logs = self._content_loss(fake, hr)
        with torch.no_grad():  # the real scores do not depend on the generator
            real_scores = critic(hr).float()
        adversarial = relativistic_generator_loss(real_scores, critic(fake).float())
        loss = content + self.config.upscale.gan_weight * adversarial
        return StepOutput(loss, {"g_loss": loss.detach(), "g_adv": adversarial.detach(),
                                 **logs}, n=len(lr))

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def enlarge(self, generator: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """(3, h, w) uint8 -> (3, sh, sw) uint8, the whole image at once, in float32 whatever
        the training precision: scores equal those of ``deepatlas eval`` and ``upscale``."""
        generator.eval()
        sr = generator(lr[None].float().div(255).to(self.ctx.device))
        return to_uint8(sr[0]).cpu()

    def score(self, generator: nn.Module, images: SRImages) -> dict[str, float]:
        scores = [y_psnr_ssim(self.enlarge(generator, lr), hr, self.scale)
                  for lr, hr in zip(images.lr, images.hr)]
        return {"psnr": float(np.mean([p for p, _ in scores])),
                "ssim": float(np.mean([s for _, s in scores]))}

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        out = {}
        for split in ("val", "test"):
            scores = {**self.score(models["generator"], getattr(self.data, split)),
                      **self.bicubic[split]}
            scores["gain"] = scores["psnr"] - scores["bicubic_psnr"]
            out.update({f"{split}_{k}": v for k, v in scores.items()})
        return out

    def finish(self, history: list[dict[str, float]], models: dict[str, nn.Module]
               ) -> dict[str, Any]:
        from deepatlas.tasks.upscale_figures import save_crops

        path = self.ctx.out_dir / "crops.png"
        save_crops(path, self.data.test, {self.config.recipe: lambda lr: self.enlarge(
            models["generator"], lr)}, self.scale)
        return {"crops": str(path)}

    def describe_data(self) -> dict[str, Any]:
        up = self.config.upscale
        return {"name": self.data.name, "scale": self.scale, "in_channels": 3,
                "photo_side": up.photo_side, "patch": up.patch}

    def data_summary(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "source": d.source, "train": len(d.train_hr),
                "train_photos": len(d.train_photos), "val": d.val.names, "test": d.test.names,
                "degradation": f"PIL bicubic x1/{d.scale} (antialiased, as MATLAB imresize)",
                "pretrained": self.pretrained or "none"}


# ------------------------------------------------------------------ `deepatlas upscale`

def load_generator(state: dict[str, Any], device: torch.device) -> nn.Module:
    """A saved upscale run's generator (inference weights), in eval mode on ``device``."""
    from deepatlas.models.saved import saved_model

    return saved_model(state, in_channels=3).to(device)


def upscale_file(state: dict[str, Any], path: str, device: torch.device, tile: int = 192
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The image at ``path`` as float32 (H, W, 3) in [0, 1] (grey repeated, alpha dropped,
    16-bit kept precise: :func:`~deepatlas.data.image_files.read_pixels`) and its
    enlargement, (sH, sW, 3) uint8."""
    from deepatlas.data.image_files import read_pixels

    rgb = np.ascontiguousarray(read_pixels(path, 3))
    model = load_generator(state, device)
    lr = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)
    sr = upscale_tiled(model, lr, tile)
    return rgb, to_uint8(sr[0]).permute(1, 2, 0).cpu().numpy()


def evaluate_upscale_run(state: dict[str, Any], device: torch.device, overrides: list[str]
                         ) -> dict[str, Any]:
    """``deepatlas eval`` of a saved upscale run: its test photographs, prepared again from
    the run's own config, scored as training scored them, beside bicubic."""
    from deepatlas.train.task import rebuild_task

    # only the generator is scored: no critic, no perceptual features, one batch of patches
    task = rebuild_task(Upscale, state, device, [
        *overrides, "train.limit_train_batches=1", "train.init_from=", "upscale.gan_weight=0",
        "upscale.perceptual_weight=0"])
    generator = task.models["generator"]
    scores = {**task.score(generator, task.data.test), **task.bicubic["test"]}
    scores["gain"] = scores["psnr"] - scores["bicubic_psnr"]
    return {"task": task.name, "data": task.data.name, "test_images": len(task.data.test),
            "epoch": state.get("epoch"), **{f"test_{k}": v for k, v in scores.items()}}
