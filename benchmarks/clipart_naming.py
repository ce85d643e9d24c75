"""How well can a clip-art drawing be named from its look alone? A ceiling for the detector's
clip-art floor (MAP 6.1, issue 17).

    python benchmarks/clipart_naming.py [--seeds 0 1 2] [--size 64] [--epochs 30]
                                        [--name clipart-naming] [--out results/benchmarks]

``clipart-scenes`` labels each drawing by the Open Clip Art Library folder it was filed in
(22 of them: "computer", "office", "unsorted", ...). This trains an image classifier on the
very drawings the detector's scenes are made of, with the scenes' own split (validation and
test a tenth each, within each category), alone and centred on white at ``--size`` px: no
photograph behind them, no other drawing over them, no box to find. That is easier than
naming a drawing in a scene: what a classifier reaches here shows how far the labels can be
learnt from the drawings' look (one small model's figure, not a bound).

Measured on the test drawings, for best.pt (chosen by validation accuracy): accuracy,
balanced accuracy (scikit-learn's), and the mean over categories of each category's
average precision, one against the rest (scikit-learn's ``average_precision_score``, over
the categories with a test drawing): a counterpart of mAP with every box found exactly,
though not the same measure (COCO's mAP interpolates precision, and counts drawings as the
scenes hold them). The model is the ``cifar10`` recipe's ResNet-20 (crop and flip, SGD with
Nesterov, cosine), trained through deepatlas's one Trainer for ``--epochs``.

Needs the clipart set (``deepatlas data get clipart``). Run by hand, never by the tests; the
result goes to ``--out``/``--name``-<host>.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from deepatlas.config import load_recipe
from deepatlas.data.image_text import to_rgb
from deepatlas.data.packages import set_folder
from deepatlas.data.scenes import SCENE_SETS
from deepatlas.data.source import ImageData, TensorSplit, channel_stats, register_source
from deepatlas.lab.stats import mean_std
from deepatlas.models.saved import saved_model
from deepatlas.tasks import fit
from deepatlas.train.checkpoint import load_checkpoint
from deepatlas.train.runinfo import write_result

SOURCE = "clipart-objects"


@register_source(SOURCE)
def clipart_objects(image_size: int = 64, **_: object) -> ImageData:
    """The clip-art scenes' drawings as a classification set: (N, 3, S, S) uint8 on white,
    labelled by category, split as the scenes split them."""
    splits, classes = SCENE_SETS["clipart-scenes"][1](set_folder("", "clipart", False))

    def tensors(split: str) -> TensorSplit:
        rgba, labels = splits[split]
        rgb = to_rgb(torch.from_numpy(rgba), image_size)  # (N, 3, S, S) in [0, 1]
        return TensorSplit((rgb * 255).round().to(torch.uint8), torch.from_numpy(labels).long())

    train = tensors("train")
    mean, std = channel_stats(train.images)
    return ImageData(name=SOURCE, classes=classes, in_channels=3, image_size=image_size,
                     train=train, val=tensors("val"), test=tensors("test"), mean=mean, std=std,
                     source="clipart drawings as clipart-scenes splits them")


@torch.no_grad()
def test_scores(run: Path, data: ImageData) -> dict[str, float]:
    """best.pt's accuracy, balanced accuracy and mean per-category AP on the test drawings."""
    import numpy as np
    from sklearn.metrics import average_precision_score, balanced_accuracy_score

    state = load_checkpoint(run / "best.pt")
    model = saved_model(state, in_channels=3, image_size=data.image_size,
                        num_classes=data.num_classes)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (data.test.images.float() / 255 - mean) / std
    probs = torch.cat([model(chunk).softmax(1) for chunk in x.split(500)]).numpy()
    labels = data.test.labels.numpy()
    present = np.unique(labels)  # AP is undefined for a category with no test drawing
    onehot = labels[:, None] == present[None, :]
    per_category = average_precision_score(onehot, probs[:, present], average=None)
    return {"acc": float((probs.argmax(1) == labels).mean()),
            "balanced_acc": float(balanced_accuracy_score(labels, probs.argmax(1))),
            "mean_ap": float(average_precision_score(onehot, probs[:, present],
                                                     average="macro")),
            "categories_scored": int(len(present)),
            "ap": {data.classes[c]: float(a) for c, a in zip(present, per_category)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=64, help="the drawings' side in pixels")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--name", default="clipart-naming")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    data = clipart_objects(args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            # data.val_fraction=0: the scenes' own validation drawings choose best.pt
            config = load_recipe("cifar10", [f"data.name={SOURCE}", f"seed={seed}",
                                             "data.val_fraction=0",
                                             f"data.image_size={args.size}",
                                             f"train.epochs={args.epochs}",
                                             "train.tensorboard=false"])
            run = Path(tmp) / f"seed{seed}"
            summary = fit(config, run, progress=False)
            row = {"seed": seed, **test_scores(run, data), "wall_s": summary["wall_s"],
                   "best_epoch": summary["best_monitored_epoch"],
                   "val_acc": summary["best"]["val_acc"]}
            print(row, flush=True)
            rows.append(row)
    spread = {k: mean_std([r[k] for r in rows]) for k in ("acc", "balanced_acc", "mean_ap")}
    path = write_result(args.out, args.name, {
        "question": "how well the clipart-scenes drawings can be named alone, on white",
        "model": "cifar10 recipe's ResNet-20 (width 16)", "image_size": args.size,
        "epochs": args.epochs, "splits": {s: len(getattr(data, s)) for s in
                                          ("train", "val", "test")},
        "classes": data.classes, "rows": rows, "test": spread})
    print(spread)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
