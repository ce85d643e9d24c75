"""Object detection (MAP 6.1): ``task = "detect"``, the YOLO-style detector on copy-paste scenes.

**Assignment** (which anchor points learn which object; ``detect.assigner``):

- ``centre``, FCOS's centre sampling: a point is a positive for an object when it lies inside
  the object's box *and* within 2.5 strides of its centre; a point that qualifies for several
  objects takes the smallest. Every other point is a negative for every class.
- ``task-aligned``, YOLOv8's assigner (TOOD, Feng et al. 2021): among the points inside an
  object's box, the ``detect.topk`` with the largest alignment ``t = s^0.5 * u^6`` (``s`` the
  predicted score of the object's class, ``u`` the IoU of the predicted box with it); the
  positives change as the detector learns.

**Loss**, as YOLOv8 weighs it (box 7.5, class 0.5):

- class: binary cross-entropy on every (point, class), the target of a positive being the
  IoU of its predicted box with its object (so that scores rank boxes by quality, which NMS
  and mAP reward; task-aligned: ``t`` rescaled so that each object's best point gets its best
  IoU), summed and divided by the sum of the targets;
- box: the Complete-IoU loss (Zheng et al. 2020; ``torchvision.ops.complete_box_iou_loss``)
  of each positive's box, weighted by the same target.

**Augmentation** (``data.augment``): fresh copy-paste scenes every epoch (the recipe's), or
YOLOv4's mosaic with a random scale, and left-right flips with ``mosaic-flip``
(:mod:`deepatlas.data.mosaic`), which also serves a YOLO or COCO folder of your own.

**Metrics**: COCO mAP@0.5 and mAP@0.5:0.95 from ``torchmetrics.detection.MeanAveragePrecision``
(pycocotools underneath), never a hand-written mAP. best.pt is chosen by validation
mAP@0.5:0.95; the test scenes (their own digits and photographs) are reported only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.scenes import Scenes
from deepatlas.models import create_model
from deepatlas.models.detector import postprocess
from deepatlas.tasks.scene_task import SceneTask, run_saved_model
from deepatlas.train import Context, StepOutput

CENTRE_RADIUS = 2.5  # strides: FCOS's centre sampling
ALIGN_ALPHA, ALIGN_BETA = 0.5, 6.0  # the task-aligned metric's exponents (YOLOv8's)
BOX_WEIGHT, CLASS_WEIGHT = 7.5, 0.5  # YOLOv8's defaults


def padded_targets(scenes: Scenes) -> tuple[torch.Tensor, torch.Tensor]:
    """Each scene's boxes (k, 4) and labels (k,) padded to the most any scene has (M): boxes
    (N, M, 4) and labels (N, M), -1 where there is no object; tensors batch where lists do
    not. (A photograph of your own may hold dozens of objects, a mosaic four scenes'.)"""
    slots = max([1, *(len(b) for b in scenes.boxes)])
    boxes = torch.zeros(len(scenes), slots, 4)
    labels = torch.full((len(scenes), slots), -1, dtype=torch.int64)
    for i, (b, c) in enumerate(zip(scenes.boxes, scenes.labels)):
        boxes[i, :len(b)], labels[i, :len(c)] = b, c
    return boxes, labels


def assign(points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor,
           labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a batch: each point's object index in its scene (B, N), and whether the point is a
    positive at all (B, N): centre sampling, then the smallest box. ``boxes`` (B, M, 4),
    ``labels`` (B, M), -1 for padding."""
    px, py = points[:, 0].view(1, -1, 1), points[:, 1].view(1, -1, 1)  # (1, N, 1)
    x1, y1, x2, y2 = (boxes[..., i].unsqueeze(1) for i in range(4))  # (B, 1, M)
    inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    radius = CENTRE_RADIUS * strides.view(1, -1, 1)
    near = ((px - (x1 + x2) / 2).abs() < radius) & ((py - (y1 + y2) / 2).abs() < radius)
    area = ((x2 - x1) * (y2 - y1)).expand(-1, len(points), -1)  # (B, N, M)
    ok = inside & near & (labels >= 0).unsqueeze(1)
    area = torch.where(ok, area, torch.inf)
    smallest, index = area.min(-1)  # (B, N)
    positive = smallest.isfinite()
    return torch.where(positive, index, -1), positive


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (B, N, 4) with every box of ``b`` (B, M, 4), xyxy, image by
    image: (B, N, M); torchvision's ``box_iou`` batched (:func:`paired_iou`, broadcast)."""
    return paired_iou(a[:, :, None], b[:, None])


@torch.no_grad()
def task_aligned_assign(pred_box: torch.Tensor, scores: torch.Tensor, points: torch.Tensor,
                        boxes: torch.Tensor, labels: torch.Tensor, topk: int = 10
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOv8's task-aligned assigner for a batch: predicted boxes (B, N, 4) and class scores
    (B, N, C) in [0, 1], targets padded as in :func:`assign`. Each object takes the ``topk``
    points inside its box with the largest ``t = s^0.5 * u^6``; a point several objects take
    keeps the one its box overlaps most (among the objects that took it; Ultralytics compares
    every object whose box holds the point). ``u`` is the plain IoU, where Ultralytics uses
    CIoU clamped at 0. Returns each point's object (B, N), -1 for a negative, whether it is
    positive (B, N), and its class target (B, N): ``t * max_u / max_t`` over the object's
    positives, so the best-aligned point gets the object's best IoU. A positive whose ``t``
    is 0 gets a target of 0 and no weight in the box loss, as in Ultralytics (the centre
    assigner floors its targets at 0.01 instead)."""
    n, m = pred_box.shape[1], boxes.shape[1]
    px, py = points[:, 0].view(1, -1, 1), points[:, 1].view(1, -1, 1)  # (1, N, 1)
    x1, y1, x2, y2 = (boxes[..., i].unsqueeze(1) for i in range(4))  # (B, 1, M)
    inside = ((px > x1) & (px < x2) & (py > y1) & (py < y2)
              & (labels >= 0).unsqueeze(1))  # (B, N, M)
    iou = pairwise_iou(pred_box, boxes)  # (B, N, M)
    s = scores.gather(2, labels.clamp(min=0).unsqueeze(1).expand(-1, n, -1))  # (B, N, M)
    align = s.pow(ALIGN_ALPHA) * iou.pow(ALIGN_BETA) * inside
    top = align.topk(min(topk, n), dim=1).indices  # (B, k, M)
    chosen = torch.zeros_like(inside).scatter_(1, top, True) & inside
    positive = chosen.any(-1)  # (B, N)
    index = torch.where(chosen, iou, -1.0).argmax(-1)  # among its objects, the best overlap
    final = F.one_hot(index, m).bool() & positive.unsqueeze(-1)  # (B, N, M)
    align, iou = align * final, iou * final
    target = align * iou.amax(1, keepdim=True) / align.amax(1, keepdim=True).clamp(min=1e-9)
    return torch.where(positive, index, -1), positive, target.amax(-1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of each box of ``a`` (P, 4) with the box in the same row of ``b`` (P, 4), xyxy:
    ``|a & b| / (|a| + |b| - |a & b|)``. The diagonal of ``torchvision.ops.box_iou(a, b)``
    without its P x P matrix: a batch holds thousands of positives, and that matrix cost a
    quarter of a training step. Leading dimensions broadcast (``(..., 4)``); two empty boxes
    (a padding slot against a collapsed prediction) score 0, not NaN."""
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a, area_b = (a[..., 2:] - a[..., :2]).prod(-1), (b[..., 2:] - b[..., :2]).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def detection_loss(out: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                   points: torch.Tensor, strides: torch.Tensor, assigner: str = "centre",
                   topk: int = 10) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of predictions ``out`` (B, N, 4 + C) against padded targets (see module)."""
    from torchvision.ops import complete_box_iou_loss

    pred_box, logits = out[..., :4].float(), out[..., 4:].float()
    if assigner == "task-aligned":
        index, positive, quality = task_aligned_assign(
            pred_box.detach(), logits.detach().sigmoid(), points, boxes, labels, topk)
    else:
        index, positive = assign(points, strides, boxes, labels)  # (B, N)
    target_box = boxes.gather(1, index.clamp(min=0).unsqueeze(-1).expand(-1, -1, 4))  # (B, N, 4)
    target_label = labels.gather(1, index.clamp(min=0))  # (B, N)
    bi, ni = positive.nonzero(as_tuple=True)
    if assigner != "task-aligned":
        quality = torch.zeros(index.shape, device=out.device)  # (B, N): IoU of each positive
        if len(bi):
            pairs = paired_iou(pred_box[bi, ni], target_box[bi, ni])
            quality[bi, ni] = pairs.detach().clamp(min=0.01)  # a floor: a positive is never 0
    target = torch.zeros_like(logits)  # (B, N, C)
    target[bi, ni, target_label[bi, ni]] = quality[bi, ni]
    norm = quality.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / norm
    if len(bi):
        box = (complete_box_iou_loss(pred_box[bi, ni], target_box[bi, ni], reduction="none")
               * quality[bi, ni]).sum() / norm
    else:  # no object in the batch: a zero that keeps the graph
        box = pred_box.sum() * 0.0
    loss = BOX_WEIGHT * box + CLASS_WEIGHT * cls
    return loss, {"box_loss": box.detach(), "cls_loss": cls.detach(),
                  "positives": positive.sum(1).float().mean()}


class Detect(SceneTask):
    name = "detect"
    uses = SceneTask.uses | {"detect.*"}
    monitor = ("val_map", "max")
    primary = "test_map50"

    def setup(self, ctx: Context) -> None:
        data = self.load_scenes(ctx)
        self.train_loader = self.batches(
            lambda scenes: (scenes.images, *padded_targets(scenes)))
        options = {k: v for k, v in self.config.model.items() if k != "name"}
        model = create_model(self.config.model["name"], in_channels=3,
                             image_size=data.image_size, num_classes=len(data.classes),
                             **options).to(ctx.device)
        self.models = {"model": model}
        size = data.image_size
        self.points, self.strides = model.anchor_points(size, size, device=ctx.device)

    def training_step(self, batch: Any, group: str) -> StepOutput:
        images, boxes, labels = batch  # (B, 3, H, W) uint8, (B, M, 4), (B, M)
        out = self.train_models["model"](self.inputs(images))  # (B, N, 4 + C)
        loss, logs = detection_loss(out, boxes, labels, self.points, self.strides,
                                    self.config.detect.assigner, self.config.detect.topk)
        return StepOutput(loss, {"loss": loss.detach(), **logs}, n=len(images))

    @torch.no_grad()
    def score(self, model: nn.Module, scenes: Scenes,
              keep: list[tuple[int, dict[str, torch.Tensor]]] | None = None
              ) -> dict[str, float]:
        """COCO mAP@0.5:0.95 and mAP@0.5 of ``model`` on ``scenes`` (torchmetrics; under DDP
        each rank scores its share and torchmetrics gathers them). ``keep`` collects each
        scene's (index, detections)."""
        from torchmetrics.detection import MeanAveragePrecision

        ctx, batch = self.ctx, self.config.train.eval_batch_size
        metric = MeanAveragePrecision(iou_type="bbox")
        index = torch.arange(ctx.dist.rank, len(scenes), ctx.dist.world_size)
        model.eval()
        for chunk in index.split(batch):
            with ctx.autocast():
                out = model(self.inputs(scenes.images[chunk].to(ctx.device)))
            found = [{k: v.cpu() for k, v in d.items()} for d in postprocess(out)]
            metric.update(found, [{"boxes": scenes.boxes[i], "labels": scenes.labels[i]}
                                  for i in chunk.tolist()])
            if keep is not None:
                keep.extend(zip(chunk.tolist(), found))
        result = metric.compute()
        return {"map": float(result["map"]), "map50": float(result["map_50"])}


# ------------------------------------------------------------------ `deepatlas eval`

def coco_files(scenes: Scenes, found: list[tuple[int, dict[str, torch.Tensor]]],
               classes: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The test scenes as a COCO ground-truth file, and ``found`` in COCO's results format
    (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``), so that pycocotools
    (``COCO(gt).loadRes(results)``, ``COCOeval``) scores them exactly as the run did."""
    size = int(scenes.images.shape[-1])
    images, annotations = [], []
    for i, (boxes, labels) in enumerate(zip(scenes.boxes, scenes.labels)):
        images.append({"id": i, "width": size, "height": size, "file_name": f"scene-{i}.png"})
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": i,
                                "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    truth = {"images": images, "annotations": annotations,
             "categories": [{"id": c, "name": name} for c, name in enumerate(classes)]}
    results = [{"image_id": i, "category_id": int(c), "score": round(float(p), 5),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]}
               for i, d in found for (x1, y1, x2, y2), c, p in
               zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist())]
    return truth, results


# ------------------------------------------------------------------ `deepatlas predict`

@torch.inference_mode()
def detect_image(state: dict[str, Any], path: str, device: torch.device = torch.device("cpu"),
                 score_threshold: float = 0.3) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The image at ``path`` as uint8 (3, H, W), and its detections above ``score_threshold``
    (boxes xyxy in its pixels, scores, labels). The image keeps its size: it is padded (edge
    pixels repeated) to a multiple of 16, which cannot move a box."""
    rgb, out = run_saved_model(state, path, device, len(state["data"]["classes"]), 16)
    found = postprocess(out, score_threshold)[0]
    return (rgb * 255).round().to(torch.uint8), {k: v.cpu() for k, v in found.items()}


def draw_detections(image: torch.Tensor, found: dict[str, torch.Tensor], classes: list[str]
                    ) -> torch.Tensor:
    """The boxes drawn on ``image`` (uint8 (3, H, W)) with "class score" labels
    (``torchvision.utils.draw_bounding_boxes``)."""
    from torchvision.utils import draw_bounding_boxes

    if not len(found["boxes"]):
        return image  # nothing found: the image as it was
    names = [f"{classes[c]} {p:.2f}" for c, p in zip(found["labels"].tolist(),
                                                     found["scores"].tolist())]
    return draw_bounding_boxes(image, found["boxes"], names, colors="red", width=1)


def predict_file(state: dict[str, Any], path: str, device: torch.device
                 ) -> tuple[dict[str, Any], str, Any]:
    """``deepatlas predict`` of one image: the answer (JSON), a line, and the boxes drawn."""
    from PIL import Image

    image, found = detect_image(state, path, device)
    classes = state["data"]["classes"]
    boxes = [{"class": classes[c], "score": round(p, 4), "box": [round(v, 1) for v in b]}
             for c, p, b in zip(found["labels"].tolist(), found["scores"].tolist(),
                                found["boxes"].tolist())]
    line = ", ".join(f"{d['class']} {d['score']:.2f} at {d['box']}" for d in boxes)
    drawn = draw_detections(image, found, classes).permute(1, 2, 0).numpy()
    return {"image": path, "detections": boxes}, line or "nothing found", Image.fromarray(drawn)
