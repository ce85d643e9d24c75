"""MAP 2.1, 2.3, 3.2, 3.3: each component against PyTorch's own or an analytic fact."""

import math

import pytest
import torch
from torch import nn

from deepatlas.data.mixup import mixup
from deepatlas.losses import label_smoothing_cross_entropy, soft_target_cross_entropy
from deepatlas.models import create_model
from deepatlas.nn import (ACTIVATIONS, Dropout, Swish, he_normal_, init_model, make_activation,
                          xavier_uniform_)
from deepatlas.optim import SGD, Adam, Momentum


# ----------------------------------------------------------------- 2.1 activations


def test_swish_is_silu_at_beta_1_and_tends_to_relu():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(Swish()(x), nn.functional.silu(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(Swish(beta=50.0)(x), torch.relu(x), rtol=0, atol=1e-3)
    assert Swish()(torch.tensor(-1.0)) < 0  # non-monotonic: dips below zero


def test_learnable_swish_trains_beta():
    swish = Swish(beta=1.0, learnable=True)
    swish(torch.randn(10)).sum().backward()
    assert isinstance(swish.beta, nn.Parameter) and swish.beta.grad is not None
    assert "beta" not in dict(Swish().named_parameters())


def test_activation_registry():
    assert set(ACTIVATIONS) == {"sigmoid", "relu", "swish", "tanh", "gelu"}
    x = torch.randn(5)
    assert torch.equal(make_activation("sigmoid")(x), torch.sigmoid(x))
    assert isinstance(make_activation("swish"), Swish)
    model = create_model("mlp", depth=3, activation="swish")
    assert sum(isinstance(m, Swish) for m in model.modules()) == 2


# ----------------------------------------------------------------- 2.3 initialisation


@pytest.mark.parametrize("shape", [(300, 200), (16, 8, 3, 3)])
def test_xavier_uniform_matches_torch_and_its_formula(shape):
    torch.manual_seed(0)
    ours = xavier_uniform_(torch.empty(shape), gain=2.0)
    torch.manual_seed(0)
    theirs = nn.init.xavier_uniform_(torch.empty(shape), gain=2.0)
    assert torch.equal(ours, theirs)
    receptive = math.prod(shape[2:])
    n_in, n_out = shape[1] * receptive, shape[0] * receptive
    bound = 2.0 * math.sqrt(6 / (n_in + n_out))
    assert ours.abs().max() <= bound and ours.abs().max() > 0.98 * bound
    assert ours.var().item() == pytest.approx(bound**2 / 3, rel=0.05)


@pytest.mark.parametrize("shape", [(400, 300), (32, 16, 3, 3)])
def test_he_normal_matches_torch_and_has_variance_2_over_fan_in(shape):
    torch.manual_seed(1)
    ours = he_normal_(torch.empty(shape))
    torch.manual_seed(1)
    theirs = nn.init.kaiming_normal_(torch.empty(shape), mode="fan_in", nonlinearity="relu")
    assert torch.equal(ours, theirs)
    fan_in = shape[1] * math.prod(shape[2:])  # in_channels * kh * kw for a conv
    assert ours.var().item() == pytest.approx(2 / fan_in, rel=0.05)
    assert ours.mean().item() == pytest.approx(0, abs=0.01)


def test_init_model_reaches_every_linear_and_conv():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 4))
    init_model(model, "he")
    assert all(m.bias.abs().sum() == 0 for m in (model[0], model[2]))
    mlp = create_model("mlp", depth=4, width=512, init="xavier")
    hidden = [m for m in mlp.modules() if isinstance(m, nn.Linear)][1]
    assert hidden.weight.var().item() == pytest.approx(2 / 1024, rel=0.05)


# ----------------------------------------------------------------- 3.2 optimisers


def _trajectory(make_optimizer, steps=200):
    torch.manual_seed(0)
    a = torch.randn(20, 10, dtype=torch.float64)
    b = torch.randn(20, dtype=torch.float64)
    w = torch.randn(10, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([w])
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((a @ w - b) ** 2).mean() + 0.1 * w.pow(4).sum()  # a non-quadratic problem
        loss.backward()
        optimizer.step()
        out.append(w.detach().clone())
    return torch.stack(out)


@pytest.mark.parametrize("ours, theirs", [
    (lambda p: SGD(p, lr=0.01), lambda p: torch.optim.SGD(p, lr=0.01)),
    (lambda p: Momentum(p, lr=0.01, gamma=0.9),
     lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, dampening=0)),
    (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01, foreach=False)),
    (lambda p: Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
])
def test_optimisers_follow_torch_for_200_steps(ours, theirs):
    a, b = _trajectory(ours), _trajectory(theirs)
    assert (a - b).abs().max().item() < 1e-6
    assert (a[-1] - a[0]).abs().max() > 1e-2  # and they did move


