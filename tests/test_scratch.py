"""MAP 3.1: the scratch engine's gradients equal torch.autograd's on the source's graph."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepatlas.scratch import Tensor, conv2d, cross_entropy, max_pool2d, train_digits_mlp


def _source_graph_grads(stride: int, padding: int, seed: int):
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.normal(size=(3, 2, 9, 9)),
        "conv_w": rng.normal(size=(4, 2, 3, 3)),
        "conv_b": rng.normal(size=(4,)),
    }
    side = (9 + 2 * padding - 3) // stride + 1
    flat = 4 * (side // 2) ** 2
    arrays["fc_w"] = rng.normal(size=(flat, 5)) * 0.1
    arrays["fc_b"] = rng.normal(size=(5,))
    target = rng.integers(0, 5, size=3)

    # scratch: input -> conv -> ReLU -> max-pool -> fully connected -> softmax cross-entropy
    t = {k: Tensor(v, requires_grad=True) for k, v in arrays.items()}
    h = max_pool2d(conv2d(t["x"], t["conv_w"], t["conv_b"], stride, padding).relu())
    loss = cross_entropy(h.reshape(3, -1) @ t["fc_w"] + t["fc_b"], target)
    loss.backward()

    # torch, same graph, float64
    r = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    h = F.max_pool2d(F.relu(F.conv2d(r["x"], r["conv_w"], r["conv_b"], stride, padding)), 2)
    ref = F.cross_entropy(h.flatten(1) @ r["fc_w"] + r["fc_b"], torch.tensor(target))
    ref.backward()
    return loss, ref, t, r


@pytest.mark.parametrize("stride, padding, seed", [(1, 0, 0), (1, 1, 1), (2, 1, 2)])
def test_gradients_equal_autograd_on_the_source_graph(stride, padding, seed):
    loss, ref, ours, theirs = _source_graph_grads(stride, padding, seed)
    assert abs(loss.data.item() - ref.item()) < 1e-10
    for name in ours:
        error = np.abs(ours[name].grad - theirs[name].grad.numpy()).max()
        assert error < 1e-6, f"d loss / d {name}: max error {error:.2e}"


def test_broadcast_add_and_shared_nodes_accumulate():
    a = Tensor(np.ones((3, 4)), requires_grad=True)
    b = Tensor(np.arange(4.0), requires_grad=True)
    ((a + b) * (a + b)).sum().backward()  # d/db sum (a+b)^2 = sum over rows 2(a+b)
    np.testing.assert_allclose(b.grad, 2 * (1 + np.arange(4.0)) * 3)
    np.testing.assert_allclose(a.grad, 2 * (1 + np.arange(4.0)) * np.ones((3, 1)))


def test_backward_needs_a_scalar():
    with pytest.raises(ValueError, match="scalar"):
        Tensor(np.ones(3), requires_grad=True).relu().backward()


def test_scratch_mlp_learns_the_digits():
    assert train_digits_mlp(epochs=20) >= 0.90
