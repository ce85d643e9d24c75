"""The README's blocks generated from ``results/benchmarks/*.json`` (one file per benchmark
script in ``benchmarks/``), but for detection's (:mod:`readme_detect`); :mod:`readme_results`
renders them with the others."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _one(pattern: str, gpu: bool = False) -> dict:
    """The one result file matching ``pattern`` measured on a CPU (or, with ``gpu``, on a
    GPU: ``benchmarks/*.py --device cuda``)."""
    found = [{**json.loads(f.read_text()), "file": f"results/benchmarks/{f.name}"}
             for f in sorted((RESULTS / "benchmarks").glob(pattern))]
    found = [t for t in found if t.get("device", "cpu").startswith("cuda") == gpu]
    if len(found) != 1:
        raise SystemExit(f"expected one results/benchmarks/{pattern} measured on a "
                         f"{'GPU' if gpu else 'CPU'}, found {len(found)}")
    return found[0]


def _recipe_mark(name: str, current: str = " (the recipe)") -> str:
    """A row's mark from its name in the file: "(the recipe before)" for the recipe "until"
    a session, ``current`` for "(the recipe)" (the table's own, or a past session's)."""
    return " (the recipe before)" if "until" in name else current if "(the recipe)" in name else ""


def _spreads(groups: dict[str, list[dict]], measures: tuple[tuple[str, str], ...]) -> list[str]:
    """For each group of runs at more than one seed, "NAME over N seeds, WHAT mean ± std, ..."
    of each (WHAT, key) in ``measures``, sample standard deviation, three decimals."""
    return [f"{name} over {len(runs)} seeds, " + ", ".join(
        f"{what} {statistics.mean(r[k] for r in runs):.3f} ± "
        f"{statistics.stdev(r[k] for r in runs):.3f}" for what, k in measures)
        for name, runs in groups.items() if len(runs) > 1]


def _throughput_rows(t: dict) -> list[str]:
    lines = ["| model | parameters | precision | images/s | GFLOP/s | share of the matmul peak |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in t["rows"]:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['precision']} | "
                     f"{r['images_per_s']:,.0f} | {r['gflop_per_s']:,.0f} | "
                     f"{r['share_of_peak']:.1%} |")
    return lines


def throughput_gpu() -> str:
    t = _one("throughput-*.json", gpu=True)
    peaks = t["peaks"]
    return "\n".join([
        f"`python benchmarks/throughput.py --device cuda --batch {t['batch']} --steps "
        f"{t['steps']}` on one {t['gpu']} (torch {t['torch']}): 8192 x 8192 matmul peak "
        f"{peaks['fp32'] / 1000:,.0f} TFLOP/s fp32 (TF32 off), {peaks['bf16'] / 1000:,.0f} "
        "bf16; the fp32 rows' convolutions ran in TF32 (cuDNN's default in PyTorch), which "
        f"flatters their share of the fp32 peak. File: `{t['file']}`.", ""] + _throughput_rows(t))


def translate_gpu() -> str:
    t = _one("translate-gpu-*.json", gpu=True)
    lines = [f"On one {t['gpu']} (torch {t['torch']}, bf16), seed 0, three runs side by side; "
             "the two longer ones were stopped in epoch 7 by the time limit, so they have "
             f"validation scores at epoch 4 only. File: `{t['file']}`.", "",
             "| run | epochs planned | at epoch | validation BLEU (greedy) | validation chrF | "
             "test BLEU (beam 4) | test chrF (beam 4) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["runs"].items():
        scored = [row for row in r["curve"] if "val_bleu" in row][-1]
        planned = r.get("epochs", r.get("epochs_planned"))
        test = (f"{r['test_bleu_beam']:.1f} | {r['test_chrf_beam']:.1f}"
                if "test_bleu_beam" in r else "not reached | not reached")
        lines.append(f"| {name} | {planned} | {scored['epoch']} | {scored['val_bleu']:.1f} | "
                     f"{scored['val_chrf']:.1f} | {test} |")
    return "\n".join(lines)


def throughput() -> str:
    t = _one("throughput-*.json")
    peaks = t["peaks"]
    lines = [f"Measured on {t.get('cpu_threads')} threads of an {t.get('cpu')} with native "
             f"bf16 (batch {t['batch']}, channels_last): matmul peak {peaks['fp32']:.0f} "
             f"GFLOP/s fp32, {peaks['bf16']:.0f} bf16. A CPU without native bf16 runs the bf16 "
             "rows emulated, many times slower; `precision = \"auto\"` uses fp32 there. File: "
             f"`{t['file']}`.", ""] + _throughput_rows(t)
    return "\n".join(lines)


def time_to_accuracy() -> str:
    t = _one("time-to-accuracy-*.json")
    ours, base = t["table"]["deepatlas"], t["table"]["baseline"]

    def cell(row):
        if row["mean"] is None:
            return f"not reached ({row['reached']} seeds)"
        return f"{row['mean']:.0f} ± {row['std']:.0f} s"

    lines = [f"Seeds {', '.join(map(str, t['seeds']))}, mean ± std, on "
             f"{t.get('cpu_threads')} threads ({t.get('cpu')}, torch {t.get('torch')}). File: "
             "`results/benchmarks/time-to-accuracy-*.json`.", "",
             f"| time to test accuracy | `{t['recipe']}` | PyTorch MNIST example | speed-up |",
             "| --- | --- | --- | --- |"]
    for key in [k for k in ours if k.endswith("%")]:
        a, b = ours[key], base[key]
        speed = (f"{b['mean'] / a['mean']:.1f}x" if a["mean"] and b["mean"] else "")
        lines.append(f"| {key} | {cell(a)} | {cell(b)} | {speed} |")
    fa, fb = ours["final_acc"], base["final_acc"]
    lines.append(f"| final test accuracy | {fa['mean']:.2%} ± {fa['std'] * 100:.2f} | "
                 f"{fb['mean']:.2%} ± {fb['std'] * 100:.2f} | |")
    ta, tb = ours["total_s"], base["total_s"]
    lines.append(f"| training time | {cell(ta)} | {cell(tb)} | "
                 f"{tb['mean'] / ta['mean']:.1f}x |")
    return "\n".join(lines)


def gpt_peer() -> str:
    t = _one("gpt-peer-*.json")
    rows = t["rows"]
    names = list(rows)
    lines = [f"`python benchmarks/gpt_peer.py --seconds {t['seconds']:.0f}`: both models "
             f"{rows[names[0]]['params']:,} parameters, the same loop, windows and "
             f"{t['seconds']:.0f} s of training each, on {t.get('cpu_threads')} threads "
             f"({t.get('cpu')}, torch {t.get('torch')}, transformers {t['transformers']}). "
             "File: `results/benchmarks/gpt-peer-*.json`.", "",
             "| measure | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, label, fmt in (("train_tokens_per_s", "training tokens/s", "{:,.0f}"),
                            ("steps", "steps in the budget", "{:,}"),
                            ("val_nats_per_char", "held-out loss at equal time (nats/char)",
                             "{:.3f}"),
                            ("generate_tokens_per_s", "generation tokens/s (KV cache, batch 1)",
                             "{:,.0f}")):
        lines.append(f"| {label} | " + " | ".join(fmt.format(rows[n][key]) for n in names)
                     + " |")
    return "\n".join(lines)


def unet_peer() -> str:
    t = _one("unet-peer-*.json")
    rows = t["rows"]
    ours = next(iter(rows.values()))
    # Files before session 29 gave --epochs always; 0 now means the recipe's own.
    epochs = t.get("epochs_arg", ours["epochs"])
    lines = [f"`python benchmarks/unet_peer.py{f' --epochs {epochs}' if epochs else ''}`: "
             f"both through the "
             f"same Trainer and `segment-scenes` recipe, one seed; the peer gets as many epochs "
             f"as fit deepatlas's {t['budget_s'] / 60:.1f} minutes (one of its epochs took "
             f"{t['peer_epoch_s'] / 60:.1f} min); best.pt chosen by validation Dice; on "
             f"{t.get('cpu_threads')} threads ({t.get('cpu')}, torch {t.get('torch')}, "
             f"segmentation_models_pytorch {t['smp']}). File: `{t['file']}`.", "",
             "| model | parameters | epochs (best) | test foreground Dice | class Dice | mIoU | "
             "training time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['num_params']:,} | {r['epochs']} ({r['best_epoch']}) | "
                     f"{r['test_dice']:.3f} | {r['test_class_dice']:.3f} | "
                     f"{r['test_miou']:.3f} | {r['wall_s'] / 60:.1f} min |")
    return "\n".join(lines)


def segment_more_photos() -> str:
    """The segmentation recipe with and without photos-more's 13 training photographs, three
    seeds each, scored at best.pt (chosen by validation Dice), and validation's paired verdict
    (``deepatlas.lab.stats.compare``, recorded in the file)."""
    t = _one("segment-more-photos-*.json")
    lines = [f"The recipe (U-Net width 16, `copy-paste-recolour`, 48 epochs), bf16 on "
             f"{t['cpu_threads']} threads ({t['cpu']}, torch {t['torch']}); each run scored "
             f"at its best.pt, the epoch validation Dice chose. {t['timing']} File: "
             f"`{t['file']}`.", "",
             "| training photographs | seed | minutes | best.pt epoch | validation Dice | "
             "test Dice | test class Dice | test mIoU | test Dice, last epoch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[str, list[dict]] = {}
    for name, r in t["rows"].items():
        b = r["best_pt"]
        photos = "15 + 13 (`data.more_photos = true`)" if r["more_photos"] else "15"
        lines.append(f"| {photos}{_recipe_mark(name)} | {r['seed']} | {r['wall_s'] / 60:.1f} | "
                     f"{r['best_monitored_epoch']} | {b['val_dice']:.3f} | {b['test_dice']:.3f} | "
                     f"{b['test_class_dice']:.3f} | {b['test_miou']:.3f} | "
                     f"{r['test_dice']:.3f} |")
        groups.setdefault(f"`data.more_photos = {json.dumps(r['more_photos'])}`", []).append(b)
    spreads = _spreads(groups, (("validation Dice", "val_dice"), ("test Dice", "test_dice"),
                                ("test class Dice", "test_class_dice")))
    effect = t["validation_more_minus_15"]
    return "\n".join(lines + [
        "", "Mean ± standard deviation at best.pt: " + "; ".join(spreads) + ".", "",
        f"Validation Dice at best.pt, 15 + 13 photographs − 15, paired by seed: "
        f"{effect['effect']:+.3f} [{effect['low']:+.3f}, {effect['high']:+.3f}] "
        f"({effect['confidence']:.0%} interval, {effect['seeds']} seeds): "
        f"{effect['decision']}."])


def scene_augment() -> str:
    t = _one("scene-augment-*.json")
    names = {"none": "the fixed 4,000", "copy-paste": "fresh every epoch",
             "copy-paste-recolour": "fresh, on recoloured photographs",
             "mosaic": "mosaics of the fixed 4,000, new every epoch (the last tenth: plain)",
             "mosaic-flip": "mosaics as above, half of them mirrored"}
    lines = [f"File: `results/benchmarks/scene-augment-*.json` (seed {t['seed']}, "
             f"{t.get('cpu_threads')} threads, {t.get('cpu')}); {t.get('note', '')}", "",
             "| recipe | `data.augment` | training scenes | test (last epoch) | validation "
             "(last epoch) | test Dice outside the edge band (best.pt) | training time* |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for recipe, arms in t["rows"].items():
        segment = recipe.startswith("segment-scenes")  # "segment-scenes (8 epochs)"
        figure = "Dice" if segment else "mAP@0.5"
        for arm, r in arms.items():
            key = "dice" if segment else "map50"
            val, test = r[f"last_val_{key}"], r[f"last_test_{key}"]
            outside = r.get("test_dice_outside_band")
            name, _, budget = recipe.partition(" (")  # "detect-scenes (20 epochs)"
            shown = f"`{name}`" + (f" ({budget}" if budget else "")
            lines.append(f"| {shown} | `{arm}` | {names[arm]} | {figure} {test:.3f} | "
                         f"{val:.3f} | {'' if outside is None else f'{outside:.3f}'} | "
                         f"{r['wall_s'] / 60:.1f} min |")
    segment_rows = [arms for recipe, arms in t["rows"].items()
                    if recipe.startswith("segment-scenes")][0]
    bands = [r for r in segment_rows.values() if "errors_in_band" in r]
    if bands:
        lines += ["", "The edge band (pixels within one pixel of a digit's edge, either side) "
                  f"holds {bands[-1]['band_share_of_foreground']:.0%} of the test foreground "
                  "pixels, and " + " and ".join(f"{r['errors_in_band']:.0%}" for r in bands)
                  + " of the errors of the runs with fresh scenes."]
    firsts = [r["first_epoch_s"] for r in segment_rows.values()
              if "first_epoch_s" in r]
    if firsts:  # the same work in every run: what the machine's load did to the times
        lines += ["", "*On a shared machine. Epoch 1 trains on the same fixed scenes in every "
                  f"U-Net run, and took from {min(firsts):.0f} to {max(firsts):.0f} s."]
    return "\n".join(lines)


def dca_peer() -> str:
    if not list((RESULTS / "benchmarks").glob("dca-peer-*.json")):
        return "Not measured yet: `python benchmarks/dca_peer.py`."
    t = _one("dca-peer-*.json")
    p = t["top_l5_precision"]
    return "\n".join([
        f"`python benchmarks/dca_peer.py` on the lab's {t['families']} test alignments "
        f"({t['alignment'][0]} sequences x {t['alignment'][1]} residues, pseudocount "
        f"{t['pseudocount']}, no reweighting), pydca {t['pydca']}, on {t.get('cpu_threads')} "
        f"threads ({t.get('cpu')}). File: `{t['file']}`.", "",
        "| | deepatlas | pydca |", "| --- | --- | --- |",
        f"| couplings J = -C⁻¹, largest difference / largest coupling | "
        f"{t['max_relative_coupling_difference']:.0e} | (the reference) |",
        f"| top-L/5 long-range precision, APC-corrected Frobenius score | "
        f"{p['deepatlas_21_states']:.3f} (over pydca's 21 states; the lab's 20: "
        f"{p['deepatlas']:.3f}) | {p['pydca']:.3f} |",
        f"| time from the {t['families']} alignments to their scores (21 states) | "
        f"{t['seconds']['deepatlas']:.1f} s | "
        f"{t['seconds']['pydca']:.1f} s |"])


def clip_peer() -> str:
    if not list((RESULTS / "benchmarks").glob("clip-peer-*.json")):
        return "Not measured yet: `python benchmarks/clip_peer.py`."
    t = _one("clip-peer-*.json")
    prompts = t.get("prompts", "phrased")  # files from before clip.prompts: the five templates
    lines = [f"`python benchmarks/clip_peer.py --epochs {t['epochs']} --prompts {prompts}`: "
             "all through the same "
             f"Trainer and `clip-clipart` recipe, {t['epochs']} epochs each in "
             f"{t.get('precision', 'float32')}, one seed, on "
             f"{t.get('cpu_threads')} threads ({t.get('cpu')}, torch {t.get('torch')}, "
             f"open_clip {t['open_clip']}). File: `results/benchmarks/clip-peer-*.json`.", "",
             "| model | parameters | zero-shot balanced acc. | zero-shot acc. | probe acc. | "
             "image→text R@1 | text→image R@1 | training time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["rows"].items():
        lines.append(f"| {name} | {r['num_params']:,} | {r['test_zero_shot_balanced_acc']:.1%} | "
                     f"{r['test_zero_shot_acc']:.1%} | {r['test_probe_acc']:.1%} | "
                     f"{r['test_image_to_text_r1']:.1%} | {r['test_text_to_image_r1']:.1%} | "
                     f"{r['wall_s'] / 60:.1f} min |")
    return "\n".join(lines)


def upscale_4k() -> str:
    """The 4K upscale's time and peak memory per tile size (``benchmarks/upscale_4k.py``)."""
    if not list((RESULTS / "benchmarks").glob("upscale-4k-*.json")):
        return "Not measured yet: `python benchmarks/upscale_4k.py`."
    t = _one("upscale-4k-*.json")
    rows = [f"| {r['tile'] or 'whole image (`--tile 0`)'} | {r['seconds_mean']:.1f} s "
            f"({', '.join(f'{s:.1f}' for s in r['seconds'])}) | {r['peak_mib_max']:,.0f} MiB |"
            for r in t["rows"]]
    return "\n".join([
        f"`python benchmarks/upscale_4k.py`: `deepatlas upscale` of a {t['input']} crop of "
        f"`{t['photo']}` to {t['output']} with the `{t['recipe']}` model (weights: "
        f"{t['weights']}; the cost does not depend on them), the whole command timed, "
        f"{t['trials']} trials, "
        f"on {t.get('cpu_threads')} threads ({t.get('cpu')}). File: `{t['file']}`.", "",
        "| tile side (input px) | time | peak resident memory |", "| --- | --- | --- |",
        *rows])


def sentiment_peer() -> str:
    if not list((RESULTS / "benchmarks").glob("sentiment-peer-*.json")):
        return "Not measured yet: `python benchmarks/sentiment_peer.py`."
    t = _one("sentiment-peer-*.json")
    pretrained = f" --pretrained {t['pretrained']}" if t.get("pretrained") else ""
    lines = [f"`python benchmarks/sentiment_peer.py{pretrained}`: one run, "
             f"the split above, one seed, on {t.get('cpu_threads')} threads ({t.get('cpu')}, "
             f"torch {t.get('torch')}, scikit-learn {t['scikit_learn']}); test accuracy at the "
             "setting validation chose. File: `results/benchmarks/sentiment-peer-*.json`.", "",
             "| model | chosen by validation | validation accuracy | test accuracy | time |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in t["rows"].items():
        chosen = f"C = {r['c']:g}" if "c" in r else f"epoch {r['best_epoch']} of {r['epochs']}"
        time_ = (f"{r['wall_s']:.1f} s" if r["wall_s"] < 60 else f"{r['wall_s'] / 60:.1f} min")
        lines.append(f"| {name} | {chosen} | {r['val_acc']:.1%} | {r['test_acc']:.1%} | "
                     f"{time_} |")
    return "\n".join(lines)