def test_map_optimisers_train_from_the_cli_config(tmp_path):
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    config = load_recipe("digits", ["optim.name=adam", "optim.lr=0.002", "train.epochs=3",
                                    "model.init=he", "model.activation=swish"])
    summary = fit(config, tmp_path, progress=False)
    assert summary["test_acc"] > 0.9


# ----------------------------------------------------------------- 3.3 regularisation


def test_dropout_keeps_1_minus_p_and_preserves_the_mean():
    torch.manual_seed(0)
    x = torch.full((200_000,), 3.0)
    drop = Dropout(p=0.3)
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.005)
    assert torch.allclose(y[kept], torch.tensor(3.0 / 0.7))  # inverted: scaled by 1/(1-p)
    assert y.mean().item() == pytest.approx(3.0, rel=0.01)
    drop.eval()
    assert torch.equal(drop(x), x)
    assert Dropout().p == 0.5
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_label_smoothing_matches_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(32, 10, dtype=torch.float64), torch.randint(0, 10, (32,))
    for eps in (0.0, 0.1, 0.3):
        ours = label_smoothing_cross_entropy(logits, target, epsilon=eps)
        theirs = nn.CrossEntropyLoss(label_smoothing=eps)(logits, target)
        assert abs(ours.item() - theirs.item()) < 1e-12


def test_mixup_mixes_inputs_and_labels_by_the_same_lambda():
    torch.manual_seed(0)
    y = torch.randint(0, 5, (64,))
    x = nn.functional.one_hot(y, 5).double()  # inputs equal to their one-hot labels...
    mixed_x, mixed_y = mixup(x, y, alpha=0.4, num_classes=5)
    torch.testing.assert_close(mixed_x, mixed_y)  # ...so the mixtures must be equal too
    torch.testing.assert_close(mixed_y.sum(1), torch.ones(64, dtype=torch.float64))
    assert not torch.equal(mixed_y, x)
    assert soft_target_cross_entropy(torch.zeros(2, 5), torch.eye(5)[:2]).item() == (
        pytest.approx(math.log(5)))


def test_mixup_switch_in_a_recipe(tmp_path):
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    config = load_recipe("digits", ["regularize.mixup_alpha=0.2", "train.epochs=4"])
    assert fit(config, tmp_path, progress=False)["test_acc"] > 0.9


# ----------------------------------------------------------------- 5.3 distillation


def test_distillation_loss_matches_a_hand_computation():
    from deepatlas.losses import distillation_loss

    torch.manual_seed(0)
    zs, zt = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (6,))
    alpha, t = 0.3, 4.0
    ce = -(zs.log_softmax(1)[torch.arange(6), y]).mean()
    pt, ps = (zt / t).softmax(1), (zs / t).softmax(1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()  # KL(p_t || p_s)
    expected = alpha * ce + (1 - alpha) * t**2 * kl
    assert abs(distillation_loss(zs, zt, y, alpha, t).item() - expected.item()) < 1e-12
    assert distillation_loss(zt, zt, y, alpha=0.0).item() == pytest.approx(0, abs=1e-12)


def test_t_squared_keeps_the_soft_gradient_on_one_scale():
    """Without T^2 the soft term's gradient falls as 1/T^2; with it, it tends to a constant
    (the logit-matching limit (z_s - z_t) / (K N) for zero-mean logits)."""
    from deepatlas.losses import distillation_loss

    torch.manual_seed(0)
    zt = torch.randn(8, 10, dtype=torch.float64)
    zt -= zt.mean(1, keepdim=True)
    zs = torch.randn(8, 10, dtype=torch.float64)
    zs -= zs.mean(1, keepdim=True)
    norms = []
    for t in (5.0, 20.0, 80.0):
        s = zs.clone().requires_grad_(True)
        distillation_loss(s, zt, torch.zeros(8, dtype=torch.long), alpha=0.0,
                          temperature=t).backward()
        norms.append(s.grad.norm().item())
    limit = ((zs - zt) / (10 * 8)).norm().item()
    assert norms[-1] == pytest.approx(limit, rel=0.01)
    assert max(norms) / min(norms) < 1.1  # flat in T, where 1/T^2 alone would span 256x
