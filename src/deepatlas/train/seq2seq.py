"""Sequence-to-sequence training (MAP 4.2): teacher forcing, scored by exact match.

The decoder sees the target shifted right (``<bos> d1 d2 ...``) and predicts it shifted left
(``d1 d2 ... <eos>``); evaluation decodes greedily from ``<bos>`` alone and counts an answer
right only when every token matches. Writes config.toml, metrics.jsonl, summary.json, last.pt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deepatlas.config import RunConfig
from deepatlas.data.numbers import BOS, EOS, PAD, SEQ2SEQ_SOURCES
from deepatlas.models import create_model
from deepatlas.train.checkpoint import save_checkpoint
from deepatlas.train.optim import build_optimizer, build_schedule
from deepatlas.train.rundir import RunFiles, start_fresh_run
from deepatlas.train.runinfo import machine_info
from deepatlas.train.runtime import seed_everything


@torch.no_grad()
def exact_match(model, src: torch.Tensor, tgt: torch.Tensor, batch_size: int = 1000) -> float:
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


def train_seq2seq(config: RunConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    out = start_fresh_run(out_dir, resume, "sequence-to-sequence")
    seed_everything(config.seed)
    data = SEQ2SEQ_SOURCES[config.data.name]()
    options = {k: v for k, v in config.model.items() if k != "name"}
    model = create_model(config.model["name"], in_channels=len(data.src_vocab),
                         num_classes=len(data.tgt_vocab), **options)
    batch = config.train.batch_size
    steps = len(data.src_train) // batch
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_schedule(optimizer, config.schedule, steps, config.train.epochs)
    files = RunFiles(out, config)
    t0 = time.perf_counter()
    for epoch in range(1, config.train.epochs + 1):
        model.train()
        order = torch.randperm(len(data.src_train))
        total = 0.0
        for b in range(steps):
            idx = order[b * batch:(b + 1) * batch]
            src, tgt = data.src_train[idx], data.tgt_train[idx]
            logits = model(src, tgt[:, :-1])  # (B, Tt-1, V): predict the next token
            loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD,
                                   label_smoothing=config.regularize.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.train.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            total += loss.item()
        files.log({"epoch": epoch, "train_loss": total / steps,
                   "test_acc": exact_match(model, data.src_test, data.tgt_test),
                   "lr": optimizer.param_groups[0]["lr"], "wall_s": time.perf_counter() - t0})
    save_checkpoint({"recipe": config.recipe, "config": config.to_dict(),
                     "model": model.state_dict(), "epoch": config.train.epochs,
                     "history": files.history,
                     "data": {"name": data.name, "src_vocab": data.src_vocab,
                              "tgt_vocab": data.tgt_vocab}}, out / "last.pt")
    return files.summary({
        "task": config.task, "metric": "exact match of greedy decoding on held-out numbers",
        "num_params": sum(p.numel() for p in model.parameters()),
        "data": {"name": data.name, "source": data.source, "train": len(data.src_train),
                 "test": len(data.src_test)}, **machine_info(torch.device("cpu"))})
