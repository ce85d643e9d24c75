"""The README's recipe blocks, generated from ``results/recipes/*.json`` (each a recipe run's
own summary.json): every recipe's held-out figures, and ESRGAN's two stages beside bicubic;
:mod:`readme_results` renders them with the others."""

from __future__ import annotations

import json

from readme_benchmarks import RESULTS


def recipes() -> str:
    """One row per ``results/recipes/RECIPE.json``: a recipe run's own summary.json."""
    lines = ["| recipe | headline (held out), last epoch | best.pt: chosen by, at epoch: test | "
             "epochs | training time | machine |", "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted((RESULTS / "recipes").glob("*.json")):
        r = json.loads(path.read_text())
        primary = r["primary"]

        def shown(value: float) -> str:
            return f"{value:.2%}" if primary.endswith("acc") else f"{value:.3f}"

        others = [f"{k} {r[k]:.3f}" for k in ("test_nats_per_char", "test_class_dice", "test_miou",
                                              "test_map", "test_bicubic_psnr", "test_ssim",
                                              "test_bicubic_ssim", "test_knn_acc",
                                              "test_probe_acc_0.01", "test_probe_acc_0.1")
                  if k in r]
        monitor = r.get("monitor")
        monitor = monitor[0] if isinstance(monitor, list) else monitor
        epoch, best = r.get("best_monitored_epoch"), r.get("best") or {}
        if not monitor:
            chosen = "none: the last epoch is kept"
        elif epoch == r["epochs"]:
            chosen = f"{monitor}, {epoch}: the last"
        elif primary in best:
            chosen = f"{monitor}, {epoch}: {primary} {shown(best[primary])}"
        else:
            chosen = f"{monitor}, {epoch}: {primary} not scored there"
        lines.append(f"| `{r['recipe']}` | {primary} {shown(r[primary])}"
                     f"{' (' + ', '.join(others) + ')' if others else ''} | {chosen} | "
                     f"{r['epochs']} | {r['wall_s'] / 60:.1f} min | {r.get('cpu_threads', '?')} "
                     f"threads, {r.get('cpu', '?')}, {r.get('precision', '?')} |")
    return "\n".join(lines)


def upscale() -> str:
    """ESRGAN's two stages beside bicubic: ``results/recipes/upscale-*.json``."""
    runs = {name: json.loads((RESULTS / "recipes" / f"{name}.json").read_text())
            for name in ("upscale-psnr", "upscale-esrgan")}
    first = runs["upscale-psnr"]
    lines = ["Measured (`results/recipes/upscale-psnr.json` and `upscale-esrgan.json`), x4 on "
             f"the {len(first['data']['test'])} test photographs "
             f"({', '.join(first['data']['test'])}), Y channel, 4 px border cropped:", "",
             "| method | test Y-PSNR (dB) | test SSIM | validation Y-PSNR (dB) | training |",
             "| --- | --- | --- | --- | --- |",
             f"| bicubic (PIL) | {first['test_bicubic_psnr']:.2f} | "
             f"{first['test_bicubic_ssim']:.4f} | {first['val_bicubic_psnr']:.2f} | none |"]
    for name, label in (("upscale-psnr", "RRDB, L1 (stage 1)"),
                        ("upscale-esrgan", "ESRGAN: + perceptual + RaGAN (stage 2)")):
        r = runs[name]
        lines.append(f"| {label}, `{name}` | {r['test_psnr']:.2f} ({r['test_gain']:+.2f}) | "
                     f"{r['test_ssim']:.4f} | {r['val_psnr']:.2f} ({r['val_gain']:+.2f}) | "
                     f"{r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}, "
                     f"{r['wall_s'] / 60:.1f} min, "
                     f"{r.get('cpu_threads', '?')} threads, {r.get('cpu', '?')} |")
    return "\n".join(lines)
