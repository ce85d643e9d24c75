"""An MLP trained with nothing but the scratch engine and NumPy, on the bundled digits."""

from __future__ import annotations

import numpy as np

from deepatlas.scratch.engine import Tensor
from deepatlas.scratch.functional import cross_entropy


def train_digits_mlp(hidden: int = 64, epochs: int = 30, lr: float = 0.1, batch_size: int = 32,
                     seed: int = 0) -> float:
    """Train 64 -> hidden -> 10 with SGD on the digits train split; return test accuracy."""
    from deepatlas.data import load_data

    data = load_data("digits")
    x_train = data.train.images.flatten(1).double().numpy() / 255.0  # (1437, 64)
    y_train = data.train.labels.numpy()
    x_test = data.test.images.flatten(1).double().numpy() / 255.0
    rng = np.random.default_rng(seed)
    # He initialisation (MAP 2.3): N(0, 2 / n_in)
    w1 = Tensor(rng.normal(0, np.sqrt(2 / 64), (64, hidden)), requires_grad=True)
    b1 = Tensor(np.zeros(hidden), requires_grad=True)
    w2 = Tensor(rng.normal(0, np.sqrt(2 / hidden), (hidden, 10)), requires_grad=True)
    b2 = Tensor(np.zeros(10), requires_grad=True)
    params = [w1, b1, w2, b2]

    def forward(x: np.ndarray) -> Tensor:
        return ((Tensor(x) @ w1 + b1).relu() @ w2) + b2  # (B, 10) logits

    for _ in range(epochs):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = cross_entropy(forward(x_train[batch]), y_train[batch])
            for p in params:
                p.grad = None
            loss.backward()
            for p in params:
                p.data -= lr * p.grad  # SGD: W <- W - lr dL/dW
    predictions = forward(x_test).data.argmax(axis=1)
    return float((predictions == data.test.labels.numpy()).mean())
