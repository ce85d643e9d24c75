"""MAP 4.1, 4.2, 5.1: convolutions, BatchNorm and attention against torch or analytic facts."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.nn import (BatchNorm1d, BatchNorm2d, DeformableConv2d, DepthwiseSeparableConv2d,
                          MultiHeadAttention, ResidualBlock, empirical_receptive_field,
                          receptive_field, scaled_dot_product_attention,
                          sinusoidal_positional_encoding)
from deepatlas.nn.attention import causal_mask

# ----------------------------------------------------------------- 4.1 convolutions


def _dilated_stack(dilations, channels=1):
    return nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=d, dilation=d)
                           for d in dilations])


@pytest.mark.parametrize("layers, expected", [
    (_dilated_stack([1, 2, 4]), 15),
    (_dilated_stack([1, 1, 1]), 7),
    (nn.Sequential(nn.Conv2d(1, 1, 7, stride=2), nn.AvgPool2d(3, stride=2), nn.Conv2d(1, 1, 3)),
     7 + 2 * 2 + 2 * 4),  # jumps: 1, 2, 4
])
def test_receptive_field_theory_and_gradients_agree(layers, expected):
    assert receptive_field(layers) == expected
    assert empirical_receptive_field(layers, input_size=64) == (expected, expected)
    assert receptive_field(layers, input_size=9) == min(expected, 9)


def test_separable_conv_costs_1_over_n_plus_1_over_k2():
    c, n, k = 32, 64, 3
    full = nn.Conv2d(c, n, k, padding=1, bias=False)
    separable = DepthwiseSeparableConv2d(c, n, k, padding=1)
    ratio = 1 / n + 1 / k**2
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(separable) / params(full) == pytest.approx(ratio)
    x = torch.randn(2, c, 16, 16)

    def flops(m):
        with FlopCounterMode(display=False) as counter:
            m(x)
        return counter.get_total_flops()

    assert flops(separable) / flops(full) == pytest.approx(ratio)
    assert separable(x).shape == full(x).shape == (2, n, 16, 16)


def test_deformable_conv_starts_as_a_plain_conv_and_its_offsets_train():
    torch.manual_seed(0)
    layer = DeformableConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 10, 10)
    plain = F.conv2d(x, layer.weight, layer.bias, padding=1)
    assert (layer(x) - plain).abs().max() < 1e-5
    layer(x).square().sum().backward()
    assert layer.offset.weight.grad.abs().sum() > 0  # offsets receive a gradient
    with torch.no_grad():
        layer.offset.bias.fill_(0.5)  # shift every tap by half a pixel: output changes
    assert (layer(x) - plain).abs().max() > 1e-2


def test_source_residual_block_is_relu_of_x_plus_f_x():
    torch.manual_seed(0)
    block = ResidualBlock(4)
    x = torch.randn(2, 4, 8, 8)
    expected = torch.relu(x + block.conv2(torch.relu(block.conv1(x))))
    assert torch.equal(block(x), expected)


# ----------------------------------------------------------------- 5.1 BatchNorm


def test_batchnorm_equals_torch_in_train_and_eval_over_several_steps():
    torch.manual_seed(0)
    ours, ref = BatchNorm2d(6, momentum=0.2).double(), nn.BatchNorm2d(6, momentum=0.2).double()
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
        ref.weight.copy_(ours.weight), ref.bias.copy_(ours.bias)
    for step in range(5):
        x = torch.randn(8, 6, 5, 5, dtype=torch.float64) * (step + 1) + step
        assert (ours(x) - ref(x)).abs().max() < 1e-10
    assert (ours.running_mean - ref.running_mean).abs().max() < 1e-12
    assert (ours.running_var - ref.running_var).abs().max() < 1e-12
    ours.eval(), ref.eval()
    x = torch.randn(3, 6, 5, 5, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max() < 1e-10
    assert set(ours.state_dict()) == set(ref.state_dict())


def test_batchnorm1d_equals_torch_over_features():
    torch.manual_seed(0)
    ours, ref = BatchNorm1d(6).double(), nn.BatchNorm1d(6).double()
    for step in range(3):
        x = torch.randn(16, 6, dtype=torch.float64) * (step + 1) + step
        assert (ours(x) - ref(x)).abs().max() < 1e-10
    ours.eval(), ref.eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max() < 1e-10


# ----------------------------------------------------------------- 4.2 attention


@pytest.mark.parametrize("masking", ["none", "causal", "padding"])
def test_attention_equals_torch(masking):
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    k = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    v = torch.randn(2, 3, 7, 4, dtype=torch.float64)
    mask = None
    if masking == "causal":
        q, mask = q[:, :, :, :], causal_mask(7)[:5]
    elif masking == "padding":  # the last two keys of the second sequence are padding
        mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
        mask[1, ..., 5:] = False
    ours = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (ours - ref).abs().max() < 1e-12


def test_multi_head_attention_equals_torch_with_copied_weights():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention(16, 4).double()
    ours.load_state_dict(ref.state_dict())
    q, kv = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 9, 16, dtype=torch.float64)
    expected, _ = ref(q, kv, kv)
    assert (ours(q, kv, kv) - expected).abs().max() < 1e-12
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    expected, _ = ref(x, x, x, attn_mask=~causal_mask(6))  # torch: True means "blocked"
    assert (ours(x, x, x, mask=causal_mask(6)) - expected).abs().max() < 1e-12


@pytest.mark.parametrize("pre_norm", [True, False])
def test_encoder_layer_equals_torch_in_both_layouts(pre_norm):
    """Pre-norm is torch's ``norm_first=True``, post-norm (the 2017 paper's) its default."""
    from deepatlas.nn.transformer import EncoderLayer

    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu",
                                     batch_first=True, norm_first=pre_norm).double().eval()
    ours = EncoderLayer(16, 4, 32, dropout=0.0, pre_norm=pre_norm).double().eval()
    names = {"self_attn.": "attention.", "linear1.": "ff.0.", "linear2.": "ff.3."}
    state = {}
    for key, value in ref.state_dict().items():
        for theirs, mine in names.items():
            key = key.replace(theirs, mine)
        state[key] = value
    ours.load_state_dict(state)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    keep = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    keep[1, ..., 5:] = False  # padding: torch's src_key_padding_mask is True where blocked
    expected = ref(x, src_key_padding_mask=~keep[:, 0, 0])
    assert (ours(x, keep) - expected)[0].abs().max() < 1e-10
    assert (ours(x, keep) - expected)[1, :5].abs().max() < 1e-10


def test_sinusoidal_positional_encoding_closed_form():
    pe = sinusoidal_positional_encoding(50, 16)
    for pos, i in [(0, 0), (7, 0), (7, 3), (49, 7)]:
        angle = pos / 10000 ** (2 * i / 16)
        assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_positional_encoding(4, 7).shape == (4, 7)  # odd d_model
