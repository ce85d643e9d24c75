"""deepatlas's CLIP against open_clip's, same data, same engine, same epochs.

    python benchmarks/clip_peer.py [--epochs 10] [--prompts name] [--out results/benchmarks]

The peer is what a user would pick instead: ``open_clip.model.CLIP`` (open_clip_torch),
built from a config of the same size as deepatlas's ``model.image_encoder=vit`` (a ViT of 4
layers, width 128, 4 heads, 4 px patches on 32 px images; a causal text Transformer of 3
layers, width 128, 4 heads, context 32, pooled at [EOT]; a 128-d joint space), randomly
initialised. Both train through deepatlas's one Trainer with the ``clip-clipart`` recipe
(same captions, BPE, split, augmentation, AdamW, cosine, seed and epochs); the peer joins
the model registry for this process only. Its features for the linear probe are its image
embedding before normalisation (open_clip's ViT ends in its projection); deepatlas's are the
encoder's output before the projection. The recipe as shipped (a ResNet-8 image encoder) is
the third row.

Needs ``pip install -e '.[bench]'`` and the clipart set. Run by hand, never by the tests; the
result goes to ``results/benchmarks/clip-peer-<host>.json``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.config import load_recipe
from deepatlas.models import register_model
from deepatlas.tasks import fit
from deepatlas.tasks.clip import PROMPT_SETS
from deepatlas.train.runinfo import write_result

KEYS = ("test_zero_shot_acc", "test_zero_shot_balanced_acc", "test_probe_acc",
        "test_image_to_text_r1", "test_text_to_image_r1", "test_recall_mean", "num_params",
        "wall_s")


class OpenClipPeer(nn.Module):
    """open_clip's CLIP behind the interface task clip calls."""

    def __init__(self, model: nn.Module, context: int) -> None:
        super().__init__()
        self.model, self.context = model, context

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(images), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)

    def scale(self) -> torch.Tensor:  # open_clip's training loop clamps it at log(100)
        return self.model.logit_scale.clamp(max=math.log(100)).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, embeddings: bool = False):
        if embeddings:
            return self.encode_image(images), self.encode_text(tokens), self.scale()
        return self.scale() * self.encode_image(images) @ self.encode_text(tokens).T


@register_model(kind="clip")
def open_clip_vit(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 1000,
                  width: int = 32, patch: int = 4, vision_layers: int = 4, context: int = 32,
                  text_width: int = 128, text_layers: int = 3, heads: int = 4,
                  embed_dim: int = 128) -> nn.Module:
    """open_clip's CLIP with deepatlas's ViT option's sizes (``num_classes``: vocabulary)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=vision_layers, width=4 * width, head_width=4 * width // heads,
                           patch_size=patch, image_size=image_size)
    text = CLIPTextCfg(context_length=context, vocab_size=num_classes, width=text_width,
                       heads=heads, layers=text_layers, pool_type="eos", eos_id=2, pad_id=0)
    return OpenClipPeer(CLIP(embed_dim, vision, text), context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prompts", default="name", choices=sorted(PROMPT_SETS),
                        help="clip.prompts: the zero-shot prompt set")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    import open_clip

    rows = {}
    arms = (("deepatlas clip (ViT)", ["model.image_encoder=vit"]),
            ("open_clip CLIP (ViT)", ["model.name=open-clip-vit", "model.width=32",
                                      "model.context=32", "model.text_width=128",
                                      "model.text_layers=3", "model.heads=4",
                                      "model.embed_dim=128"]),
            ("deepatlas clip (ResNet-8, the recipe's model)", []))
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, sets) in enumerate(arms):
            config = load_recipe("clip-clipart", [f"train.epochs={args.epochs}",
                                                  "train.tensorboard=false",
                                                  "data.download=false",
                                                  f"clip.prompts={args.prompts}", *sets])
            summary = fit(config, Path(tmp) / f"arm{i}", progress=False)
            rows[name] = {key: summary[key] for key in KEYS}
            precision = summary["precision"]  # the recipe's: the same for every arm
            print(name, rows[name], flush=True)
    path = write_result(args.out, "clip-peer", {"epochs": args.epochs, "prompts": args.prompts,
                                               "rows": rows,
                                               "precision": precision,
                                               "open_clip": open_clip.__version__})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
