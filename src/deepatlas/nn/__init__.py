"""Layers and activations of the map, each written from its formula (MAP 2.1, 4.1, 5.1)."""

from deepatlas.nn.activations import ACTIVATIONS, Swish, make_activation
from deepatlas.nn.residual import ResidualBlock, ResidualBlockBN

__all__ = ["ACTIVATIONS", "Swish", "make_activation", "ResidualBlock", "ResidualBlockBN"]
