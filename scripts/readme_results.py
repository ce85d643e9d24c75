#!/usr/bin/env python3
"""Write the README's measured tables from the committed results, between marker comments.

    python scripts/readme_results.py           # rewrite README.md in place
    python scripts/readme_results.py --check   # exit 1 if README.md and results/ disagree

Each block sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` and is
generated from one committed file:

- ``recipes``: ``results/recipes/RECIPE.json`` (a ``deepatlas train RECIPE`` run's
  ``summary.json``);
- ``gpt-peer``: ``results/benchmarks/gpt-peer-*.json`` (``benchmarks/gpt_peer.py``);
- ``unet-peer``: ``results/benchmarks/unet-peer-*.json`` (``benchmarks/unet_peer.py``);
- ``yolo-peer``: ``results/benchmarks/yolo-peer-*.json`` (``benchmarks/yolo_peer.py``);
- ``scene-augment``: ``results/benchmarks/scene-augment-*.json``
  (``benchmarks/scene_augment.py``);
- ``segment-more-photos``: ``results/benchmarks/segment-more-photos-*.json`` (the
  segmentation recipe with and without ``photos-more``, assembled from its runs' summaries);
- ``upscale``: ``results/recipes/upscale-psnr.json`` and ``upscale-esrgan.json``;
- ``upscale-4k``: ``results/benchmarks/upscale-4k-*.json`` (``benchmarks/upscale_4k.py``);
- ``directions``: MAP 7's experiments in ``results/tour-summary.json``;
- ``science``: MAP 6.3's ``protein-structure`` experiment in ``results/tour-summary.json``;
- ``translation-depth``: MAP 6.2's ``translation`` experiment there
  (``readme_lab_tables.py``);
- ``tour``: ``results/tour-summary.json`` (``deepatlas tour --out ...``'s ``summary.json``);
- ``throughput``: ``results/benchmarks/throughput-*.json`` (``benchmarks/throughput.py``),
  and ``throughput-gpu`` its run on a GPU;
- ``detector-fps``: ``results/benchmarks/detector-fps-*.json`` (``benchmarks/detector_fps.py
  --device cuda``);
- ``detect-gpu``, ``translate-gpu``: ``results/benchmarks/detect-gpu-*.json`` and
  ``translate-gpu-*.json``, recipes trained on a GPU (assembled from the runs' summaries);
- ``time-to-accuracy``: ``results/benchmarks/time-to-accuracy-*.json``
  (``benchmarks/time_to_accuracy.py``).

The blocks from ``results/benchmarks/`` are made in ``readme_benchmarks.py`` and, for
detection, ``readme_detect.py``, those from ``results/recipes/`` in ``readme_recipes.py``,
beside this file.
``tests/test_readme.py`` runs the check, so ``make test`` fails when they disagree.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by path
from readme_benchmarks import (  # noqa: E402
    clip_peer, dca_peer, gpt_peer, scene_augment, segment_more_photos, sentiment_peer, throughput,
    throughput_gpu, time_to_accuracy, translate_gpu, unet_peer, upscale_4k)
from readme_detect import (  # noqa: E402
    detect_epochs, detect_gpu, detect_more_photos, detect_recolour, detector_fps,
    naming_by_photos, yolo_peer)
from readme_lab_tables import experiment as _experiment, translation_depth  # noqa: E402
from readme_recipes import recipes, upscale  # noqa: E402


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 0.01:
        return f"{x:.3g}"
    return f"{x:.2g}"


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + _num(x)


def tour() -> str:
    s = json.loads((RESULTS / "tour-summary.json").read_text())
    m = s.get("machine", {})
    counts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items())
    lines = [f"`deepatlas tour{' --quick' if s['quick'] else ''}` on this machine "
             f"({m.get('cpu_threads', '?')} threads, {m.get('cpu', '?')}, torch "
             f"{m.get('torch', '?')}), seed {s['seed']} (a row run at other seeds names them), "
             f"finished {s['finished'][:10]}: "
             f"{len(s['experiments'])} experiments in {s['wall_s']:.0f} s; {counts}. "
             "Each judged effect is the mean over seeds with its 95% interval "
             "(`deepatlas.lab.stats`); the file is `results/tour-summary.json`.", "",
             "| MAP | experiment | verdict | judged effects: mean [95% interval], seeds |",
             "| --- | --- | --- | --- |"]
    for e in s["experiments"]:
        verdict = e["verdict"] + (f" ({e['note'] or e['reason']})"
                                  if e.get("note") or e.get("reason") else "")
        effects = "; ".join(
            f"{x['name']}: {_signed(x['effect'])} [{_signed(x['low'])}, {_signed(x['high'])}], "
            f"{x['seeds']} {'test items' if 'Wilson' in x['method'] else x.get('unit', 'seeds')}"
            for x in e.get("effects") or [] if x.get("judged", True))
        parts = "; ".join(f"{p['name']}: {p['verdict']}"
                          + (f" ({p['reason']})" if p.get("reason") else "")
                          for p in e.get("parts") or [])
        seeds = e.get("seeds") or [s["seed"]]
        own = f" (seeds {seeds[0]}-{seeds[-1]})" if seeds[0] != s["seed"] else ""
        cells = [e["map_id"], f"`{e['id']}`{own}", verdict,
                 " ".join(x for x in (effects, parts and f"steps: {parts}") if x) or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


EXPLAINERS = (("shap", "Kernel SHAP"), ("lime", "LIME"), ("ig", "IG"))


def directions() -> str:
    """MAP 7's and 9's measured figures, from the experiments' records in
    ``results/tour-summary.json``."""
    s = json.loads((RESULTS / "tour-summary.json").read_text())
    found = {e["id"]: e for e in s["experiments"]}
    lines = ["| MAP | experiment | measured here (mean of the seeds) | anchor | time | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows = {
        "spiking-networks": (
            "7.1", lambda m: f"test accuracy {m['test_acc_mean']:.2%} ± "
                             f"{m['test_acc_std'] * 100:.2f} in {m['train_wall_s_mean'] / 60:.1f}"
                             f" min of training; {m['spikes_per_image_mean']:,.0f} spikes per "
                             f"image; estimated energy {m['energy_ratio_mean']:.2f}x the ANN "
                             "twin's",
            "SpikingJelly's conv SNN: 93.1% at T = 4 after 64 epochs; target >= 88% in 10 min"),
        "in-memory-computing": (
            "7.2", lambda m: f"from 1 s to 1 day after programming: plain training loses "
                             f"{m['plain_cost_1day_mean'] * 100:.2f} points uncompensated; "
                             "hardware-aware training with drift compensation "
                             f"{m['aware_compensated_cost_1day_mean'] * 100:.2f} (digital "
                             f"{m['hardware-aware_digital_acc_mean']:.2%}, 1 year "
                             f"{m['hardware-aware_compensated_acc_1year']:.2%}); plain "
                             "training with compensation "
                             f"{m['plain_compensated_cost_1day_mean'] * 100:.2f} (digital "
                             f"{m['plain_digital_acc_mean']:.2%})",
            "aihwkit's analog LeNet: 98.7% on MNIST; targets >= 3 and <= 1 point; devices: "
            "IBM's PCM model (aihwkit's constants)"),
        "fairness": (
            "7.3", lambda m: f"accuracy {m['baseline_acc_mean']:.3f} -> "
                             f"{m['debiased_acc_mean']:.3f}, average odds difference "
                             f"{m['baseline_average_odds_difference_mean']:+.3f} -> "
                             f"{m['debiased_average_odds_difference_mean']:+.3f}; fairlearn's "
                             f"peer: accuracy {m['fairlearn_acc_mean']:.3f} (MLP), "
                             f"{m['fairlearn-linear_acc_mean']:.3f} (logistic), AOD "
                             f"{m['fairlearn-linear_average_odds_difference_mean']:+.3f} "
                             "(logistic)",
            "AIF360's demo: 0.805 -> 0.792, AOD -0.291 -> -0.054"),
        "explanations": (
            "7.3", lambda m: "deletion AUC (lower is better) " + ", ".join(
                f"{m[f'{k}_deletion_auc']:.3f} {name}" for k, name in EXPLAINERS)
                + f" against {m['random_deletion_auc']:.3f} for a random order; insertion AUC "
                + ", ".join(f"{m[f'{k}_insertion_auc']:.3f}" for k, _ in EXPLAINERS)
                + f" against {m['random_insertion_auc']:.3f}; rank correlation with a "
                "randomised network " + ", ".join(
                    f"{m[f'{k}_randomised_rank_correlation']:+.2f}" for k, _ in EXPLAINERS)
                + f" ({m['images']:.0f} test images, 49 patches)",
            "Petsiuk et al. 2018 (deletion/insertion); Adebayo et al. 2018 (randomisation)"),
        "self-supervised": (
            "7.4", lambda m: f"linear probe on frozen SimCLR features "
                             f"{m['simclr_test_probe_acc_mean']:.2%} (kNN "
                             f"{m['simclr_test_knn_acc_mean']:.2%}); random encoder "
                             f"{m['random_init_test_probe_acc_mean']:.2%}; with 600 labels: "
                             f"SimCLR + probe {m['simclr_test_probe_acc_0.01_mean']:.2%}, "
                             "supervised from scratch "
                             f"{m['supervised_600_test_acc_mean']:.2%}",
            "target: probe >= 85%, >= 10 points over a random encoder; SimCLR wins at 1%"),
        "quantum-circuits": (
            "7.5", lambda m: f"8-qubit circuit, 67 parameters: test accuracy "
                             f"{m['vqc_test_acc_mean']:.2%}; classical peer, 68 parameters: "
                             f"{m['pca-mlp_test_acc_mean']:.2%}; barren plateau: gradient "
                             f"variance x{math.exp(-m['plateau_decay_per_qubit']):.2f} per "
                             f"qubit (R² {m['plateau_r2']:.2f})",
            "target >= 95%; McClean et al.: variance ~ 2^-n (x0.5 per qubit)"),
        "data-scaling": (
            "9", lambda m: f"Fashion-MNIST test error {m['test_error_n1000']:.2%} with 1,000 "
                           f"training images, {m['test_error_n16000']:.2%} with 16,000: "
                           f"err = {m['power_law_a']:.2f} N^-{m['power_law_b']:.2f} "
                           f"(R² {m['power_law_r2']:.2f})",
            "Hestness et al. 2017: ImageNet top-1 error ~ N^-0.31"),
    }
    for name, (map_id, figure, anchor) in rows.items():
        if name not in found:
            continue
        e = found[name]
        shown = figure(e["metrics"]) if e["metrics"] else e["details"]
        spread = (f"{e['metrics']['images']:.0f} images" if name == "explanations"
                  else f"{len(e['seeds'])} seeds")
        lines.append(f"| {map_id} | `{name}` | {shown} | {anchor} | {e['wall_s'] / 60:.1f} min, "
                     f"{spread} | {e['verdict']} |")
    return "\n".join(lines)


def science() -> str:
    """MAP 6.3's AlphaFold 2 experiment, from its record in ``results/tour-summary.json``."""
    e = _experiment("protein-structure")
    if e is None:
        return "Not measured yet: `deepatlas lab run protein-structure`."
    m = e["metrics"]
    lines = [f"`deepatlas lab run protein-structure` ({len(e['seeds'])} seeds, "
             f"{e['wall_s'] / 60:.1f} min, verdict: {e['verdict']}), top-L/5 long-range "
             "precision on the families of the 10 held-out chains:", "",
             "| method | precision (mean of the seeds) |", "| --- | --- |"]
    for key, name in (("evoformer", "Evoformer + covariance input (recipe "
                       "`contacts-evoformer`)"),
                      ("paper-inputs", "Evoformer, the paper's inputs alone"),
                      ("dca", "mean-field DCA + APC"), ("mi", "mutual information + APC")):
        lines.append(f"| {name} | {m[f'{key}_precision_mean']:.3f} |")
    lines += ["", f"r.m.s.d.95 between experimental models of one protein: median "
              f"{m['experimental_rmsd95_median']:.2f} Å over {m['experimental_structures']:.0f} "
              f"structures ({m['experimental_pairs']:.0f} pairs of models); the text says "
              "0.16 Å, AlphaFold 2 reported 0.96 Å."]
    return "\n".join(lines)


