"""Translation (MAP 6.2): ``task = "translation"``, English -> Spanish with a Transformer
encoder-decoder, scored with sacreBLEU and chrF.

Training is teacher forcing with label-smoothed cross-entropy (Szegedy et al. 2016; the
Transformer paper's eps = 0.1) over a shared byte-level BPE vocabulary. Evaluation decodes,
detokenises and scores with the ``sacrebleu`` library (never a hand-rolled BLEU), on
whole held-out chapters:

- every evaluation: greedy decoding of the validation chapters (``val_bleu`` chooses best.pt);
- at the end (``finish``): the test chapters with greedy decoding and with beam search (beam
  4, GNMT length penalty 0.6), BLEU and chrF for each, with sacreBLEU's signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.tokenize import BPETokenizer, Tokenizer, tokenizer_from_json
from deepatlas.data.translation import (BOS, EOS, PAD, SPECIAL, LengthBatches, Pairs,
                                        encode_pairs, load_pairs, pad)
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task

BEAM, LENGTH_PENALTY = 4, 0.6


def cut_at_end(ids: list[int]) -> list[int]:
    """The tokens before the first ``<eos>``, without padding."""
    if EOS in ids:
        ids = ids[:ids.index(EOS)]
    return [i for i in ids if i not in (PAD, BOS)]


@torch.no_grad()
def translate_ids(model: nn.Module, src: list[list[int]], max_len: int, beam: int = 1,
                  batch_size: int = 64, device: torch.device = torch.device("cpu")
                  ) -> list[list[int]]:
    """Output token ids per source row: greedy (``beam`` 1) or beam search. Rows are decoded
    in batches of similar length."""
    model.eval()
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    out: list[list[int]] = [[] for _ in src]
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        batch = pad([src[j] for j in rows]).to(device)
        limit = min(max_len - 1, int(batch.shape[1] * 1.5) + 10)  # Spanish runs a bit longer
        if beam == 1:
            ids = model.greedy_decode(batch, BOS, EOS, limit)
        else:
            ids = model.beam_search(batch, BOS, EOS, limit, beam, LENGTH_PENALTY)
        for j, row in zip(rows, ids.tolist()):
            out[j] = cut_at_end(row)
    return out


def bleu_and_chrf(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """sacreBLEU's corpus BLEU and chrF on detokenised text, with their signatures."""
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    return {"bleu": bleu.corpus_score(hypotheses, [references]).score,
            "chrf": chrf.corpus_score(hypotheses, [references]).score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


_VOCABULARIES: dict[tuple[int, int, int], str] = {}  # (pairs, hash, size) -> tokenizer JSON


def shared_vocabulary(train: Pairs, vocab_size: int) -> Tokenizer:
    """One BPE vocabulary for both languages, fitted to the training verses; remembered in
    this process, so that a lab experiment's many runs on the same verses fit it once."""
    key = (len(train.en), hash((tuple(train.en[:50]), tuple(train.es[-50:]))), vocab_size)
    if key not in _VOCABULARIES:
        _VOCABULARIES[key] = BPETokenizer.train(train.en + train.es, vocab_size,
                                                special=SPECIAL).to_json()
    return tokenizer_from_json(_VOCABULARIES[key])


class Translation(Task):
    name = "translation"
    uses = {"data.vocab_size", "data.tokenizer", "train.eval_batch_size",
            "train.limit_eval_examples", "regularize.label_smoothing"}
    monitor = ("val_bleu", "max")
    primary = "test_bleu_beam"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        if cfg.data.tokenizer != "bpe":
            raise UserError("the translation task uses a shared BPE vocabulary: set "
                            "data.tokenizer=\"bpe\"")
        self.splits, self.source = load_pairs(cfg.data.dir, cfg.data.download)
        train = self.splits["train"]
        self.tokenizer: Tokenizer = shared_vocabulary(train, cfg.data.vocab_size)
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        vocab = self.tokenizer.vocab_size
        model = create_model(cfg.model["name"], in_channels=vocab, num_classes=vocab, **options)
        self.max_len = model.pe.shape[0]
        self.models = {"model": model.to(ctx.device)}
        self.encoded = {s: encode_pairs(self.tokenizer, p, self.max_len)
                        for s, p in self.splits.items()}
        src, tgt = self.encoded["train"]
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = LengthBatches(src, tgt, per_rank, seed=cfg.seed, rank=ctx.dist.rank,
                                          world_size=ctx.dist.world_size)
        self.device, self.is_main = ctx.device, ctx.is_main

    def training_step(self, batch: Any, group: str) -> StepOutput:
        src, tgt = batch  # (B, Ts), (B, Tt): <bos> ... <eos>
        logits = self.train_models["model"](src, tgt[:, :-1])  # (B, Tt-1, V): the next token
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(),
                               ignore_index=PAD,
                               label_smoothing=self.config.regularize.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach()}, n=len(src))

    def _held_out(self, split: str) -> tuple[list[list[int]], list[list[int]], list[str]]:
        """(source ids, target ids, reference texts), cut to ``train.limit_eval_examples``."""
        src, tgt = self.encoded[split]
        n = self.config.train.limit_eval_examples or len(src)
        return src[:n], tgt[:n], self.splits[split].es[:n]

    def _score(self, model: nn.Module, split: str, beam: int) -> dict[str, Any]:
        src, _, refs = self._held_out(split)
        ids = translate_ids(model, src, self.max_len, beam, self.config.train.eval_batch_size,
                            self.device)
        return bleu_and_chrf([self.tokenizer.decode(i) for i in ids], refs)

    @torch.no_grad()
    def _teacher_forced_loss(self, model: nn.Module, split: str) -> float:
        """Mean cross-entropy per target token (no label smoothing): the curve's held-out
        point, cheap next to decoding."""
        src, tgt, _ = self._held_out(split)
        model.eval()
        total, count, size = 0.0, 0, self.config.train.eval_batch_size
        for i in range(0, len(src), size):
            s, t = pad(src[i:i + size]).to(self.device), pad(tgt[i:i + size]).to(self.device)
            logits = model(s, t[:, :-1])  # (B, Tt-1, V)
            total += float(F.cross_entropy(logits.flatten(0, 1).float(), t[:, 1:].flatten(),
                                           ignore_index=PAD, reduction="sum"))
            count += int((t[:, 1:] != PAD).sum())
        return total / max(1, count)

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        scores = self._score(models["model"], "val", beam=1)
        return {"val_loss": self._teacher_forced_loss(models["model"], "val"),
                "val_bleu": scores["bleu"], "val_chrf": scores["chrf"]}

    def finish(self, history: list[dict[str, float]], models: dict[str, nn.Module]
               ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for beam, name in ((1, "greedy"), (BEAM, "beam")):
            scores = self._score(models["model"], "test", beam)
            out |= {f"test_bleu_{name}": scores["bleu"], f"test_chrf_{name}": scores["chrf"]}
            out["sacrebleu"] = {"bleu": scores["bleu_signature"],
                                "chrf": scores["chrf_signature"]}
        out["decoding"] = {"beam": BEAM, "length_penalty": LENGTH_PENALTY}
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": "bible-en-es", "tokenizer": self.tokenizer.to_json(),
                "max_len": self.max_len}

    def data_summary(self) -> dict[str, Any]:
        return {"name": "bible-en-es", "source": self.source,
                "vocab_size": self.tokenizer.vocab_size,
                **{s: len(p.refs) for s, p in self.splits.items()},
                "split": "whole chapters, dealt round-robin into 20 groups: group 7 "
                         "validates, group 13 tests"}


def load_translator(run_or_file: str | Path) -> tuple[nn.Module, Tokenizer, int]:
    """(model in eval mode, tokeniser, max_len) of a translation run."""
    from deepatlas.tasks.text_runs import load_text_run

    model, tokenizer, state = load_text_run(
        run_or_file, Translation.name, "translate reads `deepatlas train translate-en-es` runs",
        source_vocabulary=True)
    return model, tokenizer, state["data"]["max_len"]
