"""Every registered model builds on CPU, has the right output shape, no NaN, and every
parameter receives a gradient (timm's test, here for deepatlas's registry)."""

import pytest
import torch
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models import create_model, list_models, model_options

SHAPES = {"resnet18": (3, 64), "resnet50": (3, 64)}  # (channels, size); others: 1 x 28


@pytest.mark.parametrize("name", list_models("image"))
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    channels, size = SHAPES.get(name, (1, 28))
    model = create_model(name, in_channels=channels, image_size=size, num_classes=7)
    # Zero-initialised BN scales (identity-at-init residual blocks) would block the gradient
    # to the conv before them at step 0; give them a scale so every parameter is checked.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    x = torch.randn(4, channels, size, size)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:  # frozen by design (airbench's whitening, no-scale BN)
            assert p.grad is None, f"{name}.{pname} is frozen yet got a gradient"
            continue
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} got an all-zero gradient"


def test_mlp_is_map_1_1():
    """depth = L affine layers with the activation between them and none after the last."""
    model = create_model("mlp", in_channels=1, image_size=8, num_classes=10, depth=4, width=32,
                         activation="tanh")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [32, 32, 32, 10]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 3
    assert isinstance(list(model.modules())[-1], nn.Linear)


def test_resnet_depth_counts_weighted_layers():
    model = create_model("resnet", in_channels=3, num_classes=10, depth=20, width=16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 20
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.27e6, rel=0.03)


def test_bad_model_options_name_the_valid_ones():
    with pytest.raises(UserError, match="depth must be 6n \\+ 2"):
        create_model("resnet", depth=10)
    with pytest.raises(UserError, match="no option 'widht'.*did you mean 'width'"):
        create_model("mlp", widht=3)
    with pytest.raises(UserError, match="unknown model 'resnt'.*did you mean 'resnet'"):
        model_options("resnt")


def test_mlp_batch_norm_normalises_before_each_hidden_activation():
    from deepatlas.nn import BatchNorm1d

    model = create_model("mlp", in_channels=1, image_size=8, num_classes=10, depth=3, width=16,
                         activation="sigmoid", batch_norm=True)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "Sigmoid", "Linear", "BatchNorm1d",
                     "Sigmoid", "Linear"]
    assert sum(isinstance(m, BatchNorm1d) for m in model.modules()) == 2


@pytest.mark.parametrize("residual", [True, False])
def test_residual_mlp_blocks_are_relu_of_x_plus_f_or_of_f(residual):
    torch.manual_seed(0)
    model = create_model("residual-mlp", in_channels=1, image_size=8, num_classes=10, blocks=2,
                         width=16, residual=residual)
    x = torch.randn(5, 16)
    block = model[3]  # Flatten, Linear, ReLU, then the blocks
    f = block.f(x)
    expected = torch.relu(x + f) if residual else torch.relu(f)
    torch.testing.assert_close(block(x), expected)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
