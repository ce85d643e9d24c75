"""MAP 5.3: knowledge distillation and INT8 quantisation, through the commands users run
(``deepatlas distill``, ``deepatlas quantize``)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment


def measured_runs(root: Path = Path("runs")) -> dict:
    """Full-size results the compression commands wrote, when they are there."""
    found = {}
    distills = sorted(root.glob("*/distill.json")) + sorted(root.glob("*/*/distill.json"))
    rows = [json.loads(p.read_text()) for p in distills]
    rows = [r for r in rows if "no_teacher" in r and r.get("student", "").startswith("fashion")]
    if rows:
        found["fashion_distill_gains"] = [r["gain"] for r in rows]
    reports = sorted(root.glob("**/*-int8.json"))
    for path in reports:
        report = json.loads(path.read_text())
        if report.get("data") == "fashion-mnist":
            found["fashion_int8"] = report
    return found


@experiment(name="compression", map_id="5.3", title="Distillation and INT8 quantisation",
            claim="A teacher's soft targets help a small student; FP32 -> INT8 quantisation "
                  "makes a network about 4x smaller and several times faster on a CPU, at "
                  "almost the same accuracy.",
            source="知识蒸馏:教师网络指导学生网络 L=αL_CE(y,σ(z_s))+(1−α)T²L_KL(σ(z_t/T),σ(z_s/T)) ; "
                   "量化训练:将FP32转为INT8计算",
            implements="deepatlas.losses.distillation_loss, deepatlas.compress (deepatlas "
                       "distill, deepatlas quantize)")
def run(ctx: Context) -> Result:
    from deepatlas.cli.main import main as cli

    quiet = ["--no-progress", "--set", "train.tensorboard=false"]
    teacher = ctx.out / "teacher"
    cli(["train", "digits", "--out", str(teacher), "--set", "model.name=resnet", "--set",
         "model.depth=8", "--set", "model.width=32", "--set", "optim.name=sgd", "--set",
         "optim.lr=0.1", "--set", "train.epochs=15", *quiet])
    seeds = [ctx.seed + s for s in range(3 if ctx.quick else 5)]
    gains, taught, alone = [], [], []
    for seed in seeds:
        out = ctx.out / f"student-seed{seed}"
        cli(["distill", "--teacher", str(teacher), "--student", "digits", "--set",
             "model.width=32", "--set", "train.epochs=20", "--compare", "--seed", str(seed),
             "--out", str(out), *quiet])
        result = json.loads((out / "distill.json").read_text())
        gains.append(result["gain"])
        taught.append(result["distilled"]["test_acc"])
        alone.append(result["no_teacher"]["test_acc"])
    ratio = result["teacher_params"] / result["student_params"]

    from deepatlas.compress.quantize import quantize_checkpoint

    q = quantize_checkpoint(teacher, calibration=256, out=ctx.out / "teacher-int8.pt")
    full = measured_runs()

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.bar(["student alone", "student + teacher"],
             [statistics.mean(alone), statistics.mean(taught)],
             yerr=[statistics.stdev(alone), statistics.stdev(taught)], capsize=4)
    left.set_ylim(min(alone + taught) - 0.03, 1)
    left.set_ylabel(f"digits test accuracy ({len(seeds)} seeds)")
    names = ["size (MB)", "batch-256 latency (ms)"]
    fp = [q["fp32"]["bytes"] / 1e6, q["fp32"]["latency_ms_batch256"]]
    i8 = [q["int8"]["bytes"] / 1e6, q["int8"]["latency_ms_batch256"]]
    xs = range(len(names))
    right.bar([x - 0.2 for x in xs], fp, 0.4, label="fp32")
    right.bar([x + 0.2 for x in xs], i8, 0.4, label="int8")
    right.set_xticks(list(xs), names)
    right.set_yscale("log")
    right.legend()
    plot = save(fig, ctx.path("plot.png"))

    metrics = {"student_params": result["student_params"], "teacher_params":
               result["teacher_params"], "distill_gain_mean": statistics.mean(gains),
               "distill_gain_std": statistics.stdev(gains),
               "student_alone_acc": statistics.mean(alone),
               "student_taught_acc": statistics.mean(taught),
               "int8_size_ratio": q["size_ratio"], "int8_speedup_batch256": q["speedup_batch256"],
               "int8_accuracy_drop": q["accuracy_drop"]}
    details = (f"Digits: a {result['student_params']:,}-parameter MLP student (1/{ratio:.0f} of "
               f"the ResNet teacher) gains {statistics.mean(gains) * 100:+.2f} ± "
               f"{statistics.stdev(gains) * 100:.2f} points from distillation over seeds "
               f"{seeds}. INT8: {q['size_ratio']:.2f} of the size, {q['speedup_batch256']:.1f}x "
               f"faster at batch 256, accuracy {-q['accuracy_drop'] * 100:+.2f} points.")
    if "fashion_distill_gains" in full:
        g = full["fashion_distill_gains"]
        metrics["fashion_distill_gain_mean"] = statistics.mean(g)
        details += (f" Fashion-MNIST runs found in runs/: distillation gain "
                    f"{statistics.mean(g) * 100:+.2f} points over {len(g)} seeds.")
    if "fashion_int8" in full:
        r = full["fashion_int8"]
        metrics["fashion_int8_speedup_batch256"] = r["speedup_batch256"]
        details += (f" Fashion-MNIST ResNet INT8: {r['size_ratio']:.2f} of the size, "
                    f"{r['speedup_batch256']:.1f}x faster, {-r['accuracy_drop'] * 100:+.2f} "
                    "points.")
    quant_ok = (q["size_ratio"] <= 0.35 and q["speedup_batch256"] > 1.5
                and q["accuracy_drop"] <= 0.01)
    distill_ok = statistics.mean(gains) > 0
    return Result(metrics, "holds" if quant_ok and distill_ok else "does not hold at this scale",
                  details, [plot])
