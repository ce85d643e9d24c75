"""MAP 6.1: detection; the source quotes "YOLO v5: 45 FPS".

What the figure was: 45 frames per second is YOLOv1's (Redmon et al. 2016, on a Titan X GPU).
YOLOv5's README reports latency in milliseconds per model size, not one FPS figure. What can be
measured here is the claim's substance for deepatlas's own YOLO-style detector
(:mod:`deepatlas.models.detector`, the ``detect-scenes`` recipe's size): **frames per second at
batch 1 on this machine's CPU**, at 320 and 640 px, forward pass plus NMS
(:func:`~deepatlas.models.detector.postprocess`), in eager PyTorch.

Each size is timed in repeated trials (full 5 of 30 frames, quick 3 of 10), after warm-up
frames. Holds when the frames per second at 320 px are above 45 beyond the spread over trials
(one-sample t). The weights are untrained: speed does not depend on their values, only on the
architecture and the number of boxes left for NMS, which a score threshold of 0.25 bounds.
"""

from __future__ import annotations

import time

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, verdict

QUOTED_FPS = 45.0
SIZES = (320, 640)


def frames_per_second(model, size: int, frames: int, warmup: int = 3) -> float:
    """Batch-1 frames per second of ``model`` plus NMS on ``size`` x ``size`` inputs."""
    import torch

    from deepatlas.models.detector import postprocess

    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        for _ in range(warmup):
            postprocess(model(x), score_threshold=0.25)
        start = time.perf_counter()
        for _ in range(frames):
            postprocess(model(x), score_threshold=0.25)
    return frames / (time.perf_counter() - start)


@experiment(name="detection", map_id="6.1", title="Detection: how fast a YOLO-style detector is",
            claim="YOLO v5 detects at 45 FPS; here: frames per second of deepatlas's YOLO-style "
                  "detector at batch 1 on this CPU, at 320 and 640 px.",
            source="目标检测:YOLO系列(v5推理速度45FPS)", timed=True,
            implements="deepatlas.models.detector (anchor-free, decoupled head, "
                       "depthwise-separable backbone); task detect; recipe detect-scenes; "
                       "deepatlas predict RUN image.png --out boxes.png")
def run(ctx: Context) -> Result:
    import torch

    from deepatlas.config import load_recipe
    from deepatlas.models import create_model

    recipe = load_recipe("detect-scenes")
    options = {k: v for k, v in recipe.model.items() if k != "name"}
    trials, frames = ctx.size(5, 3, smoke=2), ctx.size(30, 10, smoke=2)
    fps: dict[int, list[float]] = {}
    for size in SIZES:
        torch.manual_seed(ctx.seed)
        model = create_model(recipe.model["name"], in_channels=3, image_size=size,
                             num_classes=10, **options).eval()
        fps[size] = [frames_per_second(model, size, frames) for _ in range(trials)]
    effect = against("frames per second at 320 px − 45", fps[320], QUOTED_FPS)
    status, note = verdict([effect])
    means = {size: sum(v) / len(v) for size, v in fps.items()}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    for i, size in enumerate(SIZES):
        ax.scatter([i] * len(fps[size]), fps[size], zorder=3)
        ax.bar(i, means[size], alpha=0.4)
    ax.axhline(QUOTED_FPS, color="gray", lw=0.8, ls=":", label="quoted: 45 FPS")
    ax.set_xticks(range(len(SIZES)), [f"{s} px" for s in SIZES])
    ax.set_ylabel("frames per second (batch 1, + NMS)")
    ax.set_title(f"eager PyTorch, {torch.get_num_threads()} CPU threads")
    ax.legend(loc="upper right")
    plot = save(fig, ctx.path("plot.png"))
    metrics = {"fps_320": means[320], "fps_640": means[640], "quoted_fps": QUOTED_FPS,
               "params": float(sum(p.numel() for p in model.parameters())),
               "threads": float(torch.get_num_threads())}
    details = (f"{means[320]:.0f} FPS at 320 px and {means[640]:.0f} FPS at 640 px, batch 1, "
               f"eager PyTorch on {torch.get_num_threads()} CPU threads, forward pass plus NMS, "
               f"{trials} trials of {frames} frames. The quoted 45 FPS is YOLOv1's, on a Titan X "
               "GPU; ONNX Runtime is not measured yet." + (f" {note}" if note else ""))
    return Result(metrics, status, details, [plot], [effect], list(range(trials)))
