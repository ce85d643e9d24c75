"""``deepatlas search RUN "a red car" --images DIR``: the images a CLIP run (MAP 6.3) finds
nearest a text.

Every image under DIR (PNG, JPEG, GIF, BMP, WebP; subfolders too) is centre-cropped to a square,
composited onto white where it has transparency, resized to the run's image size and embedded;
the text is embedded as a caption; the ``--top`` images of highest cosine similarity are listed
and drawn into a contact sheet (``--out``), each with its rank and similarity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepatlas.errors import UserError
from deepatlas.outputs import check_output, write_via_temp

SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}
CELL = 128  # px of each contact-sheet thumbnail


def add_parser(sub) -> None:
    """Register ``search`` on the top-level subparsers."""
    p = sub.add_parser("search", help="find the images that match a text, with a CLIP run",
                       description="Rank the images of a folder by their similarity to a text "
                       "under a CLIP run (deepatlas train clip-clipart), print the best and draw "
                       "them into a contact sheet.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a clip run directory or checkpoint")
    p.add_argument("query", help="the text to search for, e.g. \"a red car\"")
    p.add_argument("--images", required=True, help="a folder of images (searched recursively); "
                   "the clip-art drawings are in ~/.cache/deepatlas/clipart/png")
    p.add_argument("--top", type=int, default=8, help="how many images to keep")
    p.add_argument("--out", default="search.png", help="the contact sheet (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def read_images(folder: Path, size: int) -> tuple[list[Path], object]:
    """(paths, (N, 3, size, size) floats in [0, 1]) of the decodable images under
    ``folder``. Each is first fitted to the clip-art renderings' 64 px (or ``size``, if
    larger), then resized as the training drawings were."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    from deepatlas.data.clipart import SIZE
    from deepatlas.data.image_text import to_rgb

    side = max(size, SIZE)
    paths, arrays = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES):
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(ImageOps.fit(image.convert("RGBA"), (side, side))))
        except (UnidentifiedImageError, OSError, ValueError):
            continue  # not an image after all: skipped, like any other file
        paths.append(path)
    if not paths:
        raise UserError(f"{folder} holds no image that decodes ({', '.join(sorted(SUFFIXES))})")
    rgba = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (N, 4, side, side)
    return paths, to_rgb(rgba, size)


def thumbnail(path: Path):
    """``path`` as a CELL x CELL RGB square on white."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        square = ImageOps.fit(image.convert("RGBA"), (CELL, CELL))
    return Image.alpha_composite(Image.new("RGBA", square.size, "white"), square)


def contact_sheet(thumbs: list, labels: list[str], columns: int = 4):
    """The thumbnails in rows of ``columns``, each with its label underneath."""
    from PIL import Image, ImageDraw

    rows = -(-len(thumbs) // columns)
    sheet = Image.new("RGB", (columns * CELL, rows * (CELL + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (thumb, label) in enumerate(zip(thumbs, labels)):
        x, y = (i % columns) * CELL, (i // columns) * (CELL + 16)
        sheet.paste(thumb.convert("RGB"), (x, y))
        draw.text((x + 2, y + CELL + 2), label[:24], fill="black")
    return sheet


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from deepatlas.data.image_text import caption_tokens
    from deepatlas.tasks.clip import ContrastiveImageText, embed
    from deepatlas.tasks.text_runs import load_text_run

    if not args.query.strip():
        raise UserError("empty query: give the text to search for, e.g. \"a red car\"")
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    folder = Path(args.images)
    if not folder.is_dir():
        raise UserError(f"--images {folder} is not a folder")
    out = check_output(args.out, args.force)
    model, tokenizer, state = load_text_run(
        args.run, ContrastiveImageText.name, "search ranks images with `deepatlas train "
        "clip-clipart` runs", image_input=True)
    data = state["data"]
    paths, images = read_images(folder, data["image_size"])
    mean = torch.tensor(data["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(data["std"]).view(1, -1, 1, 1)
    device = torch.device("cpu")
    image_emb = embed(model, "encode_image", images, 256, device, lambda x: (x - mean) / std)
    text_emb = embed(model, "encode_text", caption_tokens(tokenizer, [args.query],
                                                          data["context"]), 1, device)
    scores = (image_emb @ text_emb.T).squeeze(1)  # cosine similarities (N,)
    best = scores.topk(min(args.top, len(paths))).indices.tolist()
    for rank, i in enumerate(best, 1):
        print(f"{rank:3d}  {scores[i]:+.3f}  {paths[i]}")
    sheet = contact_sheet([thumbnail(paths[i]) for i in best],
                          [f"{r}. {scores[i]:+.2f} {paths[i].stem}" for r, i in enumerate(best, 1)])
    write_via_temp(out, lambda tmp: sheet.save(tmp, "PNG"))
    print(f"contact sheet of the best {len(best)} of {len(paths)} images: {out}")
    return 0
