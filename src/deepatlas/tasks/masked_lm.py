"""BERT pretraining (MAP 6.2): ``task = "masked-lm"``, masked language modelling on unlabelled
text (``data/sentiment.py``: the Austen novels and the rt-snippets training sentences).

The loss is the cross-entropy at the chosen positions only (``data/mlm.py``: 15%, replaced
80/10/10), ``-1/|M| sum_(t in M) log p(x_t | masked x)``. Evaluation scores held-out text
masked once with a fixed seed: ``val_loss`` (picks best.pt) and ``val_mlm_acc``, the share of
chosen positions whose original token is the top prediction. There is no test split here:
the test is the downstream one, after fine-tuning (``task = "classify-text"`` with
``train.init_from``).

The BPE vocabulary is fitted to the rt-snippets training sentences alone, as the from-scratch
baseline's is, so the two read identical tokens and their comparison measures pretraining
only. Fitted to the pretraining text instead, where Austen's novels choose most merges, a
4,000-token vocabulary cuts the test sentences into 1.67 tokens per word instead of 1.55.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.mlm import IGNORE, SequenceBatches, eval_masking
from deepatlas.data.sentiment import (MASK, SPECIAL, load_sentiment, pretraining_text,
                                      sequences)
from deepatlas.data.tokenize import BPETokenizer, Tokenizer
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.distributed import all_reduce_sum


def mlm_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss over the chosen positions, their count, how many the model got right); a
    batch with no chosen position has loss 0, not NaN."""
    chosen = labels != IGNORE  # (B, T)
    logits = model(inputs, head="mlm", select=chosen)  # (N, V): chosen positions only
    targets = labels[chosen]  # (N,)
    count = chosen.sum()
    total = F.cross_entropy(logits.float(), targets, reduction="sum")
    correct = (logits.argmax(-1) == targets).sum()
    return total / count.clamp(min=1), count, correct


def bert_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Lower-cased byte-level BPE with BERT's special tokens at ids 0..3."""
    return BPETokenizer.train(texts, vocab_size, special=SPECIAL, lowercase=True)


class MaskedLM(Task):
    name = "masked-lm"
    uses = {"data.vocab_size", "data.in_domain_repeats", "train.eval_batch_size"}
    monitor = ("val_loss", "min")
    primary = "val_mlm_acc"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        if cfg.data.name != "austen+rt-snippets":
            raise UserError(f"masked-lm pretrains on data.name=\"austen+rt-snippets\", not "
                            f"{cfg.data.name!r}")
        text = pretraining_text(cfg.data.dir, cfg.data.download, cfg.data.in_domain_repeats)
        # The baseline's vocabulary (module docstring): the downstream training sentences.
        downstream = load_sentiment(cfg.data.dir, cfg.data.download)["train"].texts
        self.tokenizer = bert_tokenizer(downstream, cfg.data.vocab_size)
        vocab = self.tokenizer.vocab_size
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], in_channels=vocab, **options)
        self.context = model.cfg.context
        self.models = {"model": model.to(ctx.device)}
        self.masking = {"mask_id": MASK, "first_ordinary": len(SPECIAL), "vocab_size": vocab}
        rows = {s: sequences(self.tokenizer, t, self.context) for s, t in text.items()}
        self.sizes = {f"{s}_sequences": len(r) for s, r in rows.items()}
        self.sizes |= {f"{s}_tokens": sum(map(len, r)) for s, r in rows.items()}
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = SequenceBatches(rows["train"], per_rank, masking=self.masking,
                                            seed=cfg.seed, rank=ctx.dist.rank,
                                            world_size=ctx.dist.world_size)
        self.val = eval_masking(rows["val"], cfg.train.eval_batch_size, self.masking)
        self.device, self.dist = ctx.device, ctx.dist

    def training_step(self, batch: Any, group: str) -> StepOutput:
        inputs, labels = batch  # (B, T) corrupted ids, (B, T) originals at chosen positions
        loss, count, correct = mlm_loss(self.train_models["model"], inputs, labels)
        return StepOutput(loss, {"loss": loss.detach(),
                                 "mlm_acc": correct.float() / count.clamp(min=1)},
                          n=len(inputs))

    @torch.no_grad()
    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        model = models["model"].eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # nats, chosen, right
        for inputs, labels in self.val[self.dist.rank::self.dist.world_size]:
            inputs, labels = inputs.to(self.device), labels.to(self.device)
            loss, count, correct = mlm_loss(model, inputs, labels)
            sums += torch.stack([loss * count, count, correct]).double()
        nats, count, correct = all_reduce_sum(sums, self.dist).tolist()
        return {"val_loss": nats / max(1, count), "val_mlm_acc": correct / max(1, count)}

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.config.data.name, "tokenizer": self.tokenizer.to_json(),
                "context": self.context}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.config.data.name, "vocab_size": self.tokenizer.vocab_size,
                **self.sizes,
                "split": "the novels' first 90% and rt-snippets' training sentences pretrain; "
                         "the novels' next 5% and the validation sentences validate"}
