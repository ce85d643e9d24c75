"""``deepatlas explain RUN IMAGE --method shap|lime|ig --out heat.png``: which parts of an
image made an image classifier say what it said (MAP 7.3, :mod:`deepatlas.trust.explain`).

The explained output is the probability of the predicted class (or ``--target``); the
baseline is the black image; the features of SHAP and LIME are square patches. The heat map
shows each patch's attribution over the image: red raised the probability, blue lowered it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from deepatlas.errors import UserError, unknown_name

SCALE = 8  # the heat map's pixels per image pixel: a 28 px image becomes 224 px


def add_parser(sub) -> None:
    """Register ``explain`` on the top-level subparsers."""
    p = sub.add_parser("explain", help="a heat map of what made an image classifier decide",
                       description="Attributions for one image: Kernel SHAP, LIME (over square "
                       "patches) or Integrated Gradients (per pixel, shown per patch too), of "
                       "the predicted class's probability against a black image.")
    p.add_argument("checkpoint", help="an image classifier's run directory or model file")
    p.add_argument("image", help="the image file to explain")
    p.add_argument("--method", default="shap", help="shap, lime or ig")
    p.add_argument("--out", default="heat.png", help="the heat map to write (PNG)")
    p.add_argument("--target", default=None, help="explain this class (name or index) "
                   "instead of the predicted one")
    p.add_argument("--patch", type=int, default=None, help="patch side in pixels (default: "
                   "the image size / 7, so 49 patches on 28 px)")
    p.add_argument("--samples", type=int, default=1000, help="coalitions for shap and lime")
    p.add_argument("--steps", type=int, default=64, help="path points for ig")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled coalitions")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _target_index(target: str | None, classes: list[str], probs: torch.Tensor) -> int:
    if target is None:
        return int(probs.argmax())
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    if target in classes:
        return classes.index(target)
    raise unknown_name("class", target, classes)


def heat_map(image: torch.Tensor, pixels: torch.Tensor):
    """A PIL image: the grey picture (C, H, W in [0, 1]) under the attribution map (H, W),
    red for positive and blue for negative, scaled by the largest |attribution|."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    grey = image.mean(0).clamp(0, 1).numpy()[..., None]  # (H, W, 1)
    peak = float(pixels.abs().max()) or 1.0
    colour = colormaps["bwr"]((pixels.numpy() / peak + 1) / 2)[..., :3]  # (H, W, 3)
    mixed = 0.45 * grey + 0.55 * colour
    picture = Image.fromarray((mixed * 255).round().astype(np.uint8))
    return picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST)


def cmd_explain(args: argparse.Namespace) -> int:
    """Run ``deepatlas explain``."""
    from deepatlas.compress.evaluate import load_image
    from deepatlas.compress.modelfile import load_model_file
    from deepatlas.outputs import check_output, write_via_temp
    from deepatlas.trust import explain as ex

    if args.method not in ex.METHODS:
        raise unknown_name("method", args.method, ex.METHODS)
    for name, value, least in (("--samples", args.samples, 16), ("--steps", args.steps, 2)):
        if value < least:
            raise UserError(f"{name} must be >= {least}, got {value}")
    loaded = load_model_file(args.checkpoint, "explain")
    if args.method == "ig" and loaded.kind in ("onnx", "int8"):
        raise UserError(f"--method ig needs gradients, which an {loaded.kind} model does not "
                        "give: explain the run's checkpoint, or use --method shap or lime")
    out = check_output(args.out, args.force, protect=Path(args.image))
    meta, model = loaded.meta["data"], loaded.module.eval()
    x = load_image(args.image, meta)[0]  # (C, H, W), normalised
    mean = torch.tensor(meta["mean"]).view(-1, 1, 1)
    std = torch.tensor(meta["std"]).view(-1, 1, 1)
    baseline = (torch.zeros_like(x) - mean) / std  # a black image
    with torch.no_grad():
        probs = model(torch.stack([x, baseline])).softmax(1).float()  # (2, K)
    classes = list(meta["classes"])
    target = _target_index(args.target, classes, probs[0])
    size = x.shape[-1]
    patch = max(1, size // 7) if args.patch is None else args.patch
    if not 1 <= patch <= size:
        raise UserError(f"--patch must be in 1..{size} (the image is {size} px), got {patch}")
    segments = ex.patch_segments(x.shape[-2], x.shape[-1], patch)
    patches = int(segments.max()) + 1
    if args.method != "ig" and args.samples <= patches:
        raise UserError(f"--samples {args.samples} cannot fit {patches} patches of {patch} px: "
                        f"use --samples {4 * patches} or more, or a larger --patch")

    def f(images: torch.Tensor) -> torch.Tensor:  # (S, C, H, W) -> (S,)
        return model(images).softmax(1)[:, target]

    generator = torch.Generator().manual_seed(args.seed)
    if args.method == "ig":
        pixels = ex.integrated_gradients(f, x, baseline, args.steps).sum(0)  # (H, W)
        scores = ex.per_segment(pixels[None], segments)
    else:
        scores = ex.explain(args.method, f, x, baseline, segments, args.samples,
                            generator=generator)
        pixels = scores[segments]  # each pixel shows its patch's score
    picture = heat_map((x * std + mean).float(), pixels.float())
    write_via_temp(out, lambda tmp: picture.save(tmp, format="PNG"))
    gap = float(probs[0, target] - probs[1, target])
    top = scores.argsort(descending=True)[:3].tolist()
    # SHAP and IG split f(x) - f(black) among the patches; LIME's weights need not add up.
    budget = (f"attributions sum to {float(scores.sum()):+.3f} against f(x) - f(black) = "
              f"{gap:+.3f}; " if args.method != "lime" else "")
    print(f"{args.image}: {classes[target]} {probs[0, target]:.1%} (black image "
          f"{probs[1, target]:.1%}); {args.method}: {budget}top patches "
          f"{', '.join(map(str, top))} of {patches} ({patch} px); wrote {Path(out)}")
    return 0
