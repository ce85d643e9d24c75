"""Graphs for node classification (MAP 2.2): real graphs that ship inside a package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepatlas.errors import unknown_name


@dataclass
class GraphData:
    name: str
    x: torch.Tensor  # (N, F) node features
    edge_index: torch.Tensor  # (2, E) source -> target, both directions for undirected edges
    y: torch.Tensor  # (N,) node labels
    train_mask: torch.Tensor  # (N,) bool: the labels the model may see
    test_mask: torch.Tensor  # (N,) bool: the rest
    classes: list[str]
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_karate(train_per_class: int = 1, **_: object) -> GraphData:
    """Zachary's karate club (networkx): 34 members, 78 friendships, and the two clubs the
    club split into. Features are one-hot node ids (no side information, as in Kipf and
    Welling's karate demo). The training labels are the two leaders (node 0, "Mr. Hi", and
    node 33, "Officer") plus the lowest-numbered other members up to ``train_per_class`` per
    club; every other member is a test node."""
    import networkx as nx

    graph = nx.karate_club_graph()
    classes = ["Mr. Hi", "Officer"]
    y = torch.tensor([classes.index(graph.nodes[i]["club"]) for i in graph.nodes])
    edges = torch.tensor(list(graph.edges)).T  # (2, 78)
    edge_index = torch.cat([edges, edges.flip(0)], dim=1)  # both directions: (2, 156)
    train = torch.zeros(len(y), dtype=torch.bool)
    train[[0, 33]] = True
    for c in range(2):
        for i in (y == c).nonzero().flatten().tolist():
            if int(train[y == c].sum()) >= train_per_class:
                break
            train[i] = True
    return GraphData("karate", torch.eye(len(y)), edge_index, y, train, ~train, classes,
                     source=f"networkx {nx.__version__}: karate_club_graph()")


GRAPH_SOURCES: dict[str, Callable[..., GraphData]] = {"karate": load_karate}


def load_graph(name: str) -> GraphData:
    if name not in GRAPH_SOURCES:
        raise unknown_name("graph data set", name, GRAPH_SOURCES)
    return GRAPH_SOURCES[name]()
