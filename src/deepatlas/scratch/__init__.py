"""Backpropagation from scratch (MAP 3.1): a small NumPy reverse-mode autograd engine.

``Tensor`` records the operation that made it; ``loss.backward()`` walks the graph from the
loss back to the inputs in reverse topological order and applies the chain rule,
``dL/dx = sum over uses y of dL/dy * dy/dx``. It runs the source's graph
input -> conv -> ReLU -> max-pool -> fully connected -> softmax cross-entropy, and its
gradients equal torch.autograd's (tests/test_scratch.py).
"""

from deepatlas.scratch.engine import Tensor
from deepatlas.scratch.functional import conv2d, cross_entropy, max_pool2d
from deepatlas.scratch.mlp import train_digits_mlp

__all__ = ["Tensor", "conv2d", "cross_entropy", "max_pool2d", "train_digits_mlp"]
