"""Semantic segmentation (MAP 6.1): ``task = "segment"``, a U-Net on copy-paste scenes.

Every pixel is classified: background, or the digit class of the object on top. The loss is
cross-entropy plus the soft Dice loss (Milletari et al. 2016), the usual pair: cross-entropy
gives every pixel a gradient, Dice keeps the small foreground from being outvoted by the
background.

Metrics (:func:`deepatlas.losses.dice_iou`, tested against torchmetrics), counted over all of
a split's pixels:

- ``dice``: foreground Dice, object vs background, whatever the class: the U-Net claim's
  figure ("Dice > 0.9");
- ``class_dice`` and ``miou``: mean over the object classes (ten digits, or 22 clip-art
  categories) of per-class Dice and IoU;
- ``loss``: the cross-entropy per pixel.

Model selection on the validation scenes (their own digits and photographs); the test scenes
are scored for reporting only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from deepatlas.data.scenes import Scenes
from deepatlas.losses import dice_iou, overlap_counts, soft_dice_loss
from deepatlas.models import create_model
from deepatlas.tasks.scene_task import SceneTask, run_saved_model
from deepatlas.train import Context, StepOutput
from deepatlas.train.distributed import all_reduce_sum


def label_map(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1 + K, H, W) logits -> (B, H, W) labels. A pixel is an object when the digit classes
    together are more likely than background, ``P(background) < 0.5``, and then it is the most
    likely digit. (Plain argmax would call a pixel background at P = 0.4 when 0.3 + 0.3 of
    the rest goes to two digits it cannot tell apart yet.)"""
    probs = logits.float().softmax(1)
    return torch.where(probs[:, 0] < 0.5, 1 + probs[:, 1:].argmax(1), 0)


def segmentation_metrics(counts: torch.Tensor) -> dict[str, float]:
    """From summed counts (see :meth:`Segment.count`): foreground Dice, mean class Dice and
    mean class IoU over the classes present, and the mean loss per pixel."""
    k = (len(counts) - 2) // 3
    tp, fp, fn = counts[:k], counts[k:2 * k], counts[2 * k:3 * k]
    dice, iou = dice_iou(tp, fp, fn)
    # Object vs background: background's false negatives are the foreground's false
    # positives and vice versa; every other pixel is a foreground hit, whatever its class.
    fg_fp, fg_fn = fn[0], fp[0]
    fg_tp = counts[-1] - tp[0] - fg_fp - fg_fn
    fg_dice, _ = dice_iou(fg_tp, fg_fp, fg_fn)
    return {"dice": float(fg_dice), "class_dice": float(dice[1:].nanmean()),
            "miou": float(iou[1:].nanmean()), "loss": float(counts[-2] / counts[-1])}


class Segment(SceneTask):
    name = "segment"
    monitor = ("val_dice", "max")
    primary = "test_dice"

    def setup(self, ctx: Context) -> None:
        data = self.load_scenes(ctx)
        self.train_loader = self.batches(lambda scenes: (scenes.images, scenes.masks))
        options = {k: v for k, v in self.config.model.items() if k != "name"}
        self.models = {"model": create_model(
            self.config.model["name"], in_channels=3, image_size=data.image_size,
            num_classes=len(data.classes) + 1, **options).to(ctx.device)}

    def training_step(self, batch: Any, group: str) -> StepOutput:
        images, masks = batch  # (B, 3, H, W) uint8, (B, H, W) int64
        logits = self.train_models["model"](self.inputs(images)).float()  # (B, K + 1, H, W)
        ce = F.cross_entropy(logits, masks)
        loss = ce + soft_dice_loss(logits, masks)
        fg = (label_map(logits.detach()) > 0) == (masks > 0)
        return StepOutput(loss, {"loss": loss.detach(), "ce": ce.detach(),
                                 "pixel_acc": fg.float().mean()}, n=len(masks))

    @torch.no_grad()
    def count(self, model: nn.Module, scenes: Scenes) -> torch.Tensor:
        """This rank's share of ``scenes``: per class TP, FP, FN, then the summed loss and the
        pixel count, summed over ranks."""
        ctx, batch = self.ctx, self.config.train.eval_batch_size
        k = len(self.data.classes) + 1
        totals = torch.zeros(3 * k + 2, dtype=torch.float64, device=ctx.device)
        index = torch.arange(ctx.dist.rank, len(scenes), ctx.dist.world_size)
        model.eval()
        for chunk in index.split(batch):
            masks = scenes.masks[chunk].to(ctx.device)
            with ctx.autocast():
                logits = model(self.inputs(scenes.images[chunk].to(ctx.device))).float()
            tp, fp, fn = overlap_counts(label_map(logits), masks, k)
            totals[:3 * k] += torch.cat([tp, fp, fn]).double()
            totals[-2] += F.cross_entropy(logits, masks, reduction="sum").double()
            totals[-1] += masks.numel()
        return all_reduce_sum(totals, ctx.dist)

    def score(self, model: nn.Module, scenes: Scenes) -> dict[str, float]:
        return segmentation_metrics(self.count(model, scenes))


# ------------------------------------------------------------------ `deepatlas predict`

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@torch.inference_mode()
def segment_image(state: dict[str, Any], path: str, device: torch.device = torch.device("cpu")
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The image at ``path`` as float RGB (H, W, 3) in [0, 1], and the run's label map (H, W):
    0 background, 1 + class. The image keeps its size: it is padded (edge pixels repeated) to
    a multiple of the U-Net's 2^depth, and the padding is cut off the map."""
    depth = int(state["config"]["model"].get("depth", 3))
    rgb, logits = run_saved_model(state, path, device, len(state["data"]["classes"]) + 1,
                                  2 ** depth)
    h, w = rgb.shape[1:]
    labels = label_map(logits)[0, :h, :w]  # (H, W)
    return rgb.permute(1, 2, 0).numpy(), labels.cpu().numpy()


def overlay(rgb: np.ndarray, labels: np.ndarray, opacity: float = 0.55) -> Image.Image:
    """The label map painted over the image, one colour per class (matplotlib's tab10; past
    ten classes, as clip art's 22, the colours repeat)."""
    colours = np.array([(0, 0, 0)] + PALETTE, np.float32) / 255
    alpha = (labels > 0)[..., None] * opacity
    index = np.where(labels > 0, (labels - 1) % len(PALETTE) + 1, 0)
    blended = rgb * (1 - alpha) + colours[index] * alpha
    return Image.fromarray(np.clip(np.rint(blended * 255), 0, 255).astype(np.uint8))


def predict_file(state: dict[str, Any], path: str, device: torch.device
                 ) -> tuple[dict[str, Any], str, Image.Image]:
    """``deepatlas predict`` of one image: the answer (JSON), a line, and the overlay."""
    rgb, labels = segment_image(state, path, device)
    classes = state["data"]["classes"]
    found = {classes[c - 1]: int((labels == c).sum()) for c in sorted(set(labels.flat)) if c}
    shares = ", ".join(f"{c} {n / labels.size:.1%}" for c, n in found.items())
    return ({"image": path, "pixels": int(labels.size), "found": found},
            f"{shares or 'nothing found'} of the pixels", overlay(rgb, labels))
