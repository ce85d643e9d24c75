"""Is a detector's mAP lost to finding objects or to naming them? (MAP 6.1)

    deepatlas eval RUN --predictions found.json        # writes found.json and found.truth.json
    python benchmarks/class_agnostic_map.py found.json [--out result.json]

Scores the test detections that ``deepatlas eval --predictions`` writes (COCO's results format,
beside their ground truth) twice with ``torchmetrics.detection.MeanAveragePrecision``: as they
are, and with every class merged into one. The gap between the two is what telling the classes
apart costs; the class-agnostic figure is what finding the objects alone reaches. Merged, the
boxes go through non-maximum suppression again (``torchvision.ops.nms``, IoU 0.6, the best
100, as the detector's own): NMS ran class by class, and one anchor may propose a box under
several classes, copies that would otherwise count as false positives. Also lists each
class's AP@0.5:0.95 (classes never predicted nor present are left out).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch


def xyxy(box: list[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y + h]


def score(truth: dict, found: list[dict], agnostic: bool, iou_threshold: float = 0.6,
          max_detections: int = 100) -> dict:
    """COCO mAP of ``found`` against ``truth``; with ``agnostic``, every label is 0 and the
    boxes of an image go through NMS again (see the module docstring)."""
    from torchmetrics.detection import MeanAveragePrecision
    from torchvision.ops import nms

    by_image_truth, by_image_found = defaultdict(list), defaultdict(list)
    for a in truth["annotations"]:
        by_image_truth[a["image_id"]].append(a)
    for d in found:
        by_image_found[d["image_id"]].append(d)
    metric = MeanAveragePrecision(iou_type="bbox", class_metrics=not agnostic)
    label = (lambda c: 0) if agnostic else (lambda c: c)  # noqa: E731
    for image in truth["images"]:
        g, p = by_image_truth[image["id"]], by_image_found[image["id"]]
        boxes = torch.tensor([xyxy(d["bbox"]) for d in p]).reshape(-1, 4)
        scores = torch.tensor([d["score"] for d in p])
        labels = torch.tensor([label(d["category_id"]) for d in p], dtype=torch.int64)
        if agnostic:
            keep = nms(boxes, scores, iou_threshold)[:max_detections]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        metric.update(
            [{"boxes": boxes, "scores": scores, "labels": labels}],
            [{"boxes": torch.tensor([xyxy(a["bbox"]) for a in g]).reshape(-1, 4),
              "labels": torch.tensor([label(a["category_id"]) for a in g], dtype=torch.int64)}])
    r = metric.compute()
    out = {"map50": float(r["map_50"]), "map": float(r["map"]), "mar100": float(r["mar_100"])}
    if not agnostic:
        names = {c["id"]: c["name"] for c in truth["categories"]}
        out["map_per_class"] = {names[int(c)]: round(float(v), 4)  # -1: never in the test
                                for c, v in zip(r["classes"], r["map_per_class"]) if v >= 0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("predictions", help="the --predictions file of deepatlas eval")
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    found_path = Path(args.predictions)
    found = json.loads(found_path.read_text())
    truth = json.loads(found_path.with_name(found_path.stem + ".truth.json").read_text())
    result = {"classes": score(truth, found, agnostic=False),
              "class_agnostic": score(truth, found, agnostic=True)}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
