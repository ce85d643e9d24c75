"""deepatlas's U-Net against ``segmentation_models_pytorch``'s Unet, same data, same engine,
same wall time.

    python benchmarks/unet_peer.py [--epochs 0] [--out results/benchmarks] [--run-dir DIR]

The peer is what a user would pick instead: ``smp.Unet("resnet18", encoder_weights=None)``
(no pretrained weights: none can be fetched here, and the comparison is of architectures
trained from scratch). Both train through deepatlas's one Trainer with the
``segment-scenes`` recipe (copy-paste digit scenes, CE + soft Dice, AdamW, cosine), the same
seed; the peer joins the model registry for this process only. deepatlas's U-Net trains for
``--epochs`` (0, the default: the recipe's ``train.epochs``), into ``--run-dir`` if given, so
that the run can also serve as the recipe's result; the peer, about twice as slow an epoch,
gets as many epochs as fit the same wall time (timed by a one-epoch run of it first), so that
both schedules run to their end.
Measured: held-out foreground Dice, class Dice and mIoU of best.pt (validation Dice chooses),
the parameter count, and the training time.

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


def _train(name: str, model: list[str], epochs: int, out: Path) -> dict:
    """Train ``name`` into ``out`` through the one Trainer; its best.pt's test figures."""
    # A new model.name starts from that model's defaults (U-Net's options drop).
    overrides = [f"train.epochs={epochs}"] if epochs else []
    config = load_recipe("segment-scenes", [*overrides, "train.tensorboard=false",
                                            "data.download=false", *model])
    summary = fit(config, out, progress=False)
    row = {key: summary["best"][key] for key in ("test_dice", "test_class_dice", "test_miou")}
    row.update(num_params=summary["num_params"], wall_s=summary["wall_s"],
               epochs=summary["epochs"], best_epoch=summary["best_monitored_epoch"],
               more_photos=config.data.more_photos)
    print(name, row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0,
                        help="deepatlas's U-Net's epochs; 0: the recipe's train.epochs")
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--run-dir", default="",
                        help="keep deepatlas's run here (a new folder); default: a temporary one")
    args = parser.parse_args()
    if args.run_dir and Path(args.run_dir).exists():
        parser.error(f"--run-dir {args.run_dir} exists; name a new folder")
    import segmentation_models_pytorch as smp

    ours, peer = ("deepatlas unet", ["model.name=unet"]), ("smp Unet (resnet18)",
                                                          ["model.name=smp-unet"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = {ours[0]: _train(*ours, args.epochs, Path(args.run_dir or Path(tmp) / "ours"))}
        budget_s = rows[ours[0]]["wall_s"]
        probe_s = _train(*peer, 1, Path(tmp) / "peer-probe")["wall_s"]
        rows[peer[0]] = _train(*peer, max(1, round(budget_s / probe_s)), Path(tmp) / "peer")
    path = write_result(args.out, "unet-peer", {"budget_s": budget_s, "peer_epoch_s": probe_s,
                                               "rows": rows, "smp": smp.__version__,
                                               "epochs_arg": args.epochs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
