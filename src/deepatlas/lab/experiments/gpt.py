"""MAP 6.2: text generation with GPT; the source quotes GPT-3's 175 billion parameters.

Two measurements:

1. **The count.** GPT-3 175B's configuration (Brown et al. 2020, Table 2.1: 96 layers, d_model
   12288, 96 heads, context 2048, GPT-2's 50257-token vocabulary) is built on the meta device,
   which allocates nothing, and its parameters are counted exactly: 174,604,259,328 with the
   output layer tied to the token embedding. The claim holds when the count rounds to 175
   billion (within 0.5%: the source's "1750亿" has three significant figures).
2. **It learns to write.** The same code, at laptop scale (deepatlas's ``gpt-austen`` recipe,
   shrunk to 2 layers of width 64, 150 steps quick, 1,200 full), trains on Jane Austen's novels through the one Trainer, and its held-out bits per
   character are judged against the unigram model's (each character's frequency in the
   training text: what a model that ignores context can reach). Holds when the one-sample t
   interval over seeds lies below that level. Needs the ``austen`` set
   (``deepatlas data get austen``); the tour never downloads, so without it this part is "not
   measurable here" (no data).

Beside it, reported and not judged: the same model, steps and seeds with byte-level BPE
(``data.tokenizer=bpe``, ``BPE_VOCABULARY`` tokens, trained on the training text), in bits per
character, which compare across tokenisers. Each BPE window of the same length covers several
characters, so at equal steps BPE sees more text; its larger softmax costs more per step.
"""

from __future__ import annotations

import math
from collections import Counter

from deepatlas.lab.common import fit_arms, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare

GPT3_QUOTED = 175e9
BPE_VOCABULARY = 1024


def unigram_bpc(train: str, test: str) -> float:
    """Bits per character of ``test`` under ``train``'s character frequencies (add-one)."""
    counts = Counter(train)
    total = len(train) + len(counts) + 1
    test_counts = Counter(test)
    return -sum(n * math.log2((counts.get(c, 0) + 1) / total)
                for c, n in test_counts.items()) / len(test)


@experiment(name="gpt", map_id="6.2", title="Text generation: GPT",
            claim="GPT-3 has 175 billion parameters; the same decoder-only Transformer, at "
                  "laptop scale, learns to write from raw text.",
            source="文本生成:GPT-3(1750亿参数)",
            implements="deepatlas.models.gpt (GPT, GPT3_175B, KV-cache generation); "
                       "deepatlas.tasks.language_model; recipe gpt-austen; deepatlas generate")
def run(ctx: Context) -> Result:
    import torch

    from deepatlas.data.fetch import installed
    from deepatlas.data.packages import get_set
    from deepatlas.models.gpt import GPT, GPT3_175B

    with torch.device("meta"):
        gpt3 = GPT(GPT3_175B)
    count = gpt3.num_params()
    d, layers = GPT3_175B.d_model, GPT3_175B.layers
    parts_of_count = {"token embedding (tied)": GPT3_175B.vocab_size * d,
                      "positions": GPT3_175B.context * d,
                      "attention": layers * (4 * d * d + 4 * d),
                      "MLP": layers * (8 * d * d + 5 * d),
                      "LayerNorms": layers * 4 * d + 2 * d}
    count_holds = abs(count - GPT3_QUOTED) / GPT3_QUOTED < 0.005
    metrics = {"gpt3_parameters": count, "gpt3_parameters_non_embedding":
               gpt3.num_params(embeddings=False)}
    parts = [{"name": "count", "verdict": "holds" if count_holds else "the text is wrong",
              "reason": "", "details": f"{count:,} parameters"}]

    effects, seeds, bpcs, bpe_bpcs, level = [], [], [], [], None
    if not installed(get_set("austen").folder()):
        parts.append({"name": "learns to write", "verdict": "not measurable here",
                      "reason": "no data", "details": "austen is not installed: deepatlas "
                                                      "data get austen"})
    else:
        from deepatlas.data.corpus import load_corpus

        corpus = load_corpus("austen", download=False)
        level = unigram_bpc(corpus.train, corpus.test)
        # A 2-layer, d_model 64 GPT on 64-character windows, batch 16: seconds per 100 steps.
        size = ["model.d_model=64", "model.layers=2", "model.context=64", "train.batch_size=16",
                f"train.limit_train_batches={ctx.size(1200, 150, smoke=10)}"]
        seeds = [ctx.seed + s for s in range(3)]
        arms = {"char": ("gpt-austen", ["data.tokenizer=char"]),
                "bpe": ("gpt-austen", ["data.tokenizer=bpe",
                                       f"data.vocab_size={BPE_VOCABULARY}"])}
        runs = fit_arms(ctx.out, seeds, arms, lambda summary, _: float(summary["test_bpc"]),
                        ["train.epochs=1", "data.download=false", "train.tensorboard=false",
                         *size])
        bpcs, bpe_bpcs = runs["char"], runs["bpe"]
        effects.append(against("GPT test bits/char − unigram bits/char", bpcs, level,
                               direction="less"))
        effects.append(compare("byte-level BPE − characters, test bits/char", bpe_bpcs, bpcs,
                               direction="less", judged=False))
        metrics |= {"unigram_test_bpc": level, "gpt_test_bpc_mean": sum(bpcs) / len(bpcs),
                    "gpt_bpe_test_bpc_mean": sum(bpe_bpcs) / len(bpe_bpcs),
                    "bpe_vocabulary": BPE_VOCABULARY}
        parts.append({"name": "learns to write",
                      "verdict": "holds" if effects[0].decision == "supports"
                      else "does not hold at this scale", "reason": "",
                      "details": f"{sum(bpcs) / len(bpcs):.2f} bits/char against the unigram "
                                 f"model's {level:.2f}, {len(seeds)} seeds (byte-level BPE, "
                                 f"{BPE_VOCABULARY} tokens: "
                                 f"{sum(bpe_bpcs) / len(bpe_bpcs):.2f})"})

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.barh(list(parts_of_count), [v / 1e9 for v in parts_of_count.values()])
    left.set_xlabel("billions of parameters")
    left.set_title(f"GPT-3 175B, counted: {count / 1e9:.2f} B")
    if bpcs:
        right.bar(["unigram"] + [f"chars, seed {s}" for s in seeds]
                  + [f"BPE, seed {s}" for s in seeds], [level, *bpcs, *bpe_bpcs])
        right.tick_params(axis="x", labelsize=6, rotation=45)
        right.set_ylabel("test bits per character")
        right.set_title("Austen, held-out 5% of each novel")
    else:
        right.text(0.5, 0.5, "austen not installed:\ndeepatlas data get austen",
                   ha="center", va="center")
        right.set_axis_off()
    plot = save(fig, ctx.path("plot.png"))

    details = (f"GPT-3 175B's configuration has {count:,} parameters "
               f"({count / 1e9:.1f} billion). " + "; ".join(p["details"] for p in parts[1:]))
    if not count_holds:
        return Result(metrics, "the text is wrong", details, [plot], effects, seeds, parts=parts)
    trained = [e for e in effects if e.judged]
    holds = all(e.decision == "supports" for e in trained)
    return Result(metrics, "holds" if holds else "does not hold at this scale", details,
                  [plot], effects, seeds, parts=parts)
