"""BERT on rt-snippets (MAP 6.2) against the classic model a user would try first: scikit-learn's
TF-IDF features and a logistic regression.

    python benchmarks/sentiment_peer.py --pretrained runs/bert-pretrain [--out results/benchmarks]

On the split every BERT recipe uses (``data/sentiment.py``: sentence id mod 10), in one run:

- **the peer**: ``TfidfVectorizer`` (word unigrams and bigrams, sublinear tf) and
  ``LogisticRegression``, its inverse regularisation C chosen on the validation sentences from
  a grid, then scored once on the test sentences;
- **BERT from scratch**: the ``bert-sentiment-scratch`` recipe through the Trainer;
- **BERT fine-tuned**: the ``bert-sentiment`` recipe from ``--pretrained`` (a
  ``deepatlas train bert-pretrain`` run; left out without it).

Each BERT row is its recipe as shipped, one seed, test accuracy at the epoch validation chose
(best.pt). Needs ``deepatlas data get rt-snippets``; run by hand, never by the tests. The
result goes to ``results/benchmarks/sentiment-peer-<host>.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from deepatlas.config import load_recipe
from deepatlas.data.sentiment import SPLIT_RULE, load_sentiment
from deepatlas.tasks import fit
from deepatlas.train.runinfo import write_result

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # inverse L2 strength; chosen on validation


def tfidf_logistic_regression() -> dict:
    """Validation accuracy for each C, and the chosen C's test accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = load_sentiment(download=False)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = {s: (vectorizer.fit_transform if s == "train" else vectorizer.transform)(p.texts)
         for s, p in splits.items()}
    fitted = {c: LogisticRegression(C=c, max_iter=5000).fit(x["train"], splits["train"].labels)
              for c in C_GRID}
    val = {c: float(m.score(x["val"], splits["val"].labels)) for c, m in fitted.items()}
    best = max(C_GRID, key=lambda c: val[c])
    return {"val_acc_by_c": {str(c): a for c, a in val.items()}, "c": best,
            "val_acc": val[best],
            "test_acc": float(fitted[best].score(x["test"], splits["test"].labels)),
            "features": len(vectorizer.vocabulary_), "wall_s": time.perf_counter() - start}


def bert_row(recipe: str, overrides: list[str], out: Path) -> dict:
    summary = fit(load_recipe(recipe, ["data.download=false", "train.tensorboard=false",
                                       *overrides]), out, progress=False)
    best = summary["best"]
    return {"recipe": recipe, "overrides": overrides, "val_acc": best["val_acc"],
            "test_acc": best["test_acc"], "best_epoch": summary["best_monitored_epoch"],
            "epochs": summary["epochs"], "wall_s": summary["wall_s"],
            "num_params": summary["num_params"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="",
                        help="a bert-pretrain run to fine-tune (default: no fine-tuned row)")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    rows = {"TF-IDF + logistic regression (scikit-learn)": tfidf_logistic_regression()}
    with tempfile.TemporaryDirectory() as tmp:
        rows["BERT from scratch"] = bert_row("bert-sentiment-scratch", [], Path(tmp) / "s")
        if args.pretrained:
            rows["BERT pretrained, fine-tuned"] = bert_row(
                "bert-sentiment", [f"train.init_from={args.pretrained}"], Path(tmp) / "f")
    result = {"benchmark": "sentiment-peer", "split": SPLIT_RULE, "rows": rows,
              "scikit_learn": version("scikit-learn"),
              "pretrained": args.pretrained or None}
    path = write_result(args.out, "sentiment-peer", result)
    for name, r in rows.items():
        print(f"{name}: validation {r['val_acc']:.1%}, test {r['test_acc']:.1%}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
