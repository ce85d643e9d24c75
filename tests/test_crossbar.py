"""MAP 7.2: the crossbar layer against analytic expectations (aihwkit, the field's library,
is only a C++ source distribution on PyPI and is not built here)."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.models import create_model
from deepatlas.nn.crossbar import (AnalogLinear, PCMDevice, program_model, quantize,
                                   set_inference_time)

IDEAL = PCMDevice(levels=2**16, prog_noise=0.0, read_noise=0.0, drift_nu_std=0.0,
                  dac_bits=24, adc_bits=24, out_bound=1e3)


def _layer(device: PCMDevice) -> AnalogLinear:
    torch.manual_seed(0)
    layer = AnalogLinear(20, 6, pcm=device).double().eval()
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


def test_drift_follows_the_power_law_and_compensation_undoes_a_shared_drift():
    layer = _layer(IDEAL)  # every device drifts with nu = 0.05 exactly
    x = torch.randn(8, 20, dtype=torch.float64)
    fresh = layer(x) - layer.bias
    day = 86400.0
    set_inference_time(layer, day)
    torch.testing.assert_close(layer(x) - layer.bias, fresh * day ** -0.05, atol=1e-4, rtol=0)
    set_inference_time(layer, day, compensate=True)
    torch.testing.assert_close(layer(x) - layer.bias, fresh, atol=1e-4, rtol=0)


def test_noise_and_device_spread_are_there_and_seeded():
    device = PCMDevice()
    a, b = _layer(device), _layer(device)
    torch.testing.assert_close(a.g_plus, b.g_plus)  # the same draw from the same seed
    spread = (a.nu_plus.std().item(), a.nu_plus.mean().item())
    assert spread[0] == pytest.approx(0.02, rel=0.2) and spread[1] == pytest.approx(0.05, rel=0.1)
    x = torch.randn(4, 20, dtype=torch.float64)
    assert not torch.equal(a(x), a(x))  # every read draws its own read noise...
    assert torch.equal(_layer(device)(x), _layer(device)(x))  # ...from a seeded stream
    quiet = _layer(dataclasses.replace(device, read_noise=0.0))
    assert torch.equal(quiet(x), quiet(x))


def test_compensation_helps_when_devices_drift_apart_and_the_adc_clips():
    device = dataclasses.replace(PCMDevice(), read_noise=0.0)
    layer = _layer(device)
    x = torch.randn(64, 20, dtype=torch.float64)
    fresh = layer(x)
    errors = {}
    for compensate in (False, True):
        set_inference_time(layer, 365 * 86400.0, compensate)
        errors[compensate] = (layer(x) - fresh).abs().mean().item()
    # The shared part of the drift is undone; the device-to-device part is not.
    assert errors[True] < 0.9 * errors[False]
    clipped = _layer(dataclasses.replace(device, out_bound=0.05))
    assert (clipped(x) - clipped.bias).abs().max() <= 0.05 * x.abs().max() * clipped.w_max + 1e-9


def test_reading_before_t0_is_refused():
    from deepatlas.errors import UserError

    with pytest.raises(UserError, match="starts at t0 = 1.0 s"):
        set_inference_time(_layer(IDEAL), 0.5)


def test_hardware_aware_training_perturbs_only_training_forwards():
    model = create_model("analog-mlp", in_channels=1, image_size=4, num_classes=3, width=8,
                         train_noise=0.1)
    x = torch.randn(5, 1, 4, 4)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))  # unprogrammed: the digital network
    program_model(model, seed=0)
    set_inference_time(model, 3600, compensate=True)
    assert model(x).shape == (5, 3) and math.isfinite(model(x).sum().item())
