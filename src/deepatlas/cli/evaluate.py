"""``deepatlas eval RUN``: a saved model scored again on its test set. Image classifiers
(checkpoints, INT8 files, exported models) report accuracy; segment runs Dice and IoU; detect
runs COCO mAP, and ``--predictions`` writes their detections for pycocotools; upscale runs
Y-PSNR and SSIM beside bicubic."""

from __future__ import annotations

import argparse
import json

from deepatlas.errors import UserError


def add_parser(sub) -> None:
    """Register ``eval`` on the top-level subparsers."""
    p = sub.add_parser("eval", help="re-evaluate a saved model on its test set")
    p.add_argument("run", help="a run directory, checkpoint, INT8 file (deepatlas quantize) or "
                   "exported model (.pt2, .onnx, .torchscript, .safetensors)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data key, e.g. data.dir=FOLDER")
    p.add_argument("--predictions", metavar="FILE", default=None,
                   help="detect runs: write the test detections in COCO's results format to "
                        "FILE, and the ground truth to FILE's stem + .truth.json (for "
                        "pycocotools)")
    p.add_argument("--force", action="store_true", help="overwrite the --predictions files")


def cmd_eval(args: argparse.Namespace) -> int:
    from deepatlas.cli.predict import checkpoint_state

    state = checkpoint_state(args.run)
    task = state.get("task") if state is not None else "classify-images"
    if args.predictions and task != "detect":
        raise UserError("--predictions writes a detector's test detections (COCO results "
                        f"format); this is a {task} run")
    if task in ("segment", "detect"):
        return _eval_scene_run(args, state)
    if task == "upscale":
        return _eval_upscale_run(args, state)
    from deepatlas.compress.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.run, overrides=args.overrides, device=args.device)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['checkpoint']} ({result['kind']}): test accuracy "
              f"{result['test_acc']:.2%}, test loss "
              f"{result['test_loss']:.4f} on {result['test_images']} {result['data']} images")
    return 0


def _eval_scene_run(args: argparse.Namespace, state: dict) -> int:
    from deepatlas.outputs import check_output
    from deepatlas.tasks.scene_runs import evaluate_scene_run
    from deepatlas.train.distributed import resolve_device

    predictions = None
    if args.predictions:
        predictions = check_output(args.predictions, args.force)
        check_output(predictions.with_name(predictions.stem + ".truth.json"), args.force)
    result = evaluate_scene_run(state, resolve_device(args.device), args.overrides, predictions)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["task"] == "detect":
        print(f"{args.run}: test mAP@0.5 {result['test_map50']:.3f}, mAP@0.5:0.95 "
              f"{result['test_map']:.3f} on {result['test_images']} {result['data']} scenes"
              + (f"; detections in {predictions}" if predictions else ""))
    else:
        print(f"{args.run}: test foreground Dice {result['test_dice']:.3f}, class Dice "
              f"{result['test_class_dice']:.3f}, mIoU {result['test_miou']:.3f} on "
              f"{result['test_images']} {result['data']} scenes")
    return 0


def _eval_upscale_run(args: argparse.Namespace, state: dict) -> int:
    from deepatlas.tasks.upscale import evaluate_upscale_run
    from deepatlas.train.distributed import resolve_device

    r = evaluate_upscale_run(state, resolve_device(args.device), args.overrides)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{args.run}: test Y-PSNR {r['test_psnr']:.2f} dB (bicubic "
              f"{r['test_bicubic_psnr']:.2f}, {r['test_gain']:+.2f}), SSIM {r['test_ssim']:.4f} "
              f"(bicubic {r['test_bicubic_ssim']:.4f}) on {r['test_images']} {r['data']} "
              "photographs")
    return 0
