"""The Tensor and its elementwise and matrix operations.

Each operation returns a new Tensor holding its inputs (``parents``) and a ``_backward``
closure that, given dL/d(output) in ``out.grad``, adds dL/d(input) to each input's ``grad``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    def __init__(self, data, requires_grad: bool = False, parents: tuple["Tensor", ...] = (),
                 op: str = "") -> None:
        self.data = np.asarray(data, dtype=np.float64)
        self.requires_grad = requires_grad or any(p.requires_grad for p in parents)
        self.grad: np.ndarray | None = None
        self.parents = parents
        self.op = op
        self._backward: Callable[[], None] = lambda: None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Tensor(shape={self.shape}, op={self.op or 'leaf'})"

    def _accumulate(self, grad: np.ndarray) -> None:
        if self.requires_grad:
            self.grad = grad if self.grad is None else self.grad + grad

    # ------------------------------------------------------------------ operations

    def __add__(self, other: "Tensor") -> "Tensor":
        out = Tensor(self.data + other.data, parents=(self, other), op="add")

        def backward() -> None:  # d(a + b)/da = d(a + b)/db = 1
            self._accumulate(_unbroadcast(out.grad, self.shape))
            other._accumulate(_unbroadcast(out.grad, other.shape))

        out._backward = backward
        return out

    def __mul__(self, other: "Tensor") -> "Tensor":
        out = Tensor(self.data * other.data, parents=(self, other), op="mul")

        def backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self._accumulate(_unbroadcast(out.grad * other.data, self.shape))
            other._accumulate(_unbroadcast(out.grad * self.data, other.shape))

        out._backward = backward
        return out

    def __matmul__(self, other: "Tensor") -> "Tensor":
        out = Tensor(self.data @ other.data, parents=(self, other), op="matmul")

        def backward() -> None:  # Y = A B: dL/dA = dL/dY B^T, dL/dB = A^T dL/dY
            self._accumulate(out.grad @ other.data.T)
            other._accumulate(self.data.T @ out.grad)

        out._backward = backward
        return out

    def relu(self) -> "Tensor":
        out = Tensor(np.maximum(self.data, 0), parents=(self,), op="relu")

        def backward() -> None:  # d max(0, x)/dx = 1 where x > 0, else 0
            self._accumulate(out.grad * (self.data > 0))

        out._backward = backward
        return out

    def reshape(self, *shape: int) -> "Tensor":
        out = Tensor(self.data.reshape(*shape), parents=(self,), op="reshape")

        def backward() -> None:
            self._accumulate(out.grad.reshape(self.shape))

        out._backward = backward
        return out

    def sum(self) -> "Tensor":
        out = Tensor(self.data.sum(), parents=(self,), op="sum")

        def backward() -> None:
            self._accumulate(np.broadcast_to(out.grad, self.shape).copy())

        out._backward = backward
        return out

    # ------------------------------------------------------------------ the chain rule

    def backward(self) -> None:
        """dL/d(every tensor in the graph), for this scalar L."""
        if self.data.size != 1:
            raise ValueError(f"backward() needs a scalar loss, got shape {self.shape}")
        order: list[Tensor] = []
        seen: set[int] = set()

        def visit(node: Tensor) -> None:  # post-order: a node after everything it depends on
            if id(node) not in seen:
                seen.add(id(node))
                for parent in node.parents:
                    visit(parent)
                order.append(node)

        visit(self)
        self.grad = np.ones_like(self.data)  # dL/dL = 1
        for node in reversed(order):  # from the loss back to the inputs
            if node.grad is not None:
                node._backward()
