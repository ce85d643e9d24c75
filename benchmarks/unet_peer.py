"""deepatlas's U-Net against ``segmentation_models_pytorch``'s Unet, same data, same engine,
same epochs.

    python benchmarks/unet_peer.py [--epochs 2] [--out results/benchmarks]

The peer is what a user would pick instead: ``smp.Unet("resnet18", encoder_weights=None)``
(no pretrained weights: none can be fetched here, and the comparison is of architectures
trained from scratch). Both train through deepatlas's one Trainer with the
``segment-scenes`` recipe (copy-paste digit scenes, CE + soft Dice, AdamW, cosine), the same
seed and the same number of epochs; the peer joins the model registry for this process only.
Measured: held-out foreground Dice, class Dice and mIoU at the last epoch, the parameter
count, and the training time, so that "same epochs" can be read as time too.

Needs ``pip install segmentation-models-pytorch`` (not a deepatlas dependency) and the
mnist-10k and photos sets. Run by hand, never by the tests; the result goes to
``results/benchmarks/unet-peer-<host>.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from torch import nn

from deepatlas.config import load_recipe
from deepatlas.models import register_model
from deepatlas.tasks import fit
from deepatlas.train.runinfo import write_result


@register_model(kind="dense")
def smp_unet(in_channels: int = 3, image_size: int = 64, num_classes: int = 2,
             encoder: str = "resnet18") -> nn.Module:
    """segmentation_models_pytorch's Unet, randomly initialised."""
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    import segmentation_models_pytorch as smp

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("deepatlas unet", ["model.name=unet"]),
                            ("smp Unet (resnet18)", ["model.name=smp-unet"])):
            # A new model.name starts from that model's defaults (U-Net's options drop).
            config = load_recipe("segment-scenes", [f"train.epochs={args.epochs}",
                                                    "train.tensorboard=false",
                                                    "data.download=false", *model])
            summary = fit(config, Path(tmp) / name.split()[0], progress=False)
            rows[name] = {key: summary[key] for key in ("test_dice", "test_class_dice",
                                                        "test_miou", "num_params", "wall_s")}
            print(name, rows[name], flush=True)
    path = write_result(args.out, "unet-peer", {"epochs": args.epochs, "rows": rows,
                                               "smp": smp.__version__})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
