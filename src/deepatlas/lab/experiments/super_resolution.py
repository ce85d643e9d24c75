"""MAP 6.1: super-resolution; the source says "ESRGAN restores 4K images".

"4K" is an output size, not a measure of quality: ``deepatlas upscale`` enlarges a 960x540
image to 3840x2160 in tiles on any machine. What can be measured is how much better than
bicubic the enlargement is.

ESRGAN's paper reports its PSNR-oriented RRDB net 1-2 dB above earlier CNNs and its GAN stage
lower in PSNR but sharper; the issue's figure for this scale: the PSNR-oriented RRDB beats
bicubic enlargement by >= 1.0 dB of Y-PSNR on held-out photographs. Measured here:

1. **Stage 1** (recipe ``upscale-psnr``) over seeds: test Y-PSNR and SSIM (4 px border
   cropped) on the 4 held-out ``photos``, beside bicubic scored the same way. Holds when the
   gain over bicubic exceeds 1.0 dB beyond the spread over seeds (one-sample t interval).
2. **Stage 2** (recipe ``upscale-esrgan``, started from seed 0's stage-1 run): its PSNR and
   SSIM, shown with the evidence but not judged (one seed), and the crops of both stages on
   the page: the GAN stage trades PSNR for texture.

best.pt of stage 1 is chosen on the 4 validation photographs; the test photographs are
reported only. Full size: 3 seeds x 3 epochs of 500 batches (the recipe; seed 0's runs are
the recipes' committed results); quick: 2 seeds x 6 batches, photographs at 256 px and one
validation and test photograph each (a test of the code, not evidence).
"""

from __future__ import annotations

import statistics

from deepatlas.lab.common import pyplot, save, without_data
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, verdict

TARGET_GAIN_DB = 1.0


@experiment(name="super-resolution", map_id="6.1",
            title="Super-resolution x4: ESRGAN's two stages against bicubic",
            claim="ESRGAN restores 4K images (x4 super-resolution); here: its PSNR-oriented "
                  "RRDB net beats bicubic by >= 1 dB of Y-PSNR on held-out photographs, and "
                  "its GAN stage trades PSNR for texture.",
            source="超分辨率:ESRGAN恢复4K图像",
            implements="deepatlas.models.esrgan (RRDBNet, VGG discriminator); "
                       "deepatlas.losses (relativistic average GAN, perceptual); "
                       "deepatlas.data.superres; task upscale; recipes upscale-psnr, "
                       "upscale-esrgan")
