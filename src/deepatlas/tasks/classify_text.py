"""Sentence classification (MAP 6.2): ``task = "classify-text"``, a BERT fine-tuned (or trained
from scratch) for the polarity of rt-snippets sentences (``data/sentiment.py``).

- ``train.init_from = "RUN"``: fine-tuning. The tokeniser and every encoder weight come from a
  ``masked-lm`` run; the pooler and classifier start fresh. The model's options must equal the
  pretrained run's, but for ``dropout`` and ``pool`` (what the classifier reads).
- ``train.init_from = ""``: from scratch, with a BPE vocabulary fitted to the training
  sentences alone: the same vocabulary a masked-lm run fits, so both arms read the same tokens.

One step is cross-entropy on the [CLS] classifier. ``val_acc`` picks best.pt; ``test_acc`` is
reported only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.mlm import SequenceBatches, pad
from deepatlas.data.sentiment import SPLIT_RULE, load_sentiment, sequences
from deepatlas.data.tokenize import Tokenizer, tokenizer_from_json
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.tasks.masked_lm import MaskedLM, bert_tokenizer
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.distributed import all_reduce_sum

CLASSES = ["negative", "positive"]


def pretrained_encoder(run_or_file: str, model_options: dict[str, Any]
                       ) -> tuple[Tokenizer, dict[str, torch.Tensor], str]:
    """(tokeniser, encoder weights, path) of a masked-lm run, after checking that its model
    is the one this recipe builds."""
    from deepatlas.models.saved import inference_weights
    from deepatlas.train.checkpoint import load_pretrained

    state, path = load_pretrained(run_or_file, MaskedLM.name, "deepatlas train bert-pretrain",
                                  model_options, ignore=("dropout", "pool"))
    weights = {k: v for k, v in inference_weights(state).items()
               if not k.startswith(("pooler.", "classifier."))}
    return tokenizer_from_json(state["data"]["tokenizer"]), weights, str(path)


class ClassifyText(Task):
    name = "classify-text"
    uses = {"data.vocab_size", "train.eval_batch_size", "train.init_from",
            "regularize.label_smoothing"}
    monitor = ("val_acc", "max")
    primary = "test_acc"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        if cfg.data.name != "rt-snippets":
            raise UserError(f"classify-text reads data.name=\"rt-snippets\", not "
                            f"{cfg.data.name!r}")
        self.splits = load_sentiment(cfg.data.dir, cfg.data.download)
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        self.pretrained = ""
        if cfg.train.init_from:
            self.tokenizer, weights, self.pretrained = pretrained_encoder(
                cfg.train.init_from, cfg.model)
        else:
            self.tokenizer = bert_tokenizer(self.splits["train"].texts, cfg.data.vocab_size)
        model = create_model(cfg.model["name"], in_channels=self.tokenizer.vocab_size,
                             num_classes=len(CLASSES), **options)
        if self.pretrained:
            missing, unexpected = model.load_state_dict(weights, strict=False)
            assert not unexpected and all(k.startswith(("pooler.", "classifier."))
                                          for k in missing), (missing, unexpected)
        self.context = model.cfg.context
        self.models = {"model": model.to(ctx.device)}
        # A sentence longer than the context keeps its first context - 2 tokens.
        self.rows = {s: sequences(self.tokenizer, p.texts, self.context, first_only=True)
                     for s, p in self.splits.items()}
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = SequenceBatches(self.rows["train"], per_rank,
                                            labels=self.splits["train"].labels, seed=cfg.seed,
                                            rank=ctx.dist.rank, world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} exceeds the "
                            f"{len(self.rows['train'])} training sentences; lower it")
        self.device, self.dist = ctx.device, ctx.dist

    def training_step(self, batch: Any, group: str) -> StepOutput:
        tokens, labels = batch  # (B, T), (B,)
        logits = self.train_models["model"](tokens)  # (B, 2)
        loss = F.cross_entropy(logits.float(), labels,
                               label_smoothing=self.config.regularize.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach(),
                                 "acc": (logits.argmax(1) == labels).float().mean()},
                          n=len(labels))

    @torch.no_grad()
    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        model, out = models["model"].eval(), {}
        size = self.config.train.eval_batch_size
        for split in ("val", "test"):
            rows, labels = self.rows[split], self.splits[split].labels
            mine = range(self.dist.rank * size, len(rows), size * self.dist.world_size)
            sums = torch.zeros(3, dtype=torch.float64, device=self.device)
            for i in mine:
                y = torch.tensor(labels[i:i + size], device=self.device)
                logits = model(pad(rows[i:i + size]).to(self.device)).float()
                sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"),
                                     (logits.argmax(1) == y).sum(),
                                     torch.tensor(len(y), device=self.device)]).double()
            nats, right, n = all_reduce_sum(sums, self.dist).tolist()
            out |= {f"{split}_loss": nats / max(1, n), f"{split}_acc": right / max(1, n)}
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": "rt-snippets", "classes": CLASSES, "context": self.context,
                "tokenizer": self.tokenizer.to_json()}

    def data_summary(self) -> dict[str, Any]:
        return {"name": "rt-snippets", "vocab_size": self.tokenizer.vocab_size,
                **{s: len(p.labels) for s, p in self.splits.items()},
                "positive_share": {s: sum(p.labels) / max(1, len(p.labels))
                                   for s, p in self.splits.items()},
                "split": SPLIT_RULE, "pretrained": self.pretrained or "none (from scratch)"}


def classify_sentences(run_or_file: str, texts: list[str]) -> list[tuple[str, float]]:
    """(label, its probability) for each text, from a classify-text run."""
    from deepatlas.tasks.text_runs import load_text_run

    model, tokenizer, state = load_text_run(
        run_or_file, ClassifyText.name, "predict on sentences reads `deepatlas train "
        "bert-sentiment` runs", source_vocabulary=True, num_classes=len(CLASSES))
    rows = sequences(tokenizer, texts, state["data"]["context"], first_only=True)
    with torch.no_grad():
        probs = model(pad(rows)).softmax(1)  # (N, 2)
    return [(CLASSES[int(p.argmax())], float(p.max())) for p in probs]
