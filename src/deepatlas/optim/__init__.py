"""The map's optimisers written from their update rules (MAP 3.2).

They are ``torch.optim.Optimizer`` subclasses, so they plug into any training loop, and they
follow torch's trajectories exactly (tested over 200 steps in float64). Training recipes select
them with ``optim.name = "sgd-plain" | "momentum" | "adam"``; torch's own fused/foreach
``sgd`` and ``adamw`` stay the fast defaults.
"""

from deepatlas.optim.adam import Adam
from deepatlas.optim.sgd import SGD, Momentum

__all__ = ["SGD", "Momentum", "Adam"]
