"""Mosaic, scale and flip augmentation for detection and segmentation scenes (MAP 6.1).

YOLOv4's mosaic (Bochkovskiy et al. 2020), as Ultralytics trains YOLOv5 and YOLOv8: four
training images tiled 2 x 2 into a canvas of twice the side, the canvas scaled by a random
factor ``s ~ U(0.5, 1.5)``, and one window of the image's side cut from it around a random
centre in the canvas's middle half. A window mixes parts of up to four scenes at a new scale,
and its objects meet the window's edges, so the network sees more contexts, scales and partial
objects than the fixed set holds. With ``flip`` the window is mirrored left-right with
probability 1/2 (never for digits: a mirrored digit is another symbol or none).

Boxes follow exactly (``x' = s * (x + qx) - x0``, clipped to the window). With Ultralytics'
``box_candidates`` thresholds, a clipped box is kept when it still has at least 10% of its
scaled area, is at least 2 px wide and high, and no more than 100 times longer than wide;
masks follow by nearest-neighbour scaling at the pixel centres, as the image's bilinear
scaling does, so the pixels of a dropped box's object stay labelled in the mask
(segmentation) but not as a box (detection). The four tiles are drawn with replacement
(Ultralytics takes the image at hand and three others).

:func:`mosaic_epochs` gives a loader its epochs: each draws its own mosaics, seeded by
(seed, 1, epoch), so a resumed epoch sees the same, and the last tenth trains on the set itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deepatlas.data.scenes import Scenes

SCALE = (0.5, 1.5)  # Ultralytics' default scale=0.5: s in 1 +- 0.5
MIN_AREA = 0.1  # of a box's area before clipping (Ultralytics' area_thr)
MIN_SIDE = 2.0  # px (Ultralytics' wh_thr)
MAX_ASPECT = 100.0  # (Ultralytics' ar_thr)


def kept_boxes(boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes`` (k, 4) xyxy in the window's pixels, clipped to the ``size`` x ``size``
    window, and which of them to keep: (clipped boxes, keep mask)."""
    clipped = boxes.clamp(0, size)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    aspect = torch.maximum(w / h.clamp_min(1e-9), h / w.clamp_min(1e-9))
    keep = (w >= MIN_SIDE) & (h >= MIN_SIDE) & (w * h >= MIN_AREA * area) & (aspect < MAX_ASPECT)
    return clipped, keep


def mosaic(scenes: Scenes, n: int, *, seed: int | Sequence[int] = 0,
           scale: tuple[float, float] = SCALE, flip: bool = False) -> Scenes:
    """``n`` mosaic windows of ``scenes`` (all of one side S), with their masks, boxes and
    labels; ``seed`` an int or a tuple of ints."""
    entropy = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    # The flips' coins come from their own stream, so mosaic-flip's windows are mosaic's.
    g, coins = (torch.Generator().manual_seed(int(e) >> 1) for e in entropy)
    size = scenes.images.shape[-1]
    images = torch.empty((n, *scenes.images.shape[1:]), dtype=torch.uint8)
    has_masks = scenes.masks.shape[-1] == size  # a YOLO or COCO folder has boxes only
    masks = torch.zeros((n, size, size) if has_masks else (n, 0, 0), dtype=scenes.masks.dtype)
    all_boxes, all_labels = [], []
    for i in range(n):
        picks = torch.randint(len(scenes), (4,), generator=g).tolist()
        canvas = torch.empty((3, 2 * size, 2 * size), dtype=torch.uint8)  # the tiles fill it
        mask = torch.zeros((2 * size, 2 * size), dtype=scenes.masks.dtype)
        boxes, labels = [], []
        for quadrant, k in enumerate(picks):  # (0, 0), (S, 0), (0, S), (S, S)
            qx, qy = (quadrant % 2) * size, (quadrant // 2) * size
            canvas[:, qy:qy + size, qx:qx + size] = scenes.images[k]
            if has_masks:
                mask[qy:qy + size, qx:qx + size] = scenes.masks[k]
            boxes.append(scenes.boxes[k] + torch.tensor([qx, qy, qx, qy], dtype=torch.float32))
            labels.append(scenes.labels[k])
        s = float(torch.empty(()).uniform_(*scale, generator=g))
        side = max(size, round(2 * size * s))
        s = side / (2 * size)  # the scale the pixels actually got
        canvas = F.interpolate(canvas[None].float(), size=(side, side), mode="bilinear",
                               align_corners=False, antialias=s < 1)[0]
        if has_masks:
            mask = F.interpolate(mask[None, None].float(), size=(side, side),
                                 mode="nearest-exact")[0, 0]
        # The window's centre lies in the canvas's middle half, as Ultralytics' mosaic centre.
        cx, cy = (float(torch.empty(()).uniform_(side / 4, 3 * side / 4, generator=g))
                  for _ in range(2))
        x0 = min(max(0, round(cx - size / 2)), side - size)
        y0 = min(max(0, round(cy - size / 2)), side - size)
        images[i] = canvas[:, y0:y0 + size, x0:x0 + size].round().clamp(0, 255).to(torch.uint8)
        if has_masks:
            masks[i] = mask[y0:y0 + size, x0:x0 + size].to(masks.dtype)
        box = torch.cat(boxes) * s - torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        label = torch.cat(labels)
        clipped, keep = kept_boxes(box, size)
        box, label = clipped[keep], label[keep]
        if flip and bool(torch.rand((), generator=coins) < 0.5):
            images[i] = images[i].flip(-1)
            if has_masks:
                masks[i] = masks[i].flip(-1)
            box = torch.stack([size - box[:, 2], box[:, 1], size - box[:, 0], box[:, 3]], 1)
        all_boxes.append(box)
        all_labels.append(label)
    return Scenes(images, masks, all_boxes, all_labels)


def mosaic_epochs(scenes: Scenes, epochs: int, seed: int = 0, flip: bool = False
                  ) -> Callable[[int], Scenes]:
    """``draw(epoch)`` for a loader: new mosaics of ``scenes`` for each epoch, seeded by
    (seed, 1, epoch), and ``scenes`` themselves for the last tenth of ``epochs`` (rounded half
    up), as Ultralytics' ``close_mosaic`` ends on the images the test resembles. (A run that
    stops early may never reach them.)"""
    plain_from = epochs - int(epochs / 10 + 0.5)

    def draw(epoch: int) -> Scenes:
        if epoch >= plain_from:
            return scenes
        return mosaic(scenes, len(scenes), seed=(seed, 1, epoch), flip=flip)

    return draw