def clip() -> str:
    """MAP 6.3's CLIP experiment, from its record in ``results/tour-summary.json``."""
    e = _experiment("image-text")
    if e is None:
        return "Not measured yet: `deepatlas lab run image-text`."
    m = e["metrics"]
    pct = lambda key: f"{100 * m[key + '_mean']:.1f}%"  # noqa: E731
    n_prompts = m.get("zero_shot_prompts", 5)  # records before clip.prompts: five templates
    prompts = f"ensemble of {n_prompts:.0f} prompts" if n_prompts > 1 else "the bare name"
    seeds = e["seeds"]
    command = "deepatlas lab run image-text" + (f" --seed {seeds[0]}" if seeds[0] else "")
    span = f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    lines = [f"`{command}` ({span}, {e['wall_s'] / 60:.1f} "
             f"min, {m['train_seconds_mean'] / 60:.1f} min of training per seed, verdict: "
             f"{e['verdict']}), on the held-out drawings:", "",
             "| measure | test |", "| --- | --- |",
             f"| zero-shot balanced accuracy, {prompts} (22 categories) | "
             f"{pct('test_zero_shot_balanced_acc')} |",
             f"| linear probe on the image features, balanced accuracy | "
             f"{pct('test_probe_balanced_acc')} |",
             f"| chance (one category always), balanced accuracy | "
             f"{pct('test_chance_balanced_acc')} |",
             f"| zero-shot accuracy, {prompts} | {pct('test_zero_shot_acc')} |",
             *([f"| zero-shot accuracy, one prompt (mean of {n_prompts:.0f}) | "
                f"{pct('test_zero_shot_acc_per_template')} |"] if n_prompts > 1 else []),
             f"| linear probe, accuracy | {pct('test_probe_acc')} |",
             f"| always the largest category, accuracy | {pct('test_majority_acc')} |"]
    for direction, name in (("image_to_text", "image→text"), ("text_to_image", "text→image")):
        lines.append(f"| {name} recall@1 / @5 / @10 | " + " / ".join(
            pct(f"test_{direction}_r{k}") for k in (1, 5, 10)) + " |")
    return "\n".join(lines)


