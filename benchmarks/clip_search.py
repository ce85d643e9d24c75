"""How well does a CLIP run find held-out drawings from a word? (MAP 6.3, ``deepatlas search``)

    python benchmarks/clip_search.py RUN [RUN ...] [--top 8] [--out results/benchmarks]

``deepatlas search`` ranks a folder of images by cosine similarity to a text. This scores that
ranking where it can be scored: on the ``clipart`` test drawings (never trained on), a drawing
is relevant to a query word when its held-out caption (title and keywords) contains the word
or its plural. For each run's best.pt and each query it records the average precision of the
whole ranking (scikit-learn's; a random ranking scores about the base rate, the share of test
drawings that are relevant) and precision@``--top`` (the share of the first ``--top`` that
are relevant, what the contact sheet shows), then the mean and spread over runs.

The queries are fixed by rule, not picked from results: everyday object words written down
before any run was scored (``CANDIDATES``, the README's earlier four among them), kept where
at least two test drawings are relevant. A first draft took the commonest title words
instead; they were authors' names and words such as "collection" and "clipart", not things a
user searches for.

Needs the runs' clipart set. Run by hand, never by the tests; the result goes to
``--out``/clip-search-<host>.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

import torch

from deepatlas.data.image_text import caption_tokens
from deepatlas.lab.stats import mean_std
from deepatlas.tasks.clip import ContrastiveImageText, embed
from deepatlas.train.checkpoint import load_checkpoint
from deepatlas.train.runinfo import write_result
from deepatlas.train.task import rebuild_task

CANDIDATES = ("flag", "computer", "car", "penguin", "cat", "dog", "bird", "fish", "horse",
              "butterfly", "bicycle", "airplane", "train", "boat", "house", "tree", "flower",
              "star", "heart", "sun", "moon", "book", "phone", "clock", "key", "cup", "ball",
              "hat", "guitar", "camera", "apple", "person")
MIN_RELEVANT = 2


def relevant(word: str, caption: str) -> bool:
    """Whether ``caption`` holds ``word`` or its plural as a whole word."""
    return re.search(rf"\b{re.escape(word)}(s|es)?\b", caption.lower()) is not None


def queries(captions: list[str]) -> list[str]:
    """The CANDIDATES with at least MIN_RELEVANT relevant drawings among ``captions``."""
    return [w for w in CANDIDATES if sum(relevant(w, c) for c in captions) >= MIN_RELEVANT]


@torch.no_grad()
def search(run: Path, top: int, words: list[str] | None) -> tuple[list[str], dict]:
    """(queries, each measure by query) of ``run``'s best.pt on the test drawings."""
    from sklearn.metrics import average_precision_score

    state = load_checkpoint(run / "best.pt")
    device = torch.device("cpu")
    task = rebuild_task(ContrastiveImageText, state, device, [])
    model, test = task.models["model"], task.pairs["test"]
    words = words or queries(test.captions)
    images = embed(model, "encode_image", test.images, 256, device, task.normalize)  # (N, E)
    texts = embed(model, "encode_text", caption_tokens(task.tokenizer, words, task.context),
                  256, device)  # (Q, E)
    similarity = texts @ images.T  # (Q, N)
    out: dict = {"average_precision": {}, "precision_at_top": {}, "base_rate": {}}
    for word, scores in zip(words, similarity):
        truth = [relevant(word, c) for c in test.captions]
        best = scores.topk(top).indices.tolist()
        out["average_precision"][word] = float(average_precision_score(truth, scores.numpy()))
        out["precision_at_top"][word] = sum(truth[i] for i in best) / top
        out["base_rate"][word] = sum(truth) / len(truth)
    return words, {**out, "test_drawings": len(test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="clip-clipart run folders")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    words, per_run = None, {}
    for run in args.runs:
        words, per_run[str(run)] = search(run, args.top, words)
        print(run, {w: round(v, 3) for w, v in per_run[str(run)]["average_precision"].items()},
              flush=True)

    def spread(measure: str, word: str) -> dict[str, float]:
        return mean_std([r[measure][word] for r in per_run.values()])

    first = next(iter(per_run.values()))
    table = {w: {"average_precision": spread("average_precision", w),
                 "precision_at_top": spread("precision_at_top", w),
                 "base_rate": first["base_rate"][w],
                 "relevant": round(first["base_rate"][w] * first["test_drawings"])}
             for w in words}
    run_means = [statistics.fmean(r["average_precision"].values()) for r in per_run.values()]
    summary = {"mean_average_precision": mean_std(run_means),
               "mean_base_rate": statistics.fmean(t["base_rate"] for t in table.values())}
    path = write_result(args.out, "clip-search", {
        "top": args.top, "queries": words, "test_drawings": first["test_drawings"],
        "relevance": "the query or its plural as a whole word of the test drawing's caption",
        "per_query": table, **summary, "runs": per_run})
    for w, t in table.items():
        ap, pt = t["average_precision"], t["precision_at_top"]
        print(f"{w:>10} ({t['relevant']:3d} relevant): AP {ap['mean']:.3f} ± {ap['std']:.3f} "
              f"(random ~{t['base_rate']:.3f}), precision@{args.top} {pt['mean']:.2f} ± "
              f"{pt['std']:.2f}")
    mean_ap = summary["mean_average_precision"]
    print(f"mean AP over queries {mean_ap['mean']:.3f} ± {mean_ap['std']:.3f} over "
          f"{len(per_run)} runs "
          f"(random ~{summary['mean_base_rate']:.3f}); wrote {path}")


if __name__ == "__main__":
    main()
