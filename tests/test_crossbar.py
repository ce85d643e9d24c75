"""MAP 7.2: the crossbar layer against analytic expectations, and its device model against
IBM's aihwkit draw for draw where aihwkit is installed (a C++ source distribution on PyPI
that pip's build isolation cannot build against torch: benchmarks/aihwkit_peer.py says how;
the test is skipped without it)."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.models import create_model
from deepatlas.nn.crossbar import (AnalogConv2d, AnalogLinear, PCMDevice, drift_exponent_stats,
                                   program_model, programming_sigma, quantize, read_noise_sigma,
                                   set_inference_time)

IDEAL = PCMDevice(levels=2**16, prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0,
                  dac_bits=24, adc_bits=24, out_bound=1e3, out_noise=0.0)
DAY = 86400.0


def _layer(device: PCMDevice, shape: tuple[int, int] = (20, 6)) -> AnalogLinear:
    torch.manual_seed(0)
    layer = AnalogLinear(*shape, pcm=device).double().eval()
    layer.program(torch.Generator().manual_seed(0))
    return layer


def _uniform_layer(device: PCMDevice, n: int = 200) -> AnalogLinear:
    """Every weight +1: each G+ is programmed to g* = 1 and each G- to g* = 0."""
    layer = AnalogLinear(n, n, pcm=device).double().eval()
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.program(torch.Generator().manual_seed(0))
    return layer


def test_quantize_has_its_levels_and_bounds():
    x = torch.linspace(-2, 2, 10001, dtype=torch.float64)
    q = quantize(x, 3)
    assert q.unique().numel() == 7 and q.min() == -1 and q.max() == 1  # 2^3 - 1 levels


def test_an_ideal_crossbar_is_the_linear_layer():
    layer = _layer(IDEAL)
    x = torch.randn(8, 20, dtype=torch.float64)
    digital = F.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), digital, atol=1e-4, rtol=0)
    torch.testing.assert_close(layer.g_plus - layer.g_minus,
                               torch.round(layer.weight / layer.w_max * (2**16 - 1))
                               / (2**16 - 1))
    assert (layer.g_plus >= 0).all() and ((layer.g_plus == 0) | (layer.g_minus == 0)).all()


def test_the_device_statistics_are_ibms_pcm_model():
    """aihwkit's PCMLikeNoiseModel constants, at the two ends of the conductance range."""
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(programming_sigma(ends, PCMDevice()),
                               torch.tensor([0.26348, 0.26348 + 1.9650 - 1.1731]) / 25.0,
                               check_dtype=False)
    mu, spread = drift_exponent_stats(torch.tensor([1e-3, 0.2, 1.0], dtype=torch.float64))
    torch.testing.assert_close(mu, torch.tensor([0.1, -0.0155 * math.log(0.2) + 0.0244, 0.049],
                                                dtype=torch.float64))
    torch.testing.assert_close(spread, torch.tensor([0.045, -0.0125 * math.log(0.2) - 0.0059,
                                                     0.008], dtype=torch.float64))
    layer = _uniform_layer(PCMDevice())  # 40,000 devices at each end
    assert layer.g_plus.std().item() == pytest.approx(1.05538 / 25, rel=0.01)
    assert layer.nu_plus.mean().item() == pytest.approx(0.049, rel=0.005)
    assert layer.nu_plus.std().item() == pytest.approx(0.008, rel=0.01)
    assert layer.nu_minus.mean().item() == pytest.approx(0.1004, rel=0.01)  # E|N(0.1, 0.045^2)|


