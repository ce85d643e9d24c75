"""MAP 7.1: the LIF neuron against snnTorch's Leaky (membrane traces, spikes and surrogate
gradients), the spike codes' analytic properties, and the cost model against a FLOP count."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.nn.spiking import LIF, latency_code, rate_code, spike

def _snntorch_run(currents, beta, threshold, spike_grad):
    snntorch = pytest.importorskip("snntorch")
    leaky = snntorch.Leaky(beta=beta, threshold=threshold, spike_grad=spike_grad)
    mem = leaky.init_leaky()
    spikes, trace = [], []
    for current in currents:
        spk, mem = leaky(current, mem)
        spikes.append(spk)
        trace.append(mem)
    return torch.stack(spikes), torch.stack(trace)


@pytest.mark.parametrize("name", ["arctan", "fast-sigmoid"])
def test_lif_equals_snntorch_leaky(name):
    surrogate = pytest.importorskip("snntorch.surrogate")
    theirs = {"arctan": surrogate.atan(alpha=2.0),
              "fast-sigmoid": surrogate.fast_sigmoid(slope=25)}[name]
    torch.manual_seed(0)
    currents = (torch.rand(30, 4, 16, dtype=torch.float64) * 0.8).requires_grad_()
    lif = LIF(beta=0.75, threshold=1.0, surrogate=name)  # exact in float32, as snnTorch keeps it
    lif.record = True
    ours = lif(currents)
    spikes, trace = _snntorch_run(currents, 0.75, 1.0, theirs)
    assert ours.sum() > 50 and (ours == 0).sum() > 50  # the neurons fire, and not always
    torch.testing.assert_close(lif.trace, trace.detach(), atol=1e-12, rtol=0)
    torch.testing.assert_close(ours, spikes.to(ours.dtype), atol=0, rtol=0)
    weights = torch.randn_like(currents)
    grad_ours, = torch.autograd.grad((ours * weights).sum(), currents)
    grad_theirs, = torch.autograd.grad((spikes * weights).sum(), currents)
    # snnTorch's spikes are float32 (``.float()``), so its surrogate runs in float32
    torch.testing.assert_close(grad_ours, grad_theirs, atol=1e-7, rtol=1e-4)


def test_reset_by_subtraction_keeps_the_excess_charge():
    lif = LIF(beta=1.0, threshold=1.0)
    lif.record = True
    out = lif(torch.full((4, 1), 0.75))  # U: 0.75, 1.5 (fires), 1.25 (fires), 1.0
    assert out.flatten().tolist() == [0, 1, 1, 0]
    assert lif.trace.flatten().tolist() == [0.75, 1.5, 1.25, 1.0]


def test_codes():
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    rates = rate_code(x, 4000, torch.Generator().manual_seed(0)).mean(0)
    torch.testing.assert_close(rates, x, atol=0.03, rtol=0)  # E[spikes] = p
    latency = latency_code(x, 5)
    assert latency.sum(0).tolist() == [[0, 1, 1, 1]]  # one spike each, none for black
    assert latency.argmax(0).tolist() == [[0, 3, 2, 0]]  # brighter fires earlier


def test_unknown_surrogate_is_named():
    with pytest.raises(UserError, match="arctan"):
        spike(torch.zeros(1), "sigmoidish")


def test_ann_macs_equal_a_flop_count_of_the_ann_twin():
    model = create_model("snn-conv", in_channels=1, image_size=28, num_classes=10, width=8,
                         hidden=16, timesteps=1)
    x = torch.rand(1, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model(x)  # one step: every layer once, as the ANN would run it
    cost = model.synaptic_operations([float(s) for s in model.spikes_fired], 28)
    assert cost["ann_macs"] == counter.get_total_flops() / 2  # a MAC is 2 FLOPs
    assert math.isclose(cost["ann_energy_nj"], cost["ann_macs"] * 4.6e-3)


def test_spike_counts_are_the_nonzero_inputs_of_the_weight_layers():
    torch.manual_seed(0)
    model = create_model("snn-conv", in_channels=1, image_size=28, num_classes=10, width=8,
                         hidden=16, timesteps=3).eval()
    seen = {}
    for name in ("conv", "fc", "readout"):
        layer = getattr(model, name)
        layer = layer[0] if isinstance(layer, torch.nn.Sequential) else layer
        layer.register_forward_hook(
            lambda m, inputs, out, name=name: seen.__setitem__(name, (inputs[0] != 0).sum()))
    x = torch.rand(5, 1, 28, 28) * 4
    model(x)
    counted = [float(seen[n]) / 5 for n in ("conv", "fc", "readout")]
    assert counted == pytest.approx([float(s) for s in model.spikes_fired])
    assert counted[0] > 0  # the test inputs make the first layer fire
