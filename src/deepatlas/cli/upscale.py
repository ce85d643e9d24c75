"""``deepatlas upscale RUN image.png --out big.png``: enlarge a picture with a trained upscale
run (MAP 6.1, ESRGAN), in overlapping tiles so that any size fits in memory."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepatlas.errors import UserError

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF", ".bmp": "BMP"}


def add_parser(sub) -> None:
    """Register ``upscale`` on the top-level subparsers."""
    p = sub.add_parser("upscale", help="enlarge an image with a super-resolution run",
                       description="Enlarge an image x4 (the run's scale) with an upscale run "
                       "(deepatlas train upscale-psnr or upscale-esrgan). The image is cut into "
                       "tiles that overlap by the model's receptive field, so the result equals "
                       "the whole image's.")
    p.add_argument("run", help="an upscale run directory or checkpoint")
    p.add_argument("image", help="the image to enlarge (PNG, JPEG, ...)")
    p.add_argument("--out", required=True, help="the enlarged image (.png, .jpg, .webp, "
                   ".tif or .bmp); RGB: grey is enlarged as colour, alpha is dropped")
    p.add_argument("--tile", type=int, default=192,
                   help="tile side in input pixels (memory grows with it); 0 = whole image")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def cmd_upscale(args: argparse.Namespace) -> int:
    from deepatlas.outputs import check_output, write_via_temp

    if args.tile < 0:
        raise UserError(f"--tile must be >= 0 (0 = whole image), got {args.tile}")
    if Path(args.out).suffix.lower() not in FORMATS:
        raise UserError(f"--out {args.out}: name a {', '.join(FORMATS)} file")
    from deepatlas.train.checkpoint import load_run

    state, _ = load_run(args.run, "upscale",
                        "deepatlas upscale needs one (deepatlas train upscale-psnr)")
    out = check_output(args.out, args.force, protect=Path(args.image))
    from PIL import Image

    from deepatlas.tasks.upscale import upscale_file
    from deepatlas.train.distributed import resolve_device

    rgb, big = upscale_file(state, args.image, resolve_device(args.device), args.tile)
    kind = FORMATS[out.suffix.lower()]
    write_via_temp(out, lambda tmp: Image.fromarray(big).save(tmp, format=kind))
    print(f"{args.image}: {rgb.shape[1]}x{rgb.shape[0]} -> {big.shape[1]}x{big.shape[0]} px, "
          f"written to {out}")
    return 0
