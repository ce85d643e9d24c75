"""``deepatlas distill``, ``quantize`` and ``export``: the compression commands (MAP 5,
distillation and INT8; ONNX export), each a thin printer over :mod:`deepatlas.compress`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def cmd_distill(args: argparse.Namespace) -> int:
    from deepatlas.compress.distill import distill

    out = Path(args.out) if args.out else (Path("runs") / f"{args.student}-distilled"
                                           / time.strftime("%Y%m%d-%H%M%S"))
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    result = distill(args.teacher, args.student, overrides, out, compare=args.compare,
                     device=args.device, progress=not args.no_progress)
    ratio = result["teacher_params"] / result["student_params"]
    print(f"student ({result['student_params']:,} parameters, 1/{ratio:.1f} of the teacher's) "
          f"with teacher: {result['distilled']['test_acc']:.2%}")
    if "no_teacher" in result:
        print(f"same student, same seed and budget, without teacher: "
              f"{result['no_teacher']['test_acc']:.2%} (gain {result['gain'] * 100:+.2f} "
              "points)")
    print(f"written to {out} ({out / 'distill.json'})")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from deepatlas.compress.quantize import quantize_checkpoint

    r = quantize_checkpoint(args.run, calibration=args.calibration, out=args.out, qat=args.qat,
                            qat_epochs=args.qat_epochs, seed=args.seed, force=args.force)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    rows = [("fp32", r["fp32"]), (f"int8 ({r['method']})", r["int8"])]
    if "int8_ptq" in r:
        rows.insert(1, ("int8 (ptq)", r["int8_ptq"]))
    print(f"{'model':<12} {'size':>10} {'test acc':>9} {'batch 1':>10} {'batch 256':>11}")
    for name, m in rows:
        print(f"{name:<12} {m['bytes'] / 1e6:>7.2f} MB {m['test_acc']:>9.2%} "
              f"{m['latency_ms_batch1']:>7.2f} ms {m['latency_ms_batch256']:>8.1f} ms")
    speed = r["speedup_batch256"]  # fp32 time / int8 time
    pace = (f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower") + " at batch 256"
    print(f"size x{r['size_ratio']:.2f}, {pace}, accuracy {-r['accuracy_drop'] * 100:+.2f} "
          f"points ({r['threads']} threads); wrote {r['out']} and "
          f"{Path(r['out']).with_suffix('.json')}")
    if speed < 1 and r["speedup_batch1"] < 1:
        print("INT8 is slower than fp32 here at both batch sizes: keep the fp32 model on this "
              "machine (the INT8 file still saves size)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from deepatlas.compress.export import export_model

    r = export_model(args.run, args.format, args.out, args.force)
    print(f"wrote {r['out']} ({r['bytes'] / 1e6:.2f} MB); read back, its outputs on "
          f"{r['checked_images']} test images match PyTorch's within {r['max_abs_error']:.1e}")
    return 0
