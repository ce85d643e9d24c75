"""The ``deepatlas`` command: ``recipes``, ``train``, ``eval``, ``predict``.

Every user error ends as one line on stderr and exit code 2 (3 for a diverged run); a
traceback means a bug in deepatlas.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from deepatlas.errors import UserError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a recipe", description="Train a recipe. Keys for "
                       "--set are dotted (train.epochs=5, optim.lr=0.05, model.width=64).")
    p.add_argument("recipe", help="a recipe name (see `deepatlas recipes`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; repeat for several")
    p.add_argument("--out", help="run directory (default runs/RECIPE/TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_recipes(args: argparse.Namespace) -> int:
    from deepatlas.config import list_recipes

    recipes = list_recipes()
    width = max(map(len, recipes))
    for name, description in recipes.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from deepatlas.config import load_recipe
    from deepatlas.train import Trainer

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    config = load_recipe(args.recipe, overrides)
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR: the run directory to continue")
    out = Path(args.out) if args.out else Path("runs") / args.recipe / time.strftime(
        "%Y%m%d-%H%M%S")
    if config.task == "classify-nodes":
        from deepatlas.train.nodes import train_nodes

        summary = train_nodes(config, out, resume=args.resume)
    elif config.task == "seq2seq":
        from deepatlas.train.seq2seq import train_seq2seq

        summary = train_seq2seq(config, out, resume=args.resume)
    else:
        summary = Trainer(config, out, device=args.device, resume=args.resume,
                          progress=not args.no_progress).fit()
    if summary["test_acc"] is not None and os.environ.get("RANK", "0") == "0":
        metric = "exact match" if config.task == "seq2seq" else "test accuracy"
        print(f"{metric} {summary['test_acc']:.2%} (best {summary['best_test_acc']:.2%} at "
              f"epoch {summary['best_test_epoch']}) after {summary['epochs']} epochs in "
              f"{summary['wall_s']:.1f} s on {summary['device']}; run written to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from deepatlas.train.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.run, overrides=args.overrides, device=args.device)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['checkpoint']}: test accuracy {result['test_acc']:.2%}, test loss "
              f"{result['test_loss']:.4f} on {result['test_images']} {result['data']} images")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from deepatlas.train.evaluate import predict_images

    for path, top in predict_images(args.checkpoint, args.images, k=args.top):
        guesses = ", ".join(f"{name} {p:.1%}" for name, p in top)
        print(f"{path}: {guesses}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepatlas", description="A runnable map of deep "
                                     "learning: train recipes, evaluate and predict.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("recipes", help="list the recipes")
    _add_train(sub)
    p = sub.add_parser("eval", help="re-evaluate a saved model on its test set")
    p.add_argument("run", help="a run directory or a checkpoint file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data key, e.g. data.dir=FOLDER")
    p = sub.add_parser("predict", help="top classes for image files")
    p.add_argument("checkpoint", help="a run directory or a checkpoint file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=3, help="how many classes to show")
    return parser


COMMANDS = {"recipes": cmd_recipes, "train": cmd_train, "eval": cmd_eval,
            "predict": cmd_predict}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"deepatlas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deepatlas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
