"""MAP 4.3: GAN losses, the gradient penalty and ProGAN's parts, against closed forms."""

import math

import pytest
import torch
from torch import nn

from deepatlas.losses import (gan_discriminator_loss, gan_minimax_generator_loss,
                              gan_nonsaturating_generator_loss, gradient_penalty,
                              wasserstein_critic_loss, wasserstein_generator_loss)
from deepatlas.models.gan import (DCGANDiscriminator, DCGANGenerator, EqualizedConv2d,
                                  MinibatchStdDev, PixelNorm, ProDiscriminator, ProGenerator)


def test_minimax_value_at_equilibrium_is_2_log_2():
    half = torch.zeros(16)  # logit 0: D = 1/2 everywhere
    assert gan_discriminator_loss(half, half).item() == pytest.approx(2 * math.log(2))
    assert gan_minimax_generator_loss(half).item() == pytest.approx(-math.log(2))


def test_nonsaturating_loss_keeps_the_gradient_when_d_rejects_fakes():
    fake = torch.full((8,), -6.0, requires_grad=True)  # D(G(z)) ~ 0.0025
    (g_minimax,) = torch.autograd.grad(gan_minimax_generator_loss(fake), fake)
    (g_nonsat,) = torch.autograd.grad(gan_nonsaturating_generator_loss(fake), fake)
    assert g_nonsat.abs().sum() > 100 * g_minimax.abs().sum()


def test_wasserstein_losses():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(0.0 - 3.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(0.0)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_gradient_penalty_on_a_linear_critic_is_known_in_closed_form(scale):
    """f(x) = w . x + b has gradient w everywhere: the penalty is (||w|| - 1)^2."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        critic[1].weight.mul_(scale / critic[1].weight.norm())
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((scale - 1) ** 2, abs=1e-6)


def test_gradient_penalty_drives_the_critic_gradient_norm_to_1():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    with torch.no_grad():
        critic[2].weight.mul_(20)  # start far from 1-Lipschitz
    real, fake = torch.randn(256, 2) + 2, torch.randn(256, 2) - 2
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)

    def mean_grad_norm():
        x = torch.cat([real, fake]).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        return g.norm(dim=1).mean().item()

    before = mean_grad_norm()
    for _ in range(300):
        optimizer.zero_grad()
        gradient_penalty(critic, real, fake).backward()
        optimizer.step()
    assert abs(before - 1) > 1 and abs(mean_grad_norm() - 1) < 0.1


@pytest.mark.parametrize("size", [28, 32])
def test_dcgan_shapes(size):
    g, d = DCGANGenerator(16, 1, size, 8), DCGANDiscriminator(1, size, 8)
    images = g(torch.randn(4, 16))
    assert images.shape == (4, 1, size, size) and images.abs().max() <= 1
    assert d(images).shape == (4,)
    assert DCGANDiscriminator(1, size, 8, batch_norm=False)(images).shape == (4,)


def test_pixel_norm_minibatch_std_and_equalized_lr():
    x = torch.randn(4, 8, 3, 3) * 5
    assert PixelNorm()(x).square().mean(1).allclose(torch.ones(4, 3, 3), atol=1e-4)
    out = MinibatchStdDev()(x)
    assert out.shape == (4, 9, 3, 3)
    assert out[:, -1].allclose(x.std(0, unbiased=False).mean().expand(4, 3, 3))
    conv = EqualizedConv2d(8, 16, 3)
    assert conv.weight.std().item() == pytest.approx(1, rel=0.1)  # stored at unit scale
    assert conv.scale == pytest.approx(math.sqrt(2 / 72))


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_progan_fade_in_starts_from_the_upsampled_lower_resolution(stage):
    torch.manual_seed(0)
    g, d = ProGenerator(16, 1, 8), ProDiscriminator(1, 8)
    z = torch.randn(3, 16)
    new = g(z, stage, alpha=0.0)
    assert new.shape == (3, 1, 4 * 2**stage, 4 * 2**stage)
    old = nn.functional.interpolate(g(z, stage - 1, alpha=1.0), scale_factor=2, mode="nearest")
    assert (new - old).abs().max() < 1e-5
    assert not torch.allclose(g(z, stage, alpha=1.0), old)
    x = torch.randn(3, 1, 4 * 2**stage, 4 * 2**stage)
    lower = d(nn.functional.avg_pool2d(x, 2), stage - 1, alpha=1.0)
    assert (d(x, stage, alpha=0.0) - lower).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["dcgan-generator", "dcgan-discriminator", "progan-generator",
                                  "progan-discriminator"])
def test_every_gan_model_builds_and_every_parameter_gets_a_gradient(name):
    from deepatlas.models import create_model, list_models

    assert name in list_models("gan")
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, image_size=32, width=8)
    growing = name.startswith("progan")
    # A growing model uses every resolution's layers only across all stages: run each one.
    stages = [(s, 0.5) for s in range(4)] if growing else [()]
    total = 0
    for extra in stages:
        size = 4 * 2 ** extra[0] if growing else 32
        if name.endswith("generator"):
            out = model(torch.randn(4, 64), *extra)
            assert out.shape == (4, 1, size, size)
        else:
            out = model(torch.randn(4, 1, size, size), *extra)
            assert out.shape == (4,)
        assert torch.isfinite(out).all()
        total = total + out.square().mean()
    total.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"
