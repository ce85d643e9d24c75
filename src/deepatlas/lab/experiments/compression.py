"""MAP 5.3: knowledge distillation and INT8 quantisation, through the library calls behind
``deepatlas distill`` and ``deepatlas quantize``, on digits, all trained in this run.

Distillation: a ResNet teacher, then for each seed the same MLP student trained with and
without the teacher (same seed, same budget). The claim holds when the paired 95% interval of
the gain excludes 0 on the positive side (:mod:`deepatlas.lab.stats`).

INT8 (the teacher, post-training static quantisation, measured in the same call):

- "about 4x smaller": at most 1/3 of the fp32 size. INT8 weights are a quarter of fp32's; the
  per-channel scales, zero points and the layers left in fp32 add to that, and 1/3 is the
  nearest round bound still "about 4x" rather than "2x".
- "several times faster": at least 2x at batch 256 ("several" is more than one; 2x is the least
  speed-up anyone would call several times).
- "almost the same accuracy": at most 1 point lower on the 360 test digits (4 images).
"""

from __future__ import annotations

import statistics

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict

TEACHER = ["model.name=resnet", "model.depth=8", "model.width=32", "optim.name=sgd",
           "optim.lr=0.1", "train.epochs=15"]
STUDENT = ["model.width=32", "train.epochs=20"]
SIZE_RATIO, SPEEDUP, DROP = 1 / 3, 2.0, 0.01


@experiment(name="compression", map_id="5.3", title="Distillation and INT8 quantisation",
            claim="A teacher's soft targets help a small student; FP32 -> INT8 quantisation "
                  "makes a network about 4x smaller and several times faster on a CPU, at "
                  "almost the same accuracy.",
            source=("知识蒸馏:教师网络指导学生网络", "量化训练:将FP32转为INT8计算"),
            correction="The source prints the loss as L=αL_CE(y,σ(Z(x))+(1−α)T²L_KL(σ(z_t/T),"
                       "σ(z_s/T)) with an unbalanced parenthesis and Z(x) for the student's "
                       "logits z_s; deepatlas uses L = α CE(y, σ(z_s)) + (1 − α) T² "
                       "KL(σ(z_t/T) ‖ σ(z_s/T)).",
            timed=True,
            implements="deepatlas.losses.distillation_loss, deepatlas.compress.distill.distill, "
                       "deepatlas.compress.quantize.quantize_checkpoint, deepatlas.tasks.fit")
def run(ctx: Context) -> Result:
    from deepatlas.compress.distill import distill
    from deepatlas.compress.quantize import quantize_checkpoint
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    quiet = ["train.tensorboard=false", *ctx.size([], [], smoke=["train.epochs=2"])]
    teacher = ctx.out / "teacher"
    teacher_summary = fit(load_recipe("digits", [*TEACHER, *quiet, f"seed={ctx.seed}"]),
                          teacher, progress=False)
    seeds = [ctx.seed + s for s in range(ctx.size(6, 2, smoke=2))]
    taught, alone = [], []
    for seed in seeds:
        result = distill(str(teacher), "digits", [*STUDENT, *quiet, f"seed={seed}"],
                         ctx.out / f"student-seed{seed}", compare=True, progress=False)
        taught.append(result["distilled"]["test_acc"])
        alone.append(result["no_teacher"]["test_acc"])
    ratio = result["teacher_params"] / result["student_params"]
    gain = compare("student taught - student alone, test accuracy", taught, alone)

    q = quantize_checkpoint(teacher, calibration=256, out=ctx.out / "teacher-int8.pt")

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.plot([0, 1], [alone, taught], "o-", color="0.6", lw=0.8)
    left.bar(["student alone", "student + teacher"],
             [statistics.mean(alone), statistics.mean(taught)], alpha=0.5)
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

    metrics = {"student_params": result["student_params"],
               "teacher_params": result["teacher_params"],
               "teacher_test_acc": teacher_summary[teacher_summary["primary"]],
               "distill_gain_mean": gain.effect, "distill_gain_low": gain.low,
               "distill_gain_high": gain.high,
               "student_alone_acc": statistics.mean(alone),
               "student_taught_acc": statistics.mean(taught),
               "int8_size_ratio": q["size_ratio"], "int8_speedup_batch256": q["speedup_batch256"],
               "int8_accuracy_drop": q["accuracy_drop"]}
    quant_ok = (q["size_ratio"] <= SIZE_RATIO and q["speedup_batch256"] >= SPEEDUP
                and q["accuracy_drop"] <= DROP)
    unmet = [text for ok, text in (
        (q["size_ratio"] <= SIZE_RATIO, f"INT8 size {q['size_ratio']:.2f} > {SIZE_RATIO:.2f}"),
        (q["speedup_batch256"] >= SPEEDUP,
         f"INT8 {q['speedup_batch256']:.2f}x faster < {SPEEDUP:.0f}x"),
        (q["accuracy_drop"] <= DROP, f"INT8 accuracy drop {q['accuracy_drop']:.3f} > {DROP}"))
        if not ok]
    result_verdict, note = verdict([gain], also=quant_ok, unmet="; ".join(unmet))
    details = (f"Digits: a {result['student_params']:,}-parameter MLP student (1/{ratio:.0f} of "
               f"the ResNet teacher) gains {gain.effect * 100:+.2f} points from distillation, "
               f"95% interval [{gain.low * 100:+.2f}, {gain.high * 100:+.2f}] over seeds "
               f"{seeds} ({gain.decision}). INT8: {q['size_ratio']:.2f} of the size "
               f"(bound {SIZE_RATIO:.2f}), {q['speedup_batch256']:.1f}x faster at batch 256 "
               f"(bound {SPEEDUP:.0f}x), accuracy {-q['accuracy_drop'] * 100:+.2f} points "
               f"(bound -{DROP * 100:.0f}).")
    return Result(metrics, result_verdict, details, [plot], [gain], seeds, note=note)
