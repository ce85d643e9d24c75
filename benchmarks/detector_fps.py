"""Frames per second of the YOLO-style detector at batch 1, on a CPU or a GPU (MAP 6.1).

    python benchmarks/detector_fps.py [--device cpu] [--trials 5] [--frames 30] [--compile]
                                      [--out results/benchmarks]

The lab's ``detection`` experiment times the claim "YOLO v5: 45 FPS" on this machine's CPU
cores; this script times the same detector (the small model: the ``detect-scenes`` recipe's
architecture at width 16, without its stride-4 level, untrained
weights: speed depends on the architecture and on how many boxes NMS sees, which the 0.25
score threshold bounds) wherever it is run, at 320 and 640 px, forward pass plus NMS
(:func:`deepatlas.models.detector.postprocess`), in repeated trials after warm-up frames:

- eager PyTorch in fp32, and on a GPU also under bf16 and fp16 autocast;
- eager PyTorch in fp32 with each BatchNorm folded into the conv before it
  (:func:`deepatlas.compress.fuse.fold_batchnorm`, the rewrite ONNX Runtime makes on loading);
- with ``--compile``: ``torch.compile(mode="reduce-overhead")``, which on a GPU replays the
  whole forward pass as one CUDA graph (batch-1 inference of a small model is bound by kernel
  launches, not arithmetic); compiling takes a minute, which is not timed;
- ONNX Runtime on the model as ``deepatlas export --format onnx`` writes it, with the CUDA
  execution provider on a GPU (when the installed onnxruntime has it) or the CPU one.

The quoted 45 FPS is YOLOv1's, on a Titan X GPU (Redmon et al. 2016). Run by hand, never by
the tests; the result goes to ``results/benchmarks/detector-fps-<host>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from deepatlas.compress.fuse import fold_batchnorm
from deepatlas.lab.experiments.detection import (QUOTED_FPS, SIZES, frames_per_second,
                                                 onnx_frame, small_detector, timed)
from deepatlas.train.runinfo import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30, help="frames per trial")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(mode='reduce-overhead')")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    device = torch.device(args.device)
    runtimes: dict[str, torch.dtype | None] = {"eager fp32": None}
    if device.type == "cuda":
        runtimes |= {"eager bf16": torch.bfloat16, "eager fp16": torch.float16}
    rows: list[dict] = []
    params = sum(p.numel() for p in small_detector(SIZES[0]).parameters())

    def record(runtime: str, size: int, fps: list[float]) -> Path:
        """Print a row and (re)write the result file, so that an interrupted run keeps it."""
        mean, std = statistics.mean(fps), statistics.stdev(fps) if len(fps) > 1 else 0.0
        rows.append({"runtime": runtime, "size": size, "fps_mean": mean, "fps_std": std,
                     "ms_per_frame": 1000 / mean, "trials": fps})
        print(f"{runtime:<34} {size} px  {mean:8.1f} ± {std:5.1f} FPS  ({1000 / mean:.2f} ms)",
              flush=True)
        return write_result(args.out, "detector-fps", {
            "trials": args.trials, "frames": args.frames, "quoted_fps": QUOTED_FPS,
            "params": params, "rows": rows}, device)

    for size in SIZES:
        model = small_detector(size).to(device)
        for runtime, amp in runtimes.items():
            record(runtime, size, [frames_per_second(model, size, args.frames, 5, device, amp)
                                   for _ in range(args.trials)])
        folded = fold_batchnorm(model)
        record("eager fp32, BatchNorm folded", size,
               [frames_per_second(folded, size, args.frames, 5, device)
                for _ in range(args.trials)])
        if args.compile:
            compiled = torch.compile(model, mode="reduce-overhead")
            frames_per_second(compiled, size, 3, 3, device)  # compiles (untimed)
            record("torch.compile reduce-overhead fp32", size,
                   [frames_per_second(compiled, size, args.frames, 5, device)
                    for _ in range(args.trials)])
        provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
        with tempfile.TemporaryDirectory() as folder:
            frame = onnx_frame(small_detector(size), size,
                               Path(folder) / "detector.onnx", provider)
            if frame is not None:
                record(f"ONNX Runtime {provider}", size,
                       [timed(frame, args.frames, 5) for _ in range(args.trials)])
            else:
                print(f"ONNX Runtime with {provider}: not installed here, not timed")
    print(f"wrote {Path(args.out) / 'detector-fps'}-<host>.json")


if __name__ == "__main__":
    main()
