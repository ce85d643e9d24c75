"""Layers of the map, each written from its formula (MAP 2.1, 2.3, 3.3, 4.1, 5.1)."""

from deepatlas.nn.activations import ACTIVATIONS, Swish, make_activation
from deepatlas.nn.dropout import Dropout
from deepatlas.nn.graph import GATConv, GCNConv
from deepatlas.nn.init import INIT_SCHEMES, he_normal_, init_model, xavier_uniform_
from deepatlas.nn.recurrent import LSTM, LSTMCell, RNNCell
from deepatlas.nn.residual import ResidualBlock, ResidualBlockBN

__all__ = ["ACTIVATIONS", "Dropout", "GATConv", "GCNConv", "INIT_SCHEMES", "LSTM", "LSTMCell",
           "RNNCell", "ResidualBlock", "ResidualBlockBN",
           "Swish", "he_normal_", "init_model", "make_activation", "xavier_uniform_"]