def speech() -> str:
    """MAP 6.3's Tacotron 2 experiment, from its record in ``results/tour-summary.json``."""
    e = _experiment("speech-synthesis")
    if e is None:
        return "Not measured yet: `deepatlas lab run speech-synthesis`."
    m = e["metrics"]
    get = lambda key, fmt: format(m[key + "_mean"], fmt) if key + "_mean" in m else "n/a"  # noqa: E731
    return "\n".join([
        f"`deepatlas lab run speech-synthesis` ({len(e['seeds'])} seeds, {e['wall_s'] / 60:.1f} "
        f"min, {m['train_seconds_mean'] / 60:.1f} min of training per seed, verdict: "
        f"{e['verdict']}), on the held-out sentences spoken free-running:", "",
        "| measure | test |", "| --- | --- |",
        f"| MCD against espeak-ng, our audio (dB) | {get('test_mcd_db', '.2f')} |",
        f"| MCD, our predicted mel before Griffin-Lim | {get('test_mcd_predicted_mel_db', '.2f')} |",
        f"| MCD, espeak-ng's true mel through the same Griffin-Lim (the vocoder's floor) | "
        f"{get('test_mcd_griffin_lim_db', '.2f')} |",
        f"| MCD, espeak-ng's audio of another sentence | "
        f"{get('test_mcd_other_sentence_db', '.2f')} |",
        f"| attention diagonality / focus | {get('test_attention_diagonality', '.2f')} / "
        f"{get('test_attention_focus', '.2f')} |",
        f"| length, ours / espeak-ng's; stop token fired | {get('test_length_ratio', '.2f')}; "
        f"{get('test_stopped', '.0%')} |",
        f"| pocketsphinx word error rate, ours / espeak-ng's own audio | "
        f"{get('test_wer', '.0%')} / {get('test_wer_espeak', '.0%')} |"])


