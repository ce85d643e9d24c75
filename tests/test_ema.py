"""The Trainer's moving average of the weights (``train.ema_decay``, ``train.ema_warmup_steps``)."""

import math

import pytest
import torch
from torch import nn

from deepatlas.train.ema import create_ema, ema_decay_at


def _average_of(values, decay, warmup_steps):
    """W̄ after the model's weight takes each of ``values`` in turn, by the formula."""
    average = values[0]  # the first update copies
    for t, w in enumerate(values[1:], 1):
        d = ema_decay_at(t, decay, warmup_steps)
        average = d * average + (1 - d) * w
    return average


@pytest.mark.parametrize("warmup_steps", [0, 3])
def test_the_average_follows_its_formula(warmup_steps):
    model = nn.Linear(1, 1, bias=False)
    ema = create_ema(model, decay=0.9, warmup_steps=warmup_steps)
    values = [0.0, 1.0, 4.0, -2.0, 3.0, 5.0, 0.5]
    for w in values:
        model.weight.data.fill_(w)
        ema.update_parameters(model)
    expected = _average_of(values, 0.9, warmup_steps)
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)


def test_the_ramp_is_ultralytics_and_forgets_the_initialisation_sooner():
    assert ema_decay_at(0, 0.9999, 2000) == 0.0
    assert ema_decay_at(2000, 0.9999, 2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert ema_decay_at(10**6, 0.9999, 2000) == pytest.approx(0.9999)
    # the weight left on W_0 after 500 updates: fixed 0.999 keeps ~0.61, the ramp almost none
    fixed = math.prod(ema_decay_at(t, 0.999, 0) for t in range(1, 501))
    ramped = math.prod(ema_decay_at(t, 0.999, 100) for t in range(1, 501))
    assert fixed > 0.6 and ramped < 1e-6


def test_batchnorm_statistics_are_averaged_and_its_counter_kept():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    ema = create_ema(model, decay=0.5, warmup_steps=10)
    before = model[1].running_mean.clone()
    ema.update_parameters(model)  # the copy
    model.train()
    model(torch.randn(64, 4) + 3.0)
    ema.update_parameters(model)
    d = ema_decay_at(1, 0.5, 10)
    expected = d * before + (1 - d) * model[1].running_mean
    assert torch.allclose(ema.module[1].running_mean, expected, atol=1e-6)
    assert ema.module[1].num_batches_tracked.dtype == torch.long
    assert int(ema.n_averaged) == 2
