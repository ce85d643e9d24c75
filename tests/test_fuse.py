"""BatchNorm folded into the conv before it (compress.fuse): the same function, fewer ops."""

import pytest
import torch
from torch import nn

from deepatlas.compress.fuse import batchnorm_layers, fold_batchnorm


def _random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm running statistics and an affine map far from the identity, so
    that a fold that ignored any of them would change the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.25, 4.0, generator=g)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return model


def test_folding_the_detector_keeps_its_outputs_and_leaves_no_batchnorm():
    from deepatlas.models import create_model

    torch.manual_seed(0)
    model = _random_statistics(create_model("yolo", in_channels=3, image_size=64,
                                            num_classes=10, width=16, p2=True))
    folded = fold_batchnorm(model)
    assert batchnorm_layers(model) > 20 and batchnorm_layers(folded) == 0
    assert model.training and not folded.training  # the original is not touched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = model.eval()(x), folded(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_the_folded_weights_are_the_formula():
    """W' = W γ / σ and b' = (b - μ) γ / σ + β, σ = sqrt(var + ε), per output channel."""
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 5, 3, bias=True), nn.BatchNorm2d(5, eps=1e-3)
    _random_statistics(nn.Sequential(norm))
    folded = fold_batchnorm(nn.Sequential(conv, norm))
    assert isinstance(folded[1], nn.Identity)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # γ / σ
    torch.testing.assert_close(folded[0].weight, conv.weight * scale[:, None, None, None])
    torch.testing.assert_close(folded[0].bias, (conv.bias - norm.running_mean) * scale
                               + norm.bias)


class ConvThenSkip(nn.Sequential):
    """A Sequential whose forward is not "each child in turn": the conv's output is used both
    before and after the BatchNorm, so folding the pair would change the function."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self[0](x)
        return z + self[1](z)


@pytest.mark.parametrize("model", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)),  # not after a conv
    lambda: ConvThenSkip(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)),  # another order of children
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)),
], ids=["after-relu", "sequential-subclass", "no-running-statistics"])
def test_a_batchnorm_that_cannot_be_folded_is_left_in_place(model):
    torch.manual_seed(0)
    model = _random_statistics(model())
    folded = fold_batchnorm(model)
    assert batchnorm_layers(folded) == 1
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(folded(x), model.eval()(x))


@pytest.mark.parametrize("norm_act", [True, False])
def test_a_separable_conv_folds_both_of_its_batchnorms(norm_act):
    from deepatlas.nn.conv import DepthwiseSeparableConv2d

    torch.manual_seed(0)
    block = _random_statistics(DepthwiseSeparableConv2d(4, 6, 3, padding=1, norm_act=norm_act))
    folded = fold_batchnorm(block)
    assert batchnorm_layers(folded) == 0
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), block.eval()(x), rtol=1e-5, atol=1e-5)
