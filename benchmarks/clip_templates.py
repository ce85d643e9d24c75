"""Do zero-shot prompts shaped like CLIP's training texts classify better? (MAP 6.3, issue 19)

    python benchmarks/clip_templates.py RUN [RUN ...] [--name clip-templates]
                                        [--out results/benchmarks]

A ``clip-clipart`` run's text encoder read four forms of each drawing's text: the caption
("title. kw, kw"), the title, the keywords ("kw, kw") and one bare keyword ("frog", no
period). The task's zero-shot prompts when this was written (now ``clip.prompts=phrased``,
"a clip-art picture of a {}." and four more) are phrasings it never read. This scores three
prompt sets, fixed before the first evaluation, on each run's best.pt, with no retraining:

- ``A``: the five phrased templates (the control);
- ``B``: those five and the bare category name, "{}";
- ``C``: the bare category name alone.

Each set's category embedding is the normalised mean of its prompts' (CLIP's ensemble). The
rule, written first: validation zero-shot balanced accuracy chooses; a set replaces ``A``
only if its difference, paired by run (``deepatlas.lab.stats.compare``), supports the gain
at 95%. Test figures are reported beside, never used to choose.

Needs the runs' clipart set. Run by hand, never by the tests; the result goes to
``--out``/``--name``-<host>.json.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from deepatlas.lab.stats import compare
from deepatlas.tasks import clip as clip_task
from deepatlas.train.checkpoint import load_checkpoint
from deepatlas.train.runinfo import write_result
from deepatlas.train.task import rebuild_task

PHRASED = clip_task.PROMPT_SETS["phrased"]
PROMPT_SETS = {"A": PHRASED, "B": (*PHRASED, "{}"), "C": ("{}",)}


@torch.no_grad()
def zero_shot(run: Path) -> dict[str, dict[str, float]]:
    """Per prompt set, the balanced zero-shot accuracy of ``run``'s best.pt on val and test."""
    task = rebuild_task(clip_task.ContrastiveImageText, load_checkpoint(run / "best.pt"),
                        torch.device("cpu"), [])
    model = task.models["model"]
    images = {split: clip_task.embed(model, "encode_image", task.pairs[split].images, 256,
                                     task.ctx.device, task.normalize) for split in ("val", "test")}
    scores = {}
    for name, templates in PROMPT_SETS.items():
        task.templates = templates  # what clip.prompts chooses, here a set of this script's
        classes = torch.nn.functional.normalize(
            task.class_embeddings(model).mean(0), dim=-1)  # CLIP's ensemble: (C, E)
        scores[name] = {split: clip_task.accuracies(task.pairs[split].labels,
                                                    (x @ classes.T).argmax(1))["balanced_acc"]
                        for split, x in images.items()}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="clip-clipart run folders")
    parser.add_argument("--name", default="clip-templates")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    per_run = {str(run): zero_shot(run) for run in args.runs}
    for run, scores in per_run.items():
        print(run, {k: round(v["val"], 4) for k, v in scores.items()}, flush=True)

    def column(name: str, split: str) -> list[float]:
        return [scores[name][split] for scores in per_run.values()]

    effects = {f"{name} - A, {split}": asdict(compare(f"{name} - A", column(name, split),
                                                      column("A", split)))
               for name in ("B", "C") for split in ("val", "test")}
    chosen = max(PROMPT_SETS, key=lambda n: statistics.fmean(column(n, "val")))
    adopted = chosen if chosen != "A" and effects[f"{chosen} - A, val"]["low"] > 0 else "A"
    means = {name: {split: statistics.fmean(column(name, split)) for split in ("val", "test")}
             for name in PROMPT_SETS}
    path = write_result(args.out, args.name, {
        "prompt_sets": {k: list(v) for k, v in PROMPT_SETS.items()},
        "metric": "zero-shot balanced accuracy, prompt ensemble", "runs": per_run,
        "means": means, "effects": effects, "highest_on_val": chosen, "adopted": adopted})
    for key, e in effects.items():
        print(f"{key}: {e['effect']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}]")
    print(f"means {means}\nadopted: {adopted}\nwrote {path}")


if __name__ == "__main__":
    main()
