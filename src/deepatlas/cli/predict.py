"""``deepatlas predict RUN INPUT...``: what a trained run says about new inputs. It dispatches
on the run's task: top classes of image files (an image classifier, also INT8 or exported),
the polarity of sentences (classify-text), or the mask of each image (segment)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepatlas.errors import UserError


def add_parser(sub) -> None:
    """Register ``predict`` on the top-level subparsers."""
    p = sub.add_parser("predict", help="top classes for image files (sentences: the polarity "
                       "from a classify-text run; masks or boxes from a segment or detect run)")
    p.add_argument("checkpoint", help="a run directory or a checkpoint file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...), or sentences for a "
                   "classify-text run")
    p.add_argument("--top", type=int, default=3, help="how many classes to show")
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where the model runs (default auto: CUDA, MPS, else CPU)")
    p.add_argument("--out", default=None, help="segment and detect runs: write the mask over "
                   "the image, or the boxes on it, to this PNG (default: none, print them)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def checkpoint_state(run_or_file: str) -> dict[str, Any] | None:
    """The training checkpoint a run folder or .pt file holds; None for other model files
    (INT8, exported), which only image classifiers have."""
    path = Path(run_or_file)
    if not (path.is_dir() or path.suffix == ".pt"):
        return None
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    try:
        return load_checkpoint(find_checkpoint(path))
    except UserError:  # an INT8 .pt, or damage: the image classifiers' loader says which
        return None


def _predict_pictures(args: argparse.Namespace, state: dict[str, Any], task: str) -> int:
    """A segment or detect run: per image, what it found (the masks' classes and shares, or
    the boxes); with ``--out``, the mask or the boxes drawn on the (one) image."""
    from deepatlas.outputs import check_output, write_via_temp
    from deepatlas.train.distributed import resolve_device

    if task == "segment":
        from deepatlas.tasks.segment import predict_file
    else:
        from deepatlas.tasks.detect import predict_file
    if args.out and len(args.images) != 1:
        raise UserError(f"--out takes one image; got {len(args.images)}")
    out = check_output(args.out, args.force) if args.out else None
    device = resolve_device(args.device)
    answers, bad = [], 0
    for path in args.images:  # a bad file is reported on its own; the others are answered
        try:
            answer, line, picture = predict_file(state, path, device)
        except UserError as exc:
            print(f"deepatlas: error: {exc}", file=sys.stderr)
            bad += 1
            continue
        answers.append(answer)
        if out is not None:
            write_via_temp(out, lambda tmp: picture.save(tmp, format="PNG"))
        if not args.json:
            print(f"{path}: {line}" + (f"; drawn in {out}" if out is not None else ""))
    if args.json:
        print(json.dumps(answers, indent=2))
    return 2 if bad else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``deepatlas predict``: classes of images, polarity of sentences, masks or boxes."""
    from deepatlas.compress.evaluate import predict_images

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    state = checkpoint_state(args.checkpoint)
    task = state.get("task") if state is not None else "classify-images"
    if task in ("segment", "detect"):
        return _predict_pictures(args, state, task)
    if task == "upscale":
        raise UserError(f"{args.checkpoint} is an upscale run: enlarge an image with "
                        "deepatlas upscale RUN IMAGE --out BIG.png")
    if task == "classify-text":  # the inputs are sentences, not image files
        from deepatlas.tasks.classify_text import classify_sentences

        if not all(text.strip() for text in args.images):
            raise UserError("an empty sentence: give the text to classify, e.g. "
                            "'a gorgeous, witty film'")
        for text, (label, p) in zip(args.images, classify_sentences(args.checkpoint,
                                                                    args.images)):
            print(f"{label} {p:.1%}: {text}")
        return 0
    if args.out:
        raise UserError("--out is for segment and detect runs (the mask or the boxes over the "
                        "image); an image classifier prints its answers")
    bad = 0
    answers = predict_images(args.checkpoint, args.images, k=args.top, device=args.device)
    if args.json:
        print(json.dumps([{"image": str(path), "error": top} if isinstance(top, str) else
                          {"image": str(path), "top": [{"class": c, "probability": p}
                                                       for c, p in top]}
                          for path, top in answers], indent=2))
        return 2 if any(isinstance(top, str) for _, top in answers) else 0
    for path, top in answers:
        if isinstance(top, str):  # this file could not be read: say so, answer the others
            print(f"deepatlas: error: {top}", file=sys.stderr)
            bad += 1
            continue
        guesses = ", ".join(f"{name} {p:.1%}" for name, p in top)
        print(f"{path}: {guesses}")
    return 2 if bad else 0
