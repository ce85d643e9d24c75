"""Language modelling (MAP 6.2): ``task = "language-model"``, a GPT that predicts the next token.

Training minimises the token cross-entropy ``-1/T sum_t log p(x_{t+1} | x_<=t)`` on random
windows of the training text. Evaluation runs the held-out text in consecutive windows and
reports, per split:

- ``loss``: nats per token (depends on the tokeniser);
- ``bpc``: bits per character, ``loss * tokens / characters / ln 2``, which compares across
  tokenisers (a character model and a BPE model of the same text);
- ``nats_per_char``: the same in nats (the char-level target of 1.6 is in these units).

The validation split chooses best.pt; the test split is reported only. ``deepatlas generate``
continues a prompt from a trained run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.corpus import TokenWindows, eval_windows, load_corpus
from deepatlas.data.tokenize import Tokenizer, train_tokenizer
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.distributed import all_reduce_sum


@torch.no_grad()
def held_out_loss(model: nn.Module, tokens: torch.Tensor, context: int, batch_size: int,
                  rank: int = 0, world_size: int = 1) -> tuple[float, int]:
    """(summed nats, tokens predicted) over ``tokens`` cut into windows of ``context``; rank
    ``r`` takes windows ``r, r + W, ...``."""
    model.eval()
    windows = eval_windows(tokens, context)[rank::world_size]  # (N, T + 1)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        w = windows[i:i + batch_size]
        logits = model(w[:, :-1])  # (B, T, V)
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), w[:, 1:].flatten(),
                                       reduction="sum"))
        count += w[:, 1:].numel()
    return total, count


class LanguageModel(Task):
    name = "language-model"
    uses = {"data.tokenizer", "data.vocab_size", "train.eval_batch_size"}
    monitor = ("val_loss", "min")
    primary = "test_bpc"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        self.corpus = corpus = load_corpus(cfg.data.name, cfg.data.dir, cfg.data.download)
        self.tokenizer: Tokenizer = train_tokenizer(cfg.data.tokenizer, corpus.train,
                                                    cfg.data.vocab_size)
        self.tokens = {split: torch.tensor(self.tokenizer.encode(getattr(corpus, split)))
                       for split in ("train", "val", "test")}
        short = [f"{split} ({len(t)})" for split, t in self.tokens.items() if len(t) < 2]
        if short:
            raise UserError(f"{corpus.name}: too few tokens to predict one in "
                            f"{', '.join(short)}; the split needs at least 2")
        # characters per token of each split: turns nats/token into nats/char
        self.chars_per_token = {s: len(getattr(corpus, s)) / max(1, len(t))
                                for s, t in self.tokens.items()}
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], num_classes=self.tokenizer.vocab_size, **options)
        self.context = model.cfg.context
        self.models = {"model": model.to(ctx.device)}
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = TokenWindows(self.tokens["train"], per_rank, self.context,
                                         seed=cfg.seed, device=ctx.device, rank=ctx.dist.rank,
                                         world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} windows of "
                            f"{self.context} tokens exceed the {len(self.tokens['train'])} "
                            "training tokens; lower the batch size or model.context")
        self.device, self.dist = ctx.device, ctx.dist

    def training_step(self, batch: torch.Tensor, group: str) -> StepOutput:
        x, y = batch[:, :-1], batch[:, 1:]  # (B, T): each token predicts the next
        logits = self.train_models["model"](x)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        return StepOutput(loss, {"loss": loss.detach()}, n=len(batch))

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        metrics = {}
        for split in ("val", "test"):
            total, count = held_out_loss(models["model"], self.tokens[split].to(self.device),
                                         self.context, self.config.train.eval_batch_size,
                                         self.dist.rank, self.dist.world_size)
            total, count = all_reduce_sum(torch.tensor([total, count], dtype=torch.float64,
                                                       device=self.device), self.dist).tolist()
            loss = total / max(1, count)
            per_char = loss / self.chars_per_token[split]
            metrics |= {f"{split}_loss": loss, f"{split}_nats_per_char": per_char,
                        f"{split}_bpc": per_char / math.log(2)}
        return metrics

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.corpus.name, "tokenizer": self.tokenizer.to_json(),
                "context": self.context}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.corpus.name, "source": self.corpus.source,
                "tokenizer": self.tokenizer.kind, "vocab_size": self.tokenizer.vocab_size,
                **{f"{s}_tokens": len(t) for s, t in self.tokens.items()},
                **{f"{s}_chars": len(getattr(self.corpus, s)) for s in self.tokens},
                "split": "each novel: first 90% train, next 5% val, last 5% test"}


def load_generator(run_or_file: str | Path) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """(GPT in eval mode with its inference weights, tokeniser, checkpoint) of a
    language-model run."""
    from deepatlas.tasks.text_runs import load_text_run

    return load_text_run(run_or_file, LanguageModel.name, "generate continues text from "
                         "`deepatlas train gpt-*` runs")
