"""Sequence to sequence (MAP 4.2): ``task = "seq2seq"``, teacher forcing, scored by exact match.

The decoder sees the target shifted right (``<bos> d1 d2 ...``) and predicts it shifted left
(``d1 d2 ... <eos>``); the loss is the token cross-entropy ``-sum_t log p(y_t | y_<t, x)``.
Evaluation decodes greedily from ``<bos>`` alone and counts an answer right only when every
token matches. The validation split (``data.val_fraction`` of the training pairs, seeded)
chooses best.pt; the held-out test numbers are for reporting only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.loaders import TensorBatches
from deepatlas.data.numbers import BOS, EOS, PAD, SEQ2SEQ_SOURCES
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task

VAL_SPLIT_SEED = 0  # the validation split never moves with the run's seed


@torch.no_grad()
def exact_match(model: nn.Module, src: torch.Tensor, tgt: torch.Tensor,
                batch_size: int = 1000) -> float:
    """Share of sequences whose greedy decoding equals the target up to ``<eos>``."""
    model.eval()
    right = 0
    for i in range(0, len(src), batch_size):
        s, t = src[i:i + batch_size], tgt[i:i + batch_size, 1:]  # drop <bos>
        out = model.greedy_decode(s, BOS, EOS, t.shape[1])
        out = F.pad(out, (0, t.shape[1] - out.shape[1]), value=PAD)
        after_end = (out == EOS).long().cumsum(1).cumsum(1) > 1  # tokens after the first <eos>
        out = out.masked_fill(after_end, PAD)
        right += int((out == t).all(1).sum())
    return right / len(src)


class Seq2Seq(Task):
    name = "seq2seq"
    uses = {"data.val_fraction", "train.eval_batch_size", "regularize.label_smoothing"}
    monitor = ("val_exact_match", "max")
    primary = "test_exact_match"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        self.data = data = SEQ2SEQ_SOURCES[cfg.data.name]()
        n = len(data.src_train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        n_val = round(n * cfg.data.val_fraction)
        val, train = order[:n_val], order[n_val:]
        self.splits = {"val": (data.src_train[val], data.tgt_train[val]),
                       "test": (data.src_test, data.tgt_test)}
        if n_val == 0:
            del self.splits["val"]
            self.monitor = None
        self.train_size = len(train)
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        self.models = {"model": create_model(cfg.model["name"], in_channels=len(data.src_vocab),
                                             num_classes=len(data.tgt_vocab),
                                             **options).to(ctx.device)}
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = TensorBatches(data.src_train[train], data.tgt_train[train],
                                          batch_size=per_rank, seed=cfg.seed, device=ctx.device,
                                          rank=ctx.dist.rank, world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{self.train_size} training pairs; lower it")
        self.device = ctx.device

    def training_step(self, batch: Any, group: str) -> StepOutput:
        src, tgt = batch  # (B, Ts), (B, Tt)
        logits = self.train_models["model"](src, tgt[:, :-1])  # (B, Tt-1, V): the next token
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(),
                               ignore_index=PAD,
                               label_smoothing=self.config.regularize.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach()}, n=len(src))

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        size = self.config.train.eval_batch_size
        return {f"{split}_exact_match": exact_match(models["model"], src.to(self.device),
                                                    tgt.to(self.device), size)
                for split, (src, tgt) in self.splits.items()}

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.data.name, "src_vocab": self.data.src_vocab,
                "tgt_vocab": self.data.tgt_vocab}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.data.name, "source": self.data.source, "train": self.train_size,
                "val": len(self.splits["val"][0]) if "val" in self.splits else 0,
                "test": len(self.data.src_test), "val_fraction": self.config.data.val_fraction}
