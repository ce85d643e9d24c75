"""Node classification on one graph (MAP 2.2): full-batch training of a GCN or GAT.

The whole graph goes through the model every step; the loss sees only the training nodes'
labels, and accuracy is measured on the others. Writes the same run directory as the image
Trainer: config.toml, metrics.jsonl (every 20 epochs), summary.json and last.pt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deepatlas.config import RunConfig
from deepatlas.data.graphs import load_graph
from deepatlas.models import create_model
from deepatlas.train.checkpoint import save_checkpoint
from deepatlas.train.optim import build_optimizer
from deepatlas.train.rundir import RunFiles, start_fresh_run
from deepatlas.train.runinfo import machine_info
from deepatlas.train.runtime import seed_everything


def train_nodes(config: RunConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    out = start_fresh_run(out_dir, resume, "node-classification")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 34-node graph: threads only add synchronisation
    try:
        return _train(config, out)
    finally:
        torch.set_num_threads(threads)


def _train(config: RunConfig, out: Path) -> dict[str, Any]:
    seed_everything(config.seed)
    graph = load_graph(config.data.name)
    options = {k: v for k, v in config.model.items() if k != "name"}
    model = create_model(config.model["name"], in_channels=graph.x.shape[1],
                         num_classes=graph.num_classes, **options)
    optimizer = build_optimizer(model, config.optim)
    files = RunFiles(out, config)
    t0 = time.perf_counter()
    test = graph.test_mask
    for epoch in range(1, config.train.epochs + 1):
        model.train()
        logits = model(graph.x, graph.edge_index)  # (N, K): every node, every step
        loss = F.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask],
                               label_smoothing=config.regularize.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(graph.x, graph.edge_index)
        if epoch % 20 == 0 or epoch == config.train.epochs:
            files.log({"epoch": epoch, "train_loss": loss.item(),
                       "test_loss": F.cross_entropy(logits[test], graph.y[test]).item(),
                       "test_acc": (logits[test].argmax(1) == graph.y[test]).float().mean().item(),
                       "lr": optimizer.param_groups[0]["lr"], "wall_s": time.perf_counter() - t0})
    save_checkpoint({"recipe": config.recipe, "config": config.to_dict(),
                     "model": model.state_dict(), "epoch": config.train.epochs,
                     "history": files.history,
                     "data": {"name": graph.name, "classes": graph.classes}}, out / "last.pt")
    return files.summary({
        "task": config.task, "num_params": sum(p.numel() for p in model.parameters()),
        "data": {"name": graph.name, "source": graph.source,
                 "train": int(graph.train_mask.sum()), "test": int(test.sum())},
        **machine_info(torch.device("cpu"))})
