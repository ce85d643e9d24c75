"""What the copy-paste scenes' augmentation does for the U-Net and the detector (MAP 6.1).

    python benchmarks/scene_augment.py [--seed 0] [--out results/benchmarks]

Each recipe trains three ways, everything else as the recipe says (its epochs, seed, model):
``data.augment=none`` (the fixed 4,000 training scenes), ``copy-paste`` (fresh scenes every
epoch) and ``copy-paste-recolour`` (fresh scenes on recoloured photographs); ``--arms`` names
others (``mosaic``: YOLO's mosaic and scale of the fixed scenes), and ``--merge`` adds the
rows to the committed file instead of replacing it. Recorded per run:
validation and test Dice (U-Net) or mAP@0.5 (detector; its best.pt is chosen by validation
mAP@0.5:0.95), at best.pt and at the last epoch, the training time and the first epoch's
(the same fixed scenes in every arm: a gauge of the machine's load). For the U-Net it also
records where the errors are: the edge band (pixels within one pixel of a digit's edge, either
side, where the mask is ``alpha > 0.5`` of an enlarged MNIST digit), its share of the
foreground, the share of the errors in it, and the Dice outside it.

Needs the mnist-10k and photos sets (``deepatlas data get mnist-10k``, ``... photos``). About
65 minutes on 2 cores (three U-Nets of 10-13 minutes, three detectors of about 10); run by
hand, never by the tests. The result goes to ``results/benchmarks/scene-augment-<host>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from deepatlas.config import load_recipe
from deepatlas.tasks import fit
from deepatlas.train.runinfo import write_result

ARMS = ("none", "copy-paste", "copy-paste-recolour")
FIGURES = {"segment-scenes": ("val_dice", "test_dice"),
           "detect-scenes": ("val_map50", "test_map50")}


@torch.no_grad()
def edge_band(run: Path) -> dict[str, float]:
    """The U-Net run's test errors by place: the band's share of the foreground, the share of
    errors in it, and the foreground Dice outside it."""
    from deepatlas.data.scenes import load_scenes
    from deepatlas.models.saved import saved_model
    from deepatlas.tasks.segment import label_map
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    state = load_checkpoint(find_checkpoint(run))
    meta = state["data"]
    model = saved_model(state, in_channels=3, image_size=meta["image_size"],
                        num_classes=len(meta["classes"]) + 1)
    scenes = load_scenes("", download=False, image_size=meta["image_size"]).test
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    found = torch.cat([label_map(model((x.float() / 255 - mean) / std)) > 0
                       for x in scenes.images.split(100)])  # (N, H, W)
    truth = scenes.masks > 0
    near = F.max_pool2d(truth.float()[:, None], 3, 1, 1)[:, 0] > 0  # dilated by one pixel
    inner = -F.max_pool2d(-truth.float()[:, None], 3, 1, 1)[:, 0] > 0  # eroded by one
    band = near & ~inner
    wrong = found != truth
    out, tr = found & ~band, truth & ~band
    return {"band_share_of_foreground": float((band & truth).sum() / truth.sum()),
            "errors_in_band": float((wrong & band).sum() / wrong.sum()),
            "test_dice_outside_band": float(2 * (out & tr).sum() / (out.sum() + tr.sum()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--note", default="", help="a sentence the README prints with the "
                        "table: where each row comes from (with --merge, it replaces the old)")
    parser.add_argument("--recipes", nargs="+", default=list(FIGURES), choices=list(FIGURES))
    parser.add_argument("--arms", nargs="+", default=list(ARMS),
                        help=f"data.augment values (default: {' '.join(ARMS)})")
    parser.add_argument("--merge", action="store_true",
                        help="add these rows to the existing results file, keeping its others")
    args = parser.parse_args()
    rows: dict[str, dict[str, dict[str, float]]] = {}
    note = args.note
    if args.merge:
        found = sorted(Path(args.out).glob("scene-augment-*.json"))
        if not found:
            raise SystemExit(f"--merge: no scene-augment-*.json in {args.out} to add rows to")
        old = json.loads(found[-1].read_text())
        rows, note = old["rows"], args.note or old.get("note", "")  # a new note replaces it
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            val, test = FIGURES[recipe]
            rows.setdefault(recipe, {})
            for arm in args.arms:
                run = Path(tmp) / f"{recipe}-{arm}"
                summary = fit(load_recipe(recipe, [f"data.augment={arm}", f"seed={args.seed}",
                                                   "train.tensorboard=false",
                                                   "data.download=false"]), run, progress=False)
                row = {val: summary["best"][val], test: summary["best"][test],
                       f"last_{val}": summary[val], f"last_{test}": summary[test],
                       "best_epoch": summary["best_monitored_epoch"],
                       "epochs": summary["epochs"], "wall_s": summary["wall_s"],
                       "first_epoch_s": json.loads(
                           (run / "metrics.jsonl").read_text().splitlines()[0])["wall_s"]}
                if recipe == "segment-scenes":
                    row |= edge_band(run)
                rows[recipe][arm] = row
                print(recipe, arm, row, flush=True)
    path = write_result(args.out, "scene-augment", {"seed": args.seed, "rows": rows,
                                                    "note": note})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
