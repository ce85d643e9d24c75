"""MAP 2.2: recurrent cells against torch.nn, graph layers against torch_geometric."""

import pytest
import torch
from torch import nn

from deepatlas.models import create_model, list_models
from deepatlas.nn import LSTM, GATConv, GCNConv, LSTMCell, RNNCell


def _copy(ours: nn.Module, theirs: nn.Module) -> None:
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items()}, strict=True)


def test_rnn_cell_equals_torch():
    torch.manual_seed(0)
    ref = nn.RNNCell(5, 7).double()
    cell = RNNCell(5, 7).double()
    _copy(cell, ref)
    x, h = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    assert (cell(x, h) - ref(x, h)).abs().max() < 1e-12


def test_lstm_cell_equals_torch_including_gradients():
    torch.manual_seed(0)
    ref, cell = nn.LSTMCell(5, 7).double(), LSTMCell(5, 7).double()
    _copy(cell, ref)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    state = (torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64))
    (h1, c1), (h2, c2) = cell(x, state), ref(x, state)
    assert (h1 - h2).abs().max() < 1e-12 and (c1 - c2).abs().max() < 1e-12
    (g1,) = torch.autograd.grad(h1.sum() + c1.sum(), x)
    (g2,) = torch.autograd.grad(h2.sum() + c2.sum(), x)
    assert (g1 - g2).abs().max() < 1e-12


def test_stacked_lstm_equals_torch_lstm():
    torch.manual_seed(0)
    ref = nn.LSTM(6, 8, num_layers=2, batch_first=True).double()
    ours = LSTM(6, 8, num_layers=2).double()
    for layer, cell in enumerate(ours.cells):
        cell.load_state_dict({name: getattr(ref, f"{name}_l{layer}")
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    x = torch.randn(3, 11, 6, dtype=torch.float64)
    out, (h, c) = ours(x)
    ref_out, (ref_h, ref_c) = ref(x)
    assert (out - ref_out).abs().max() < 1e-12 and (h - ref_h[-1]).abs().max() < 1e-12


def _karate():
    from deepatlas.data.graphs import load_karate

    return load_karate()


def test_gcn_conv_equals_torch_geometric():
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    g = _karate()
    x = torch.randn(34, 5, dtype=torch.float64)
    ref = pyg.GCNConv(5, 3).double()
    ours = GCNConv(5, 3).double()
    _copy(ours, ref)
    with torch.no_grad():
        ours.bias.normal_()
        ref.bias.copy_(ours.bias)
    assert (ours(x, g.edge_index) - ref(x, g.edge_index)).abs().max() < 1e-12


def test_gcn_conv_matches_its_dense_formula():
    g = _karate()
    x = torch.randn(34, 4, dtype=torch.float64)
    conv = GCNConv(4, 2).double()
    a = torch.zeros(34, 34, dtype=torch.float64)
    a[g.edge_index[0], g.edge_index[1]] = 1
    a_hat = a + torch.eye(34, dtype=torch.float64)
    d = a_hat.sum(1).rsqrt().diag()
    expected = d @ a_hat @ d @ x @ conv.lin.weight.T + conv.bias  # D^-1/2 (A+I) D^-1/2 X W + b
    assert (conv(x, g.edge_index) - expected).abs().max() < 1e-12


@pytest.mark.parametrize("heads", [1, 4])
def test_gat_conv_equals_torch_geometric(heads):
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(heads)
    g = _karate()
    x = torch.randn(34, 5, dtype=torch.float64)
    ref = pyg.GATConv(5, 3, heads=heads).double()
    ours = GATConv(5, 3, heads=heads).double()
    with torch.no_grad():
        ref.bias.normal_()
    _copy(ours, ref)
    assert (ours(x, g.edge_index) - ref(x, g.edge_index)).abs().max() < 1e-12


@pytest.mark.parametrize("name", list_models("graph"))
def test_every_graph_model_forward_backward(name):
    g = _karate()
    model = create_model(name, in_channels=34, num_classes=2)
    out = model(g.x, g.edge_index)
    assert out.shape == (34, 2) and torch.isfinite(out).all()
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("recipe", ["karate-gcn", "karate-gat"])
def test_karate_recipes_label_the_club_from_its_leaders(cli, tmp_path, recipe):
    code, out, err = cli("train", recipe, "--out", tmp_path)
    assert code == 0, err
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["data"]["train"] == 2 and summary["data"]["test"] == 32
    assert summary["test_acc"] >= 0.9


def test_lstm_recipe_runs_on_idx_files(cli, tmp_path, mnist_dir):
    code, _, err = cli("train", "fashion-mnist-lstm", "--out", tmp_path, "--set",
                       f"data.dir={mnist_dir}", "--set", "train.epochs=1", "--set",
                       "train.batch_size=50")
    assert code == 0, err