def tokenisers() -> str:
    """MAP 6.2's tokenisers, characters against byte-level BPE in bits per character, from
    experiment ``gpt``'s record in ``results/tour-summary.json``."""
    e = _experiment("gpt")
    if e is None or "gpt_bpe_test_bpc_mean" not in e["metrics"]:
        return "Not measured yet: `deepatlas lab run gpt`."
    m = e["metrics"]
    bpe = next(x for x in e["effects"] if x["name"].startswith("byte-level BPE"))
    return (f"`deepatlas lab run gpt` ({len(e['seeds'])} seeds, 2 layers x 64, the same steps "
            f"for both): held-out {m['gpt_test_bpc_mean']:.3f} bits/char with characters, "
            f"{m['gpt_bpe_test_bpc_mean']:.3f} with byte-level BPE of "
            f"{m['bpe_vocabulary']:,.0f} tokens (difference {_signed(bpe['effect'])} "
            f"[{_signed(bpe['low'])}, {_signed(bpe['high'])}]); the unigram model: "
            f"{m['unigram_test_bpc']:.3f}.")


def scaling() -> str:
    """MAP 6.2's scaling law (experiment ``model-scaling``), from its record in
    ``results/tour-summary.json``."""
    e = _experiment("model-scaling")
    if e is None:
        return "Not measured yet: `deepatlas lab run model-scaling`."
    m = e["metrics"]
    lines = [f"`deepatlas lab run model-scaling` ({len(e['seeds'])} seeds, {e['wall_s'] / 60:.1f}"
             f" min, verdict: {e['verdict']}), {m['characters_seen']:,.0f} characters seen by "
             "every size:", "",
             "| layers x d_model | non-embedding parameters N | held-out nats/char |",
             "| --- | --- | --- |"]
    for key in sorted((k for k in m if k.startswith("non_embedding_parameters_")),
                      key=lambda k: m[k]):
        shape = key[len("non_embedding_parameters_"):]
        layers, width = shape[1:].split("_d")
        lines.append(f"| {layers} x {width} | {m[key]:,.0f} | "
                     f"{m[f'test_nats_per_char_{shape}']:.3f} |")
    lines += ["", f"Fit: L = {m['power_law_a']:.2f} N^-{m['power_law_b']:.3f} "
              f"(R² {m['power_law_r2']:.2f}); Kaplan et al.'s alpha_N, for models trained to "
              f"convergence: {m['kaplan_alpha_n']}."]
    return "\n".join(lines)


