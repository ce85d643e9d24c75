"""Training throughput per model and precision, against this machine's own matmul peak (MAP 8).

    python benchmarks/throughput.py [--batch 256] [--steps 20] [--device cpu]
                                    [--out results/benchmarks]

For each model and precision: images per second of a full training step (forward, backward,
SGD update) on Fashion-MNIST-shaped input (1 x 28 x 28), and the achieved FLOP rate, with the
step's FLOPs counted by torch.utils.flop_counter. The peak is a square matmul in the same
precision (2048 on a CPU; 8192 on a GPU, which a smaller one leaves idle). On a GPU the fp32
peak is IEEE fp32 (TF32 off, PyTorch's default for matmuls), while the fp32 rows' convolutions
run in TF32 (cuDNN's default in PyTorch): PyTorch's defaults, as a user meets them. Run by
hand, never by the tests; results go to a JSON with the machine and versions.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.models import create_model
from deepatlas.train.runinfo import write_result
from deepatlas.train.runtime import synchronize

MODELS = {
    "airbench-w32 (fashion-mnist-fast)": ("airbench", {"width": 32}),
    "airbench-w48 (fashion-mnist-best)": ("airbench", {"width": 48}),
    "resnet-8-w32 (fashion-mnist)": ("resnet", {"depth": 8, "width": 32}),
    "resnet-8-w16": ("resnet", {"depth": 8, "width": 16}),
    "cnn-w32 (mnist)": ("cnn", {"width": 32}),
    "mlp-3x256": ("mlp", {"depth": 3, "width": 256}),
}


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    a @ b
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9  # GFLOP/s


def train_step(model, optimizer, x, y, amp: torch.dtype | None) -> None:
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(name: str, options: dict, amp: torch.dtype | None, batch: int, steps: int,
            device: torch.device) -> dict:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, image_size=28, num_classes=10, **options)
    memory_format = torch.channels_last if name != "mlp" else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, x, y, amp)
    flops = counter.get_total_flops()
    for _ in range(3):
        train_step(model, optimizer, x, y, amp)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x, y, amp)
    synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    return {"images_per_s": batch / seconds, "gflop_per_s": flops / seconds / 1e9,
            "gflop_per_step": flops / 1e9, "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    device = torch.device(args.device)
    peaks = {"fp32": matmul_peak(torch.float32, device),
             "bf16": matmul_peak(torch.bfloat16, device)}
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} threads")
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s "
          f"({where})")
    rows = []
    for label, (name, options) in MODELS.items():
        for precision, amp in (("fp32", None), ("bf16", torch.bfloat16)):
            r = measure(name, options, amp, args.batch, args.steps, device)
            r.update(model=label, precision=precision,
                     share_of_peak=r["gflop_per_s"] / peaks[precision])
            rows.append(r)
            print(f"{label:<30} {precision}  {r['images_per_s']:>8.0f} img/s  "
                  f"{r['gflop_per_s']:>6.1f} GFLOP/s  {r['share_of_peak']:>5.1%} of peak")
    path = write_result(args.out, "throughput", {"batch": args.batch, "steps": args.steps,
                                                 "peaks": peaks, "rows": rows}, device)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
