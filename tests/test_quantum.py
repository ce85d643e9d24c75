"""MAP 7.5: the statevector simulator against PennyLane's default.qubit, the parameter-shift
rule against autograd, the PCA front end against scikit-learn, and the memory guard."""

import math

import numpy as np
import pytest
import torch

from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.nn import quantum as q

C128 = torch.complex128


@pytest.mark.parametrize("name", ["RX", "RY", "RZ"])
def test_rotation_matrices_equal_pennylanes(name):
    qml = pytest.importorskip("pennylane")
    for theta in (-2.1, 0.0, 0.7, math.pi):
        ours = q.ROTATIONS[name](torch.tensor(theta, dtype=torch.float64), C128)
        theirs = torch.as_tensor(getattr(qml, name)(theta, wires=0).matrix())
        torch.testing.assert_close(ours, theirs.to(C128), atol=1e-12, rtol=0)


def test_cnot_and_cz_make_the_bell_states():
    state = q.apply_gate(q.zero_state(1, 2, C128), q.ry(torch.tensor(math.pi / 2,
                                                                   dtype=torch.float64), C128), 0)
    bell = q.cnot(state, 0, 1).reshape(4)  # (|00> + |11>) / sqrt 2
    torch.testing.assert_close(bell, torch.tensor([1, 0, 0, 1], dtype=C128) / math.sqrt(2))
    flipped = q.cz(bell.view(1, 2, 2), 0, 1).reshape(4)  # (|00> - |11>) / sqrt 2
    torch.testing.assert_close(flipped, torch.tensor([1, 0, 0, -1], dtype=C128) / math.sqrt(2))
    # control below target too: |10> on wires (target 0, control 1) stays, |01> -> |11>
    basis = torch.zeros(1, 4, dtype=C128)
    basis[0, 1] = 1  # |01>: wire 1 is 1
    torch.testing.assert_close(q.cnot(basis.view(1, 2, 2), 1, 0).reshape(4),
                               torch.tensor([0, 0, 0, 1], dtype=C128))


def _pennylane_circuit(n, k):
    qml = pytest.importorskip("pennylane")
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(angles, weights):
        for w in range(n):
            qml.RY(angles[w], wires=w)
        for layer in weights:
            for w in range(n):
                qml.RY(layer[w, 0], wires=w)
                qml.RZ(layer[w, 1], wires=w)
            for w in range(n):
                qml.CNOT(wires=[w, (w + 1) % n])
        return [qml.expval(qml.PauliZ(i)) for i in range(k)]

    return circuit


def test_vqc_outputs_and_gradients_equal_pennylanes():
    n, layers, k = 4, 3, 2
    torch.manual_seed(0)
    model = create_model("vqc", in_channels=1, image_size=4, num_classes=k, qubits=n,
                         layers=layers)
    weights = (torch.rand(layers, n, 2, dtype=torch.float64) * 2 * math.pi).requires_grad_()
    angles = torch.rand(3, n, dtype=torch.float64) * math.pi
    ours = model.expectations(angles, weights, C128)  # (3, K)
    grad_ours, = torch.autograd.grad(ours[:, 0].sum() + 0.5 * ours[:, 1].sum(), weights)

    circuit = _pennylane_circuit(n, k)
    w = weights.detach().clone().requires_grad_()
    theirs = torch.stack([torch.stack(circuit(a, w)) for a in angles])
    grad_theirs, = torch.autograd.grad(theirs[:, 0].sum() + 0.5 * theirs[:, 1].sum(), w)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_ours, grad_theirs, atol=1e-10, rtol=0)


def test_parameter_shift_equals_autograd():
    n, layers = 3, 2
    model = create_model("vqc", in_channels=1, image_size=3, num_classes=2, qubits=n,
                         layers=layers)
    angles = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    weights = torch.randn(layers, n, 2, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0)).requires_grad_()

    def cost(w):
        return model.expectations(angles, w, C128)[0, 0]

    autograd, = torch.autograd.grad(cost(weights), weights)
    shifted = q.parameter_shift_grad(cost, weights)
    torch.testing.assert_close(shifted, autograd, atol=1e-12, rtol=0)
    assert autograd.abs().max() > 0.01  # a real check, not zeros against zeros


def test_pca_front_end_equals_scikit_learn():
    from sklearn.decomposition import PCA

    x = torch.rand(200, 1, 6, 6, dtype=torch.float64) * torch.linspace(0.2, 2, 36).view(1, 1, 6, 6)
    model = create_model("vqc", in_channels=1, image_size=6, num_classes=2, qubits=4, layers=1)
    model.double().fit_to_data(x)
    reference = PCA(4, svd_solver="full").fit(x.flatten(1).numpy())
    np.testing.assert_allclose(model.features.components.numpy(), reference.components_,
                               atol=1e-8)
    z = model.features(x.double())
    np.testing.assert_allclose(z.numpy() * model.features.scale.numpy(),
                               reference.transform(x.flatten(1).numpy()), atol=1e-8)


def test_a_register_too_big_is_refused_before_allocating():
    with pytest.raises(UserError, match=r"40 qubits need 32,768.0 GiB .* use at most 30 qubits"):
        q.check_register(40, batch=1, dtype=torch.complex64, memory=2**35)  # 32 GiB free
    with pytest.raises(UserError, match="use at most"):
        create_model("vqc", in_channels=1, image_size=8, num_classes=2, qubits=60)
    with pytest.raises(UserError, match="need at least 3 qubits"):
        create_model("vqc", in_channels=1, image_size=8, num_classes=3, qubits=2)


def test_the_plateau_gradient_by_parameter_shift_equals_autograd():
    from deepatlas.lab.experiments.quantum import random_circuit_cost

    g = torch.Generator().manual_seed(0)
    angles = torch.rand(4, 3, 6, generator=g, dtype=torch.float64) * 2 * math.pi
    kinds = torch.randint(0, 3, (4, 3, 6), generator=g)
    leaf = angles.clone().requires_grad_()
    autograd, = torch.autograd.grad(random_circuit_cost(leaf, kinds).sum(), leaf)
    shift = torch.zeros_like(angles)
    shift[0, 0] = math.pi / 2
    shifted = (random_circuit_cost(angles + shift, kinds)
               - random_circuit_cost(angles - shift, kinds)) / 2
    torch.testing.assert_close(shifted, autograd[0, 0], atol=1e-12, rtol=0)
    assert autograd[0, 0].abs().max() > 0.01


def test_two_qubit_gates_need_two_different_wires():
    state = q.zero_state(1, 3, C128)
    with pytest.raises(ValueError, match="two different wires"):
        q.cnot(state, 1, 1)
    with pytest.raises(ValueError, match="two different wires"):
        q.cz(state, 0, 3)