def run(ctx: Context) -> Result:
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    absent = without_data("photos")
    if absent is not None:
        return absent
    common = ["data.download=false", "train.tensorboard=false"]
    if ctx.size(False, True, smoke=True):  # a test of the code: a few batches, one photo each
        common += [f"upscale.patches={ctx.size(0, 96, smoke=32)}", "upscale.eval_images=1",
                   "upscale.photo_side=256", "train.epochs=1",
                   f"upscale.patch={ctx.size(64, 64, smoke=16)}"]  # the suite's photos: 64 px
    seeds = [ctx.seed + s for s in range(ctx.size(3, 2, smoke=1))]
    psnr, gains, ssim = [], [], []
    for seed in seeds:
        summary = fit(load_recipe("upscale-psnr", [*common, f"seed={seed}"]),
                      ctx.out / f"psnr-seed{seed}", progress=False)
        psnr.append(float(summary["test_psnr"]))
        gains.append(float(summary["test_gain"]))
        ssim.append(float(summary["test_ssim"]))
    bicubic_psnr, bicubic_ssim = summary["test_bicubic_psnr"], summary["test_bicubic_ssim"]
    stage_one = ctx.out / f"psnr-seed{seeds[0]}"
    gan_sets = [*common, f"seed={seeds[0]}", f"train.init_from={stage_one}"]
    if ctx.size(False, True, smoke=True):
        gan_sets.append(f"upscale.patches={ctx.size(0, 32, smoke=16)}")
    gan = fit(load_recipe("upscale-esrgan", gan_sets), ctx.out / "esrgan", progress=False)

    effect = against(f"RRDB − bicubic, test Y-PSNR (dB), against {TARGET_GAIN_DB} dB", gains,
                     TARGET_GAIN_DB)
    status, note = verdict([effect])
    metrics = {"psnr_stage_test_psnr_mean": statistics.mean(psnr),
               "psnr_stage_test_ssim_mean": statistics.mean(ssim),
               "gain_over_bicubic_db_mean": statistics.mean(gains),
               "bicubic_test_psnr": bicubic_psnr, "bicubic_test_ssim": bicubic_ssim,
               "gan_stage_test_psnr": float(gan["test_psnr"]),
               "gan_stage_test_ssim": float(gan["test_ssim"]),
               "target_gain_db": TARGET_GAIN_DB}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    arms = {"bicubic": [bicubic_psnr], "RRDB, L1\n(stage 1)": psnr,
            "ESRGAN\n(stage 2)": [float(gan["test_psnr"])]}
    for i, (arm, values) in enumerate(arms.items()):
        ax.scatter([i] * len(values), values, zorder=3)
        ax.bar(i, statistics.mean(values), alpha=0.4)
    ax.axhline(bicubic_psnr + TARGET_GAIN_DB, color="gray", lw=0.8, ls=":",
               label=f"bicubic + {TARGET_GAIN_DB:g} dB")
    ax.set_xticks(range(len(arms)), list(arms))
    ax.set_ylabel("test Y-PSNR (dB)")
    low = min(min(v) for v in arms.values())
    ax.set_ylim(low - 1.0, max(max(v) for v in arms.values()) + 0.8)
    ax.legend(loc="lower right")
    ax.set_title(f"x4 on {len(summary['data']['test'])} held-out photographs")
    plot = save(fig, ctx.path("plot.png"))
    crops = _crops(ctx, stage_one, ctx.out / "esrgan")
    details = (f"stage 1 (L1): test Y-PSNR {metrics['psnr_stage_test_psnr_mean']:.2f} dB vs "
               f"bicubic {bicubic_psnr:.2f} ({metrics['gain_over_bicubic_db_mean']:+.2f} dB over "
               f"{len(seeds)} seeds), SSIM {metrics['psnr_stage_test_ssim_mean']:.4f} vs "
               f"{bicubic_ssim:.4f}; stage 2 (GAN): {metrics['gan_stage_test_psnr']:.2f} dB, "
               f"SSIM {metrics['gan_stage_test_ssim']:.4f} (one seed, shown, not judged)."
               + (f" {note}" if note else ""))
    return Result(metrics, status, details, [plot, crops], [effect], seeds)


def _crops(ctx: Context, psnr_run, gan_run) -> str:
    """Both stages' enlargements of the test photographs' most detailed windows."""
    import torch

    from deepatlas.tasks.upscale import load_generator, to_uint8
    from deepatlas.tasks.upscale_figures import save_crops
    from deepatlas.data.superres import load_superres
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    states = {name: load_checkpoint(find_checkpoint(run)) for name, run in
              (("RRDB (L1)", psnr_run), ("ESRGAN", gan_run))}
    first = next(iter(states.values()))
    up, scale = first["config"]["upscale"], first["data"]["scale"]
    data = load_superres(download=False, scale=scale, photo_side=up["photo_side"],
                         patch=up["patch"], patches=1, eval_images=up["eval_images"])
    device = torch.device("cpu")
    models = {name: load_generator(state, device) for name, state in states.items()}

    def enlarger(model):
        def enlarge(lr):
            with torch.no_grad():
                return to_uint8(model(lr[None].float().div(255))[0])
        return enlarge

    path = ctx.path("crops.png")
    save_crops(path, data.test, {name: enlarger(m) for name, m in models.items()}, scale)
    return path.name
