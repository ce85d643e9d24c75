"""Node classification on one graph (MAP 2.2): ``task = "classify-nodes"``, a GCN or GAT.

The whole graph goes through the model every step (one step is one epoch); the loss
``CE(softmax(Z)[train], y[train])`` sees only the training nodes' labels, and accuracy is
measured on the others. Zachary's karate club trains on its two leaders alone, so there is no
validation split to carve: the run trains a fixed budget and best.pt is not chosen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.graphs import GraphData, load_graph
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task


class WholeGraph:
    """The training loader of a graph: one batch per epoch, the graph itself."""

    def __init__(self, graph: GraphData) -> None:
        self.graph = graph

    def __len__(self) -> int:
        return 1

    def set_epoch(self, epoch: int) -> None:
        pass

    def iterate(self, start: int = 0):
        if start == 0:
            yield self.graph.x, self.graph.edge_index


class ClassifyNodes(Task):
    name = "classify-nodes"
    uses = {"regularize.label_smoothing"}
    monitor = None  # the test nodes are all the unlabelled ones: nothing to validate on
    primary = "test_acc"
    max_threads = 1  # a 34-node graph: a second thread only adds synchronisation

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        self.graph = g = load_graph(cfg.data.name)
        for name in ("x", "edge_index", "y", "train_mask", "test_mask"):
            setattr(g, name, getattr(g, name).to(ctx.device))
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        self.models = {"model": create_model(cfg.model["name"], in_channels=g.x.shape[1],
                                             num_classes=g.num_classes, **options)}
        self.train_loader = WholeGraph(g)

    def training_step(self, batch: Any, group: str) -> StepOutput:
        x, edge_index = batch
        g = self.graph
        logits = self.train_models["model"](x, edge_index)  # (N, K): every node, every step
        loss = F.cross_entropy(logits[g.train_mask].float(), g.y[g.train_mask],
                               label_smoothing=self.config.regularize.label_smoothing)
        return StepOutput(loss, {"loss": loss.detach()}, n=1)

    @torch.no_grad()
    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        g, test = self.graph, self.graph.test_mask
        logits = models["model"](g.x, g.edge_index).float()
        return {"test_loss": F.cross_entropy(logits[test], g.y[test]).item(),
                "test_acc": (logits[test].argmax(1) == g.y[test]).float().mean().item()}

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.graph.name, "classes": self.graph.classes}

    def data_summary(self) -> dict[str, Any]:
        g = self.graph
        return {"name": g.name, "source": g.source, "train": int(g.train_mask.sum()),
                "test": int(g.test_mask.sum()), "val": 0}
