"""A YOLO-style one-stage detector (MAP 6.1, detection): anchor-free, with a decoupled head.

After YOLOv8 (Jocher et al., Ultralytics 2023) and FCOS (Tian et al. 2019): every cell of a
feature map at stride s is an *anchor point* at the cell's centre, and predicts, for each
class, a score, and for the box, its distances to the four sides, ``(l, t, r, b)`` in pixels:

    box = (px - l, py - t, px + r, py + b),   l, t, r, b = s * softplus(raw)

"Decoupled" means the class and box predictions come from separate conv branches (YOLOX,
YOLOv8), since the two tasks want different features.

The backbone is built from the map's blocks: a strided 3x3 conv-BN-SiLU per stage, then
residual blocks of depthwise-separable convs (MobileNet's factorised conv, about 1/N + 1/9
of a full conv's cost). A small FPN adds the stride-16 features, upsampled, to the stride-8
ones; one head per level (strides 8 and 16: objects from about 16 to 64 px). With ``p2``,
a third level at stride 4 (YOLOv8-p2's extra head for small objects) gets the stride-8
features, upsampled, added to stage 1's: a box narrower than a stride holds no cell centre
when it falls between two, so no point can learn it, and a handwritten "1" is often 5-9 px
wide in a 64 px scene.

The quoted "YOLO v5: 45 FPS": 45 frames per second is YOLOv1's figure (Redmon et al. 2016,
on a Titan X); YOLOv5's README gives latency in milliseconds per model size, not one FPS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.conv import DepthwiseSeparableConv2d

STRIDES = (8, 16)
PRIOR = 0.01  # initial class probability (RetinaNet's prior): a stable start for BCE


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class SeparableResidual(nn.Module):
    """``x + BN(pointwise(ReLU(BN(depthwise(x)))))``: a residual block of one separable conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = DepthwiseSeparableConv2d(channels, channels, 3, padding=1, norm_act=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def separable(channels: int) -> DepthwiseSeparableConv2d:
    return DepthwiseSeparableConv2d(channels, channels, 3, padding=1, norm_act=True)


class DecoupledHead(nn.Module):
    """Two branches on one level: class logits (B, C, H, W) and box distances (B, 4, H, W).
    Each has two depthwise-separable convs: with full 3x3 convs the heads were 70% of the
    detector's multiply-adds at 320 px."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls = nn.Sequential(separable(channels), separable(channels),
                                 nn.Conv2d(channels, num_classes, 1))
        self.box = nn.Sequential(separable(channels), separable(channels),
                                 nn.Conv2d(channels, 4, 1))
        nn.init.constant_(self.cls[-1].bias, -torch.log(torch.tensor((1 - PRIOR) / PRIOR)).item())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls(x), self.box(x)


def anchor_points(sizes: list[tuple[int, int]], strides: tuple[int, ...] = STRIDES,
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of each level's (H, W) grid, level after level, row-major: points (N, 2)
    as (x, y) in input pixels, and each point's stride (N,)."""
    points, point_strides = [], []
    for (h, w), s in zip(sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
        points.append((torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * s)
        point_strides.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(point_strides)


def encode(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """xyxy boxes -> (l, t, r, b) distances from ``points`` (both (..., 2) / (..., 4))."""
    return torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], -1)


def decode(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(l, t, r, b) distances from ``points`` -> xyxy boxes: the inverse of :func:`encode`."""
    return torch.cat([points - distances[..., :2], points + distances[..., 2:]], -1)


class Detector(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16,
                 p2: bool = False) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.strides = (4, *STRIDES) if p2 else STRIDES
        self.stem = conv_bn(in_channels, w, 3, 2)  # /2
        self.stage1 = nn.Sequential(conv_bn(w, 2 * w, 3, 2), SeparableResidual(2 * w))  # /4
        self.stage2 = nn.Sequential(conv_bn(2 * w, 4 * w, 3, 2), SeparableResidual(4 * w),
                                    SeparableResidual(4 * w))  # /8
        self.stage3 = nn.Sequential(conv_bn(4 * w, 8 * w, 3, 2), SeparableResidual(8 * w),
                                    SeparableResidual(8 * w))  # /16
        self.lateral = conv_bn(8 * w, 4 * w, 1)  # FPN: P4 to P3's width before upsampling
        self.smooth = separable(4 * w)
        self.heads = nn.ModuleList([DecoupledHead(4 * w, num_classes),
                                    DecoupledHead(8 * w, num_classes)])
        if p2:  # FPN one level further down: P3 to P2's width, then stage 1's features
            self.lateral2 = conv_bn(4 * w, 2 * w, 1)
            self.smooth2 = separable(2 * w)
            self.head2 = DecoupledHead(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, N, 4 + C): per anchor point, its box (x1, y1, x2, y2) in
        input pixels and its class logits. Sides must divide by 16."""
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"the detector needs sides divisible by 16, got "
                             f"{tuple(x.shape[-2:])}")
        p2 = self.stage1(self.stem(x))  # (B, 2w, H/4, W/4)
        p3 = self.stage2(p2)  # (B, 4w, H/8, W/8)
        p4 = self.stage3(p3)  # (B, 8w, H/16, W/16)
        p3 = self.smooth(p3 + F.interpolate(self.lateral(p4), scale_factor=2.0, mode="nearest"))
        features, heads = [p3, p4], list(self.heads)
        if len(self.strides) == 3:
            p2 = self.smooth2(p2 + F.interpolate(self.lateral2(p3), scale_factor=2.0,
                                                 mode="nearest"))
            features, heads = [p2, *features], [self.head2, *heads]
        outs, sizes = [], []
        for feature, head, stride in zip(features, heads, self.strides):
            cls, box = head(feature)
            sizes.append(tuple(feature.shape[-2:]))
            distances = F.softplus(box) * stride  # (B, 4, h, w): non-negative, in pixels
            outs.append(torch.cat([distances, cls], 1).flatten(2))  # (B, 4 + C, h * w)
        out = torch.cat(outs, 2).transpose(1, 2)  # (B, N, 4 + C)
        points, _ = anchor_points(sizes, self.strides, device=x.device)
        return torch.cat([decode(points, out[..., :4]), out[..., 4:]], -1)

    def anchor_points(self, height: int, width: int, device: torch.device | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchor points and strides of an input of this size (see :func:`anchor_points`)."""
        return anchor_points([(height // s, width // s) for s in self.strides], self.strides,
                             device=device)


@register_model(kind="detect")
def yolo(in_channels: int = 3, image_size: int = 64, num_classes: int = 10,
         width: int = 16, p2: bool = False) -> nn.Module:
    """The YOLO-style detector; ``width`` is the stem's channels (x2 per stage); ``p2`` adds
    the stride-4 level."""
    if image_size % 16:
        raise ValueError(f"image_size {image_size} must be divisible by 16")
    return Detector(in_channels, num_classes, width, p2)


@torch.no_grad()
def postprocess(out: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.6,
                max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Per image of ``out`` (B, N, 4 + C): ``boxes`` (k, 4), ``scores`` (k,), ``labels`` (k,)
    after class-wise non-maximum suppression (``torchvision.ops.batched_nms``). Each anchor
    point may propose several classes, as in YOLOv8; the low threshold is the one mAP wants
    (every detection counts towards the precision-recall curve)."""
    from torchvision.ops import batched_nms

    results = []
    for image in out.float():
        scores = image[:, 4:].sigmoid()  # (N, C)
        point, label = (scores > score_threshold).nonzero(as_tuple=True)
        score = scores[point, label]
        if len(score) > 10 * max_detections:  # NMS is quadratic: keep the likeliest first
            score, keep = score.topk(10 * max_detections)
            point, label = point[keep], label[keep]
        boxes = image[point, :4]
        keep = batched_nms(boxes, score, label, iou_threshold)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": score[keep], "labels": label[keep]})
    return results
