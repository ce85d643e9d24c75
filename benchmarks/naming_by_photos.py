"""Does a detector misname digits on photographs it never saw, or digits it never saw? (MAP 6.1)

    python benchmarks/naming_by_photos.py RUN [--checkpoint best.pt] [--scenes 800]
                                              [--name naming-by-photos] [--out results/benchmarks]

A detector trained on ``digit-scenes`` has seen 7,200 digits on 15 photographs. This composes
``--scenes`` new scenes (one fixed seed) for each of four pairings, the training or the test
split's digits on the training or the test split's photographs, and runs the run's
``--checkpoint`` on them. For every true digit that some detection overlaps at IoU >= 0.5, the
detection with the highest score among those names it right or wrong: the share named right is
the naming accuracy. Finding is left out on purpose (class_agnostic_map.py measures it).

If the accuracy falls with the test photographs and not with the test digits, the detector
has learnt the training photographs' textures rather than what a digit looks like on any of
them. Run by hand, never by the tests; needs the mnist-10k and photos sets. The result goes
to ``--out``/``--name``-<host>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.ops import box_iou

from deepatlas.data.scenes import Scenes, compose, scene_folders, scene_sources
from deepatlas.models.detector import postprocess
from deepatlas.models.saved import saved_model
from deepatlas.tasks.scene_task import normalise
from deepatlas.train.checkpoint import load_checkpoint
from deepatlas.train.runinfo import write_result

SEED = 123  # the four pairings share it: the same draws of size, place and colour


@torch.no_grad()
def naming_accuracy(model: torch.nn.Module, scenes: Scenes, mean: list[float],
                    std: list[float]) -> tuple[int, float]:
    """(digits found at IoU >= 0.5, share of them whose best-scoring box has their class)."""
    found = []
    for chunk in torch.arange(len(scenes)).split(100):
        found += postprocess(model(normalise(scenes.images[chunk], mean, std)))
    named = right = 0
    for boxes, labels, d in zip(scenes.boxes, scenes.labels, found):
        if len(boxes) == 0 or len(d["boxes"]) == 0:
            continue
        overlaps = box_iou(boxes, d["boxes"]) >= 0.5  # (digits, detections)
        for hits, label in zip(overlaps, labels):
            if hits.any():
                best = hits.nonzero()[:, 0][d["scores"][hits].argmax()]
                named += 1
                right += int(d["labels"][best] == label)
    return named, right / max(named, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="best.pt")
    parser.add_argument("--scenes", type=int, default=800)
    parser.add_argument("--name", default="naming-by-photos")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    state = load_checkpoint(args.run / args.checkpoint)
    config, meta = state["config"], state["data"]
    if config["data"]["name"] != "digit-scenes":
        raise SystemExit(f"{args.run} was trained on {config['data']['name']}; this compares "
                         "digit-scenes splits")
    size = config["data"]["image_size"]
    # "train photographs" are photos' 15 training ones, with or without data.more_photos,
    # so that runs with and without photos-more are scored on the same scenes
    folders = scene_folders("digit-scenes", config["data"]["dir"], download=False)
    sources, classes = scene_sources("digit-scenes", folders)
    model = saved_model(state, in_channels=3, image_size=size, num_classes=len(classes))
    rows = {}
    for digits in ("train", "test"):
        for photos in ("train", "test"):
            objects, labels, _ = sources[digits]
            scenes = compose(objects, labels, sources[photos][2], args.scenes, size=size,
                             seed=SEED)
            named, accuracy = naming_accuracy(model, scenes, meta["mean"], meta["std"])
            rows[f"{digits} digits on {photos} photographs"] = {"digits_found": named,
                                                               "named_right": accuracy}
            print(f"{digits:>5} digits on {photos:>5} photographs: {named} found, "
                  f"{accuracy:.1%} named right")
    result = {"benchmark": "naming-by-photos", "run": str(args.run),
              "checkpoint": args.checkpoint, "epoch": state.get("epoch"),
              "augment": config["data"]["augment"], "ema_decay": config["train"]["ema_decay"],
              "more_photos": config["data"].get("more_photos", False),
              "scenes_per_pairing": args.scenes, "seed": SEED, "rows": rows}
    print(f"written to {write_result(args.out, args.name, result)}")


if __name__ == "__main__":
    main()