def test_the_device_model_is_aihwkits_pcm_noise_model_draw_for_draw(monkeypatch):
    """Programming noise, drift exponent, and drift with 1/f noise to one day, fed the same
    normal draws as aihwkit's PCMLikeNoiseModel (its conductances in uS, ours in G_max)."""
    pcm = pytest.importorskip("aihwkit.inference.noise.pcm")
    target = torch.linspace(0, 1, 201, dtype=torch.float64)  # g*, in G_max
    z = torch.randn(201, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    monkeypatch.setattr(pcm, "randn_like", lambda _: z)  # aihwkit's one source of draws
    theirs, g_max = pcm.PCMLikeNoiseModel(g_max=25.0), 25.0
    programmed = (target + programming_sigma(target, PCMDevice()) * z).clamp_min(0)
    torch.testing.assert_close(
        theirs.apply_programming_noise_to_conductance(target * g_max) / g_max, programmed)
    mu, spread = drift_exponent_stats(target)
    nu = (mu + spread * z).abs()
    torch.testing.assert_close(theirs.generate_drift_coefficients(target * g_max), nu)
    t0 = PCMDevice().t0  # aihwkit's t_0, 20 s
    drifted = programmed * ((DAY + t0) / t0) ** -nu
    read = (drifted + drifted.abs() * read_noise_sigma(programmed, DAY, PCMDevice()) * z
            ).clamp_min(0)
    torch.testing.assert_close(
        theirs.apply_drift_noise_to_conductance(programmed * g_max, nu, DAY) / g_max, read)


def test_drift_follows_the_power_law_and_compensation_undoes_a_shared_drift():
    layer = _layer(dataclasses.replace(IDEAL, drift_scale=1.0))
    set_inference_time(layer, DAY)
    factor = (DAY + 20.0) / 20.0  # t0 = 20 s
    torch.testing.assert_close(layer.conductance, layer.g_plus * factor ** -layer.nu_plus
                               - layer.g_minus * factor ** -layer.nu_minus)
    with torch.no_grad():  # every device with the same exponent: a drift they all share
        layer.nu_plus.fill_(0.06), layer.nu_minus.fill_(0.06)
    x = torch.randn(8, 20, dtype=torch.float64)
    set_inference_time(layer, 0.0)
    fresh = layer(x) - layer.bias
    set_inference_time(layer, DAY)
    torch.testing.assert_close(layer(x) - layer.bias, fresh * factor ** -0.06, atol=1e-4, rtol=0)
    set_inference_time(layer, DAY, compensate=True)
    torch.testing.assert_close(layer(x) - layer.bias, fresh, atol=1e-4, rtol=0)


def test_the_one_over_f_noise_grows_with_the_log_of_time():
    layer = _uniform_layer(dataclasses.replace(IDEAL, read_noise_scale=1.0))
    for seconds in (0.0, DAY):
        set_inference_time(layer, seconds)
        expected = 0.0088 * math.sqrt(math.log((seconds + 20.0 + 250e-9) / (2 * 250e-9)))
        assert layer.conductance.std().item() == pytest.approx(expected, rel=0.01)
    log_term = math.sqrt(math.log((DAY + 20.0 + 250e-9) / (2 * 250e-9)))
    torch.testing.assert_close(  # Q(g_p) = min(0.0088 / max(g_p^0.65, 1e-3), 0.2)
        read_noise_sigma(torch.tensor([1.0, 0.1, 1e-5]), DAY, PCMDevice()),
        torch.tensor([0.0088, 0.0088 / 0.1**0.65, 0.2]) * log_term)


def test_noise_and_device_spread_are_seeded_and_drawn_once_per_read_out():
    a, b = _layer(PCMDevice()), _layer(PCMDevice())
    torch.testing.assert_close(a.g_plus, b.g_plus)  # the same draw from the same seed
    torch.testing.assert_close(a.conductance, b.conductance)
    x = torch.randn(4, 20, dtype=torch.float64)
    torch.testing.assert_close(a(x), b(x))  # output noise too is seeded by the programming
    quiet = _layer(dataclasses.replace(PCMDevice(), out_noise=0.0))
    assert torch.equal(quiet(x), quiet(x))  # reads at one time see the same devices...
    assert not torch.equal(a(x), a(x))  # ...each with its own output noise
    before = a.conductance.clone()
    set_inference_time(a, 0.0)
    assert not torch.equal(a.conductance, before)  # ...and a new read-out draws new noise


def test_output_noise_is_gaussian_in_units_of_the_full_scale_read():
    layer = _layer(dataclasses.replace(IDEAL, out_noise=0.06))
    x = torch.randn(4000, 20, dtype=torch.float64)
    error = (layer(x) - F.linear(x, layer.weight, layer.bias)).detach()  # (4000, 6)
    # sigma_out is in units of one fully-on device times a full-scale input: max|w| max|x|.
    unit = layer.w_max * x.abs().amax(1, keepdim=True)
    assert abs((error / unit).std().item() - 0.06) < 0.002
    assert abs((error / unit).mean().item()) < 0.002


def test_compensation_undoes_the_shared_part_of_a_device_to_device_drift():
    device = dataclasses.replace(PCMDevice(), read_noise_scale=0.0)
    layer = _layer(device)
    x = torch.randn(64, 20, dtype=torch.float64)
    fresh = layer(x)
    errors = {}
    for compensate in (False, True):
        set_inference_time(layer, 365 * DAY, compensate)
        errors[compensate] = (layer(x) - fresh).abs().mean().item()
    # The shared part of the drift is undone; the device-to-device part is not.
    assert errors[True] < 0.9 * errors[False]


def test_bound_management_rereads_a_saturated_output_at_half_the_input():
    x = torch.randn(64, 20, dtype=torch.float64)
    clipped = _layer(dataclasses.replace(IDEAL, out_bound=0.05, bound_halvings=0))
    limit = 0.05 * x.abs().amax(1, keepdim=True) * clipped.w_max  # the ADC's range, per input
    assert ((clipped(x) - clipped.bias).abs() <= limit + 1e-9).all()
    assert ((clipped(x) - clipped.bias).abs() >= limit - 1e-9).any()  # it did saturate
    managed = _layer(dataclasses.replace(IDEAL, out_bound=0.05, bound_halvings=10))
    torch.testing.assert_close(managed(x), F.linear(x, managed.weight, managed.bias),
                               atol=1e-3, rtol=0)


def test_bound_management_acts_per_image_and_keeps_gradients():
    torch.manual_seed(0)
    conv = AnalogConv2d(2, 3, 3, pcm=dataclasses.replace(IDEAL, out_bound=0.5)).double().eval()
    conv.program(torch.Generator().manual_seed(0))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    x[1] *= 0.01  # the same image at 1%: the DAC range follows it, so it saturates alike
    x.requires_grad_(True)
    y = conv(x)
    digital = F.conv2d(x, conv.weight, conv.bias)
    torch.testing.assert_close(y, digital, atol=1e-3, rtol=0)
    y.sum().backward()  # re-reads at half the input did not break autograd
    assert x.grad is not None


def test_a_convolution_on_a_crossbar_is_the_convolution():
    torch.manual_seed(0)
    conv = AnalogConv2d(3, 5, 3, stride=2, padding=1, pcm=IDEAL).double().eval()
    conv.program(torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 9, 9, dtype=torch.float64)
    assert conv.conductance.shape == (5, 3 * 3 * 3)  # one row per output channel
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, 2, 1),
                               atol=1e-4, rtol=0)
    conv.train()  # training is digital
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, 2, 1))


def test_reading_before_programming_or_at_a_negative_time_is_refused():
    from deepatlas.errors import UserError

    with pytest.raises(UserError, match="time since programming >= 0 s; got -1"):
        set_inference_time(_layer(IDEAL), -1.0)
    with pytest.raises(UserError, match="program it first"):
        AnalogLinear(4, 2).read_out(1.0)


def test_hardware_aware_training_perturbs_only_training_forwards():
    torch.manual_seed(0)
    model = create_model("analog-mlp", in_channels=1, image_size=4, num_classes=3, width=8,
                         train_noise=0.1)
    x = torch.randn(5, 1, 4, 4)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))  # unprogrammed: the digital network
    digital = model(x)
    program_model(model, seed=0)
    set_inference_time(model, 3600, compensate=True)
    analog = model(x)  # the same network, read through noisy devices
    assert not torch.equal(analog, digital)
    assert (analog - digital).norm() < 0.3 * digital.norm()  # about 0.1 for this tiny net
