"""Layers of the map, each written from its formula (MAP 2.1-2.3, 3.3, 4.1, 4.2, 5.1, 7.1,
7.5: ``deepatlas.nn.spiking`` and ``deepatlas.nn.quantum``)."""

from deepatlas.nn.activations import ACTIVATIONS, Swish, make_activation
from deepatlas.nn.attention import (MultiHeadAttention, scaled_dot_product_attention,
                                    sinusoidal_positional_encoding)
from deepatlas.nn.batchnorm import BatchNorm1d, BatchNorm2d
from deepatlas.nn.conv import (DeformableConv2d, DepthwiseSeparableConv2d,
                               empirical_receptive_field, receptive_field)
from deepatlas.nn.dropout import Dropout
from deepatlas.nn.graph import GATConv, GCNConv
from deepatlas.nn.init import INIT_SCHEMES, he_normal_, init_model, xavier_uniform_
from deepatlas.nn.recurrent import LSTM, LSTMCell, RNNCell
from deepatlas.nn.residual import ResidualBlock, ResidualBlockBN
from deepatlas.nn.spiking import LIF

__all__ = ["ACTIVATIONS", "BatchNorm1d", "BatchNorm2d", "DeformableConv2d",
           "DepthwiseSeparableConv2d",
           "Dropout", "GATConv", "GCNConv", "INIT_SCHEMES", "LIF", "LSTM", "LSTMCell",
           "MultiHeadAttention", "RNNCell", "ResidualBlock", "ResidualBlockBN", "Swish",
           "empirical_receptive_field", "he_normal_", "init_model", "make_activation",
           "receptive_field", "scaled_dot_product_attention", "sinusoidal_positional_encoding",
           "xavier_uniform_"]
