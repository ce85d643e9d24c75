"""The README's detection blocks (MAP 6.1), generated from ``results/benchmarks/*.json``:
the detector's speed on a GPU, its recipe's settings over seeds, the naming diagnosis, and the
YOLOv8n peer; :mod:`readme_results` renders them with the others."""

from __future__ import annotations

import json

from readme_benchmarks import RESULTS, _one, _recipe_mark, _spreads


def detector_fps() -> str:
    t = _one("detector-fps-*.json", gpu=True)
    lines = [f"`python benchmarks/detector_fps.py --device cuda --compile --frames {t['frames']}` "
             f"on one {t['gpu']} "
             f"(torch {t['torch']}): the small detector ({t['params']:,} parameters), batch "
             f"1, forward pass plus NMS, {t['trials']} trials of {t['frames']} frames, mean ± "
             f"std. File: `{t['file']}`.", "",
             "| runtime | 320 px | 640 px |", "| --- | --- | --- |"]
    by_runtime: dict[str, dict[int, dict]] = {}
    for r in t["rows"]:
        by_runtime.setdefault(r["runtime"], {})[r["size"]] = r
    for runtime, sizes in by_runtime.items():
        cells = [f"{sizes[s]['fps_mean']:,.0f} ± {sizes[s]['fps_std']:.0f} FPS "
                 f"({sizes[s]['ms_per_frame']:.2f} ms)" if s in sizes else "" for s in (320, 640)]
        lines.append(f"| {runtime} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detect_gpu() -> str:
    t = _one("detect-gpu-*.json", gpu=True)
    lines = [f"On one {t['gpu']} (torch {t['torch']}, bf16), seed 0, three runs side by side. "
             f"File: `{t['file']}`.", "",
             "| run | parameters | epochs | training time | test mAP@0.5 | test mAP@0.5:0.95 | "
             "validation mAP@0.5 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["runs"].items():
        last = r["curve"][-1]  # scored every 5 epochs; a stopped run's last scores
        wall = r.get("wall_s", last["wall_s"]) / 60
        lines.append(f"| {name} | {r['num_params']:,} | {last['epoch']} | {wall:.1f} min | "
                     f"{last['test_map50']:.3f} | {last['test_map']:.3f} | "
                     f"{last['val_map50']:.3f} |")
    return "\n".join(lines)


def _seed_rows(t: dict, setting: str, label) -> list[str]:
    """A table of ``t``'s runs, one row per (value of the config key ``setting``, seed; a row
    stores the value under the key's last part), each scored at its last
    epoch, which validation must also have picked for best.pt; then mean ± standard deviation
    of each value run at more than one seed, on test and validation mAP."""
    lines = [f"| {label(None, None)} | seed | minutes | test mAP@0.5 | test mAP@0.5:0.95 | "
             "validation mAP@0.5 | validation mAP@0.5:0.95 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["rows"].items():
        if r["best_monitored_epoch"] != r["epochs"]:
            raise SystemExit(f"{t['file']}: {name}: best.pt is not the last epoch")
        lines.append(f"| {label(name, r)} | {r['seed']} | {r['wall_s'] / 60:.1f} | "
                     f"{r['test_map50']:.3f} | {r['test_map']:.3f} | {r['val_map50']:.3f} | "
                     f"{r['val_map']:.3f} |")
    groups: dict[str, list[dict]] = {}
    for r in t["rows"].values():
        value = r[setting.rpartition(".")[2]]
        groups.setdefault(f"`{setting} = {json.dumps(value)}`", []).append(r)
    spreads = _spreads(groups, (("test mAP@0.5", "test_map50"), ("test mAP@0.5:0.95", "test_map"),
                                ("validation mAP@0.5:0.95", "val_map")))
    return lines + (["", "Mean ± standard deviation: " + "; ".join(spreads) + "."]
                    if spreads else [])


def detect_recolour() -> str:
    """The detection recipe's training scenes, recoloured or not, at two or three seeds."""
    t = _one("detect-recolour-*.json")

    def label(name: str | None, r: dict | None) -> str:
        if r is None:
            return "`data.augment`"
        return f"`{r['augment']}`" + _recipe_mark(name, " (the recipe in session 26)")

    return "\n".join([
        f"The recipe with `data.augment` set three ways, bf16 on {t['cpu_threads']} threads "
        f"({t['cpu']}, torch {t['torch']}); every run alone on the machine, scored at its "
        f"last epoch, which validation also picked for best.pt in each. File: "
        f"`{t['file']}`.", ""] + _seed_rows(t, "data.augment", label))


def detect_more_photos() -> str:
    """The detection recipe with and without photos-more's 13 training photographs."""
    t = _one("detect-more-photos-*.json")

    def label(name: str | None, r: dict | None) -> str:
        if r is None:
            return "training photographs"
        return ("15 + 13 (`data.more_photos = true`)" if r["more_photos"] else "15") + (
            _recipe_mark(name, " (the recipe in session 27)"))

    return "\n".join([
        f"The recipe (`copy-paste-recolour`, 56 epochs) on the 15 training photographs of "
        f"`photos`, and with `photos-more`'s 13 added; bf16 on {t['cpu_threads']} threads "
        f"({t['cpu']}, torch {t['torch']}); scored at the last epoch, which validation also "
        f"picked for best.pt in each. {t['timing']} File: `{t['file']}`.", ""]
        + _seed_rows(t, "data.more_photos", label))


def detect_epochs() -> str:
    """The detection recipe at 56 epochs and at 50, three seeds each, and validation's paired
    verdict between them (``deepatlas.lab.stats.compare``, recorded in the file)."""
    t = _one("detect-epochs-*.json")

    def label(name: str | None, r: dict | None) -> str:
        if r is None:
            return "`train.epochs`"
        return f"{r['epochs']}" + _recipe_mark(name)

    effect = t["validation_56_minus_50"]
    return "\n".join([
        f"The recipe (`copy-paste-recolour`, `more_photos`) trained 56 epochs and 50, bf16 on "
        f"{t['cpu_threads']} threads ({t['cpu']}, torch {t['torch']}); scored at the last "
        f"epoch, which validation also picked for best.pt in each. {t['timing']} File: "
        f"`{t['file']}`.", ""] + _seed_rows(t, "train.epochs", label) + [
        "", f"Validation mAP@0.5:0.95, 56 epochs − 50, paired by seed: {effect['effect']:+.3f} "
        f"[{effect['low']:+.3f}, {effect['high']:+.3f}] ({effect['confidence']:.0%} interval, "
        f"{effect['seeds']} seeds): {effect['decision']}."])


def naming_by_photos() -> str:
    """Digits named right on training or test photographs: before recolouring, after it, and
    with photos-more's 13 training photographs."""
    runs = {"copy-paste": _one("naming-by-photos-copy-paste-*.json"),
            "copy-paste-recolour": _one("naming-by-photos-recolour-*.json"),
            "more photos": _one("naming-by-photos-more-photos-*.json")}
    first, *others = runs.values()
    for key in ("scenes_per_pairing", "seed", "checkpoint"):
        for r in others:
            if r[key] != first[key]:
                raise SystemExit(f"{first['file']} and {r['file']} differ in {key}")
    lines = [f"`python benchmarks/naming_by_photos.py RUN --name naming-by-photos-recolour` "
             f"(and `-copy-paste`, `-more-photos`): {first['scenes_per_pairing']} new "
             f"scenes per pairing (seed {first['seed']}), each run's best.pt; \"train\" "
             f"photographs are `photos`' 15 in every column. Files: "
             + ", ".join(f"`{r['file']}`" for r in runs.values()) + ".", "",
             "| digits, photographs | " + " | ".join(
                 f"`{r['augment']}`" + (f", EMA {r['ema_decay']}" if r["ema_decay"] else "")
                 + (", `more_photos`" if r.get("more_photos") else "")
                 + f" (epoch {r['epoch']})" for r in runs.values()) + " |",
             "| --- |" + " --- |" * len(runs)]
    for pairing in first["rows"]:
        cells = [f"{r['rows'][pairing]['named_right']:.1%} of "
                 f"{r['rows'][pairing]['digits_found']:,}" for r in runs.values()]
        label = pairing.replace(" digits on ", " digits, ").removesuffix(" photographs")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def yolo_peer() -> str:
    """deepatlas's detector against Ultralytics' YOLOv8n (``benchmarks/yolo_peer.py``)."""
    if not list((RESULTS / "benchmarks").glob("yolo-peer-*.json")):
        return "Not measured yet: `python benchmarks/yolo_peer.py`."
    t = _one("yolo-peer-*.json")
    if t["threads"] != t["ultralytics_threads_after"]:
        raise SystemExit(f"{t['file']}: the two models trained on different thread counts")
    # fliplr=0 (digits) is passed by every version of the script; older files do not list it.
    args = ", ".join(f"{k}={v}" for k, v in {"fliplr": 0.0, **t["ultralytics_args"]}.items())
    lines = [f"`python benchmarks/yolo_peer.py`: one seed each, {t['image_size']} px, batch "
             f"{t['batch_size']}, the same {t['budget_s'] / 60:.1f}-minute budget "
             f"({t['budget_from']}), both on {t['threads']} torch threads ({t.get('cpu')}, "
             f"torch {t.get('torch')}, ultralytics {t['ultralytics']}; Ultralytics' defaults "
             f"but {args}), best.pt chosen by validation, scored on the {t['test_scenes']:,} "
             "test scenes by the same torchmetrics evaluator, each after its own NMS "
             f"(deepatlas: score 0.01, IoU 0.6; Ultralytics: 0.001, 0.7). File: `{t['file']}`.",
             "",
             "| model | parameters | training scenes | epochs (best) | test mAP@0.5 | "
             "test mAP@0.5:0.95 | training time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in t["rows"].items():
        lines.append(f"| {name} | {r['num_params']:,} | {r['training_scenes']} | "
                     f"{r['epochs']} ({r['best_epoch']}) | {r['test_map50']:.3f} | "
                     f"{r['test_map']:.3f} | {r['wall_s'] / 60:.1f} min |")
    return "\n".join(lines)
