"""Max absolute error of every from-the-formula component against its reference (float64).

    python benchmarks/equivalences.py

The tests assert bounds on these; this prints the numbers themselves, for the report and for
closing notes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas import nn as dnn
from deepatlas.losses import label_smoothing_cross_entropy
from deepatlas.optim import SGD, Adam, Momentum
from deepatlas.scratch import Tensor, conv2d, cross_entropy, max_pool2d

torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
rows: list[tuple[str, str, float]] = []


def record(name: str, reference: str, error) -> None:
    rows.append((name, reference, abs(float(torch.as_tensor(error).detach()))))


# 2.1 Swish
x = torch.linspace(-8, 8, 1001)
record("Swish(beta=1)", "F.silu", (dnn.Swish()(x) - F.silu(x)).abs().max())

# 2.2 recurrent and graph
ref, cell = nn.LSTMCell(8, 16), dnn.LSTMCell(8, 16)
cell.load_state_dict(ref.state_dict())
inp, h, c = torch.randn(32, 8), torch.randn(32, 16), torch.randn(32, 16)
record("LSTMCell", "nn.LSTMCell", max((a - b).abs().max() for a, b in zip(cell(inp, (h, c)),
                                                                        ref(inp, (h, c)))))
ref, cell = nn.RNNCell(8, 16), dnn.RNNCell(8, 16)
cell.load_state_dict(ref.state_dict())
record("RNNCell", "nn.RNNCell", (cell(inp, h) - ref(inp, h)).abs().max())
try:
    import torch_geometric.nn as pyg

    from deepatlas.data.graphs import load_karate

    g = load_karate()
    feats = torch.randn(34, 8)
    for ours, theirs in ((dnn.GCNConv(8, 4), pyg.GCNConv(8, 4)),
                         (dnn.GATConv(8, 4, heads=3), pyg.GATConv(8, 4, heads=3))):
        ours.load_state_dict(theirs.state_dict())
        record(type(ours).__name__, f"torch_geometric {type(theirs).__name__}",
               (ours(feats, g.edge_index) - theirs(feats, g.edge_index)).abs().max())
except ImportError:
    print("(torch_geometric not installed: GCN/GAT rows skipped)")

# 3.1 backprop from scratch on the source's graph
rng = np.random.default_rng(0)
arrays = {"x": rng.normal(size=(4, 3, 12, 12)), "w": rng.normal(size=(6, 3, 3, 3)),
          "b": rng.normal(size=6), "fc": rng.normal(size=(6 * 25, 10)) * 0.1,
          "fb": rng.normal(size=10)}
target = rng.integers(0, 10, 4)
t = {k: Tensor(v, requires_grad=True) for k, v in arrays.items()}
hidden = max_pool2d(conv2d(t["x"], t["w"], t["b"]).relu())
cross_entropy(hidden.reshape(4, -1) @ t["fc"] + t["fb"], target).backward()
r = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
hidden = F.max_pool2d(F.relu(F.conv2d(r["x"], r["w"], r["b"])), 2)
F.cross_entropy(hidden.flatten(1) @ r["fc"] + r["fb"], torch.tensor(target)).backward()
record("scratch autograd (conv-ReLU-pool-FC-CE)", "torch.autograd",
       max(np.abs(t[k].grad - r[k].grad.numpy()).max() for k in arrays))


# 3.2 optimisers: 200 steps on a non-quadratic problem
def trajectory(make):
    torch.manual_seed(1)
    a, b = torch.randn(20, 10), torch.randn(20)
    w = torch.randn(10, requires_grad=True)
    opt = make([w])
    for _ in range(200):
        opt.zero_grad()
        (((a @ w - b) ** 2).mean() + 0.1 * w.pow(4).sum()).backward()
        opt.step()
    return w.detach()


for name, ours, theirs in (
        ("SGD", lambda p: SGD(p, 0.01), lambda p: torch.optim.SGD(p, 0.01)),
        ("Momentum", lambda p: Momentum(p, 0.01, 0.9),
         lambda p: torch.optim.SGD(p, 0.01, momentum=0.9)),
        ("Adam", lambda p: Adam(p, 0.01, weight_decay=0.1),
         lambda p: torch.optim.Adam(p, 0.01, weight_decay=0.1))):
    record(f"{name}, 200 steps", f"torch.optim ({name})",
           (trajectory(ours) - trajectory(theirs)).abs().max())

# 3.3 label smoothing
logits, labels = torch.randn(64, 10), torch.randint(0, 10, (64,))
record("label_smoothing_cross_entropy", "nn.CrossEntropyLoss(label_smoothing=0.1)",
       (label_smoothing_cross_entropy(logits, labels, 0.1)
        - nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels)).abs())

# 4.2 attention, 5.1 BatchNorm, 4.1 deformable conv
q, k, v = torch.randn(2, 4, 7, 16), torch.randn(2, 4, 9, 16), torch.randn(2, 4, 9, 16)
record("scaled_dot_product_attention", "F.scaled_dot_product_attention",
       (dnn.scaled_dot_product_attention(q, k, v) - F.scaled_dot_product_attention(q, k, v))
       .abs().max())
ref, mha = nn.MultiheadAttention(32, 4, batch_first=True), dnn.MultiHeadAttention(32, 4)
mha.load_state_dict(ref.state_dict())
seq = torch.randn(2, 9, 32)
record("MultiHeadAttention", "nn.MultiheadAttention", (mha(seq, seq, seq) - ref(seq, seq, seq)[0])
       .abs().max())
ref, bn = nn.BatchNorm2d(8), dnn.BatchNorm2d(8)
err = 0.0
for _ in range(5):
    batch = torch.randn(16, 8, 6, 6) * 3 + 1
    err = max(err, (bn(batch) - ref(batch)).abs().max())
bn.eval(), ref.eval()
record("BatchNorm2d (5 train steps + eval)", "nn.BatchNorm2d",
       max(err, (bn(batch) - ref(batch)).abs().max()))
deform = dnn.DeformableConv2d(3, 5, 3, padding=1)
img = torch.randn(2, 3, 10, 10)
record("DeformableConv2d at init", "F.conv2d",
       (deform(img) - F.conv2d(img, deform.weight, deform.bias, padding=1)).abs().max())

# 7.1 LIF neuron (snnTorch keeps beta and its spikes in float32: beta = 0.75 is exact there)
try:
    import snntorch
    from snntorch import surrogate

    currents = (torch.rand(30, 4, 16) * 0.8).requires_grad_()
    lif = dnn.LIF(beta=0.75, threshold=1.0)
    lif.record = True
    spikes = lif(currents)
    leaky, mem, theirs, trace = snntorch.Leaky(beta=0.75, spike_grad=surrogate.atan()), None, [], []
    mem = leaky.init_leaky()
    for current in currents:
        spk, mem = leaky(current, mem)
        theirs.append(spk)
        trace.append(mem)
    theirs, trace = torch.stack(theirs), torch.stack(trace)
    record("LIF membrane trace", "snntorch.Leaky", (lif.trace - trace).abs().max())
    record("LIF spikes", "snntorch.Leaky", (spikes - theirs).abs().max())
    ours_grad, = torch.autograd.grad(spikes.sum(), currents)
    their_grad, = torch.autograd.grad(theirs.sum(), currents)
    record("LIF arctan surrogate gradient", "snntorch.Leaky (float32 spikes)",
           (ours_grad - their_grad).abs().max())
except ImportError:
    print("snntorch is not installed (pip install -e '.[test]'): LIF rows skipped")

# 7.3 explanations: 9 patches of a random conv net's class probability
from deepatlas.trust import explain as ex

net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(144, 3))


def prob(images: torch.Tensor) -> torch.Tensor:  # (S, 1, 6, 6) -> (S,)
    return net(images).softmax(1)[:, 0]


x6, black, patches = torch.randn(1, 6, 6), torch.zeros(1, 6, 6), ex.patch_segments(6, 6, 2)
exact = ex.exact_shapley(prob, x6, black, patches)
record("Kernel SHAP (all 510 coalitions)", "exact Shapley values (enumeration)",
       (ex.kernel_shap(prob, x6, black, patches, n_samples=510) - exact).abs().max())
try:
    import shap

    explainer = shap.KernelExplainer(
        lambda z: ex.coalition_values(prob, x6, black, patches, torch.from_numpy(z)).numpy(),
        np.zeros((1, 9)))
    theirs = np.asarray(explainer.shap_values(np.ones((1, 9)), nsamples=512, l1_reg=False,
                                              silent=True)).reshape(-1)
    record("Kernel SHAP", "shap.KernelExplainer", (exact - torch.from_numpy(theirs)).abs().max())
except ImportError:
    print("shap is not installed (pip install -e '.[test]'): its row skipped")
try:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import IntegratedGradients, Lime

    z = ex.lime_coalitions(9, 300, torch.Generator().manual_seed(4))

    def replay(original, **kwargs):
        yield from (row[None].long() for row in z)

    lime = Lime(prob, interpretable_model=SkLearnRidge(alpha=1.0), perturb_func=replay,
                similarity_func=lambda o, p, i, **k: ex.lime_kernel(i.double()).item())
    theirs = lime.attribute(x6[None], baselines=black[None], feature_mask=patches[None, None],
                            n_samples=300, return_input_shape=False).flatten()
    ours = ex.weighted_ridge(z, ex.coalition_values(prob, x6, black, patches, z),
                             ex.lime_kernel(z), 1.0)
    record("LIME (same coalitions, lime_image kernel)", "captum Lime + SkLearnRidge",
           (ours - theirs).abs().max())
    ig = IntegratedGradients(prob).attribute(x6[None], baselines=black[None], n_steps=64,
                                             method="riemann_trapezoid")[0]
    record("Integrated Gradients (64-point trapezoid)", "captum, rescaled by 64/63",
           (ex.integrated_gradients(prob, x6, black, 64) - ig * 64 / 63).abs().max())
except ImportError:
    print("captum is not installed (pip install -e '.[test]'): its rows skipped")

# 7.4 NT-Xent
try:
    from pytorch_metric_learning.losses import NTXentLoss

    from deepatlas.losses import nt_xent

    z1, z2 = torch.randn(64, 16), torch.randn(64, 16)
    record("NT-Xent (tau 0.5)", "pytorch-metric-learning NTXentLoss",
           nt_xent(z1, z2, 0.5) - NTXentLoss(0.5)(torch.cat([z1, z2]), torch.arange(64).repeat(2)))
except ImportError:
    print("pytorch-metric-learning is not installed (pip install -e '.[test]'): its row skipped")

# 7.5 variational quantum circuit
try:
    import pennylane as qml

    from deepatlas.models import create_model

    n, depth = 4, 3
    vqc = create_model("vqc", in_channels=1, image_size=4, num_classes=2, qubits=n, layers=depth)
    weights = (torch.rand(depth, n, 2) * 6.3).requires_grad_()
    angles = torch.rand(3, n) * 3.14
    ours = vqc.expectations(angles, weights, torch.complex128)
    device = qml.device("default.qubit", wires=n)

    @qml.qnode(device, interface="torch", diff_method="backprop")
    def circuit(a, w):
        for wire in range(n):
            qml.RY(a[wire], wires=wire)
        for layer in w:
            for wire in range(n):
                qml.RY(layer[wire, 0], wires=wire)
                qml.RZ(layer[wire, 1], wires=wire)
            for wire in range(n):
                qml.CNOT(wires=[wire, (wire + 1) % n])
        return [qml.expval(qml.PauliZ(i)) for i in range(2)]

    w2 = weights.detach().clone().requires_grad_()
    theirs = torch.stack([torch.stack(circuit(a, w2)) for a in angles])
    record("VQC <Z> expectations", "PennyLane default.qubit", (ours - theirs).abs().max())
    g1, = torch.autograd.grad(ours.sum(), weights)
    g2, = torch.autograd.grad(theirs.sum(), w2)
    record("VQC gradients", "PennyLane default.qubit (backprop)", (g1 - g2).abs().max())
except ImportError:
    print("pennylane is not installed (pip install -e '.[test]'): VQC rows skipped")

width = max(len(r[0]) for r in rows)
print(f"{'component':<{width}}  {'reference':<42}  max |error|")
for name, reference, error in rows:
    print(f"{name:<{width}}  {reference:<42}  {error:.1e}")