BLOCKS = {"science": science, "clip": clip, "speech": speech, "clip-peer": clip_peer,
          "dca-peer": dca_peer, "sentiment-peer": sentiment_peer, "recipes": recipes,
          "gpt-peer": gpt_peer, "tour": tour,
          "throughput": throughput,
          "time-to-accuracy": time_to_accuracy, "unet-peer": unet_peer, "yolo-peer": yolo_peer,
          "upscale": upscale,
          "upscale-4k": upscale_4k, "translation-depth": translation_depth,
          "scene-augment": scene_augment, "segment-more-photos": segment_more_photos,
          "throughput-gpu": throughput_gpu,
          "detector-fps": detector_fps, "detect-gpu": detect_gpu,
          "detect-recolour": detect_recolour, "detect-more-photos": detect_more_photos,
          "detect-epochs": detect_epochs,
          "naming-by-photos": naming_by_photos,
          "translate-gpu": translate_gpu,
          "directions": directions, "scaling": scaling,
          "tokenisers": tokenisers}


def render(readme: str) -> str:
    """``readme`` with every marked block regenerated; a marker pair must be present."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)",
                             re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- results:{name} --> block")
        for marker in (f"<!-- results:{name} -->", f"<!-- /results:{name} -->"):
            if readme.count(marker) != 1:  # a stray copy would sit outside the block for good
                raise SystemExit(f"README.md has {readme.count(marker)} {marker} markers, not 1")
        readme = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    current = path.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md disagrees with results/: run python scripts/readme_results.py",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
