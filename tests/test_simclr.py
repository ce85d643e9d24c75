"""MAP 7.4 SimCLR: NT-Xent against pytorch-metric-learning and by hand, the views, the
network, and the probes' labelled images (the ones a supervised run on 1% trains on)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepatlas.data.augment import crop_flip_theta, simclr_views
from deepatlas.losses import nt_xent
from deepatlas.models import create_model


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_equals_pytorch_metric_learnings(temperature):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    theirs = losses.NTXentLoss(temperature=temperature)(torch.cat([z1, z2]),
                                                        torch.arange(16).repeat(2))
    torch.testing.assert_close(nt_xent(z1, z2, temperature), theirs, rtol=1e-5, atol=1e-6)


def test_nt_xent_by_hand():
    # One pair: the positive is the only other view, so the loss is -log 1 = 0.
    assert nt_xent(torch.randn(1, 4), torch.randn(1, 4)).item() == pytest.approx(0, abs=1e-6)
    # Twins identical, every other view orthogonal: -log e^(1/t) / (e^(1/t) + 2N - 2).
    n, t = 3, 0.5
    z = torch.eye(n)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-6)
    # Scale does not matter: the similarity is a cosine.
    assert nt_xent(5 * z, z, t).item() == pytest.approx(expected, rel=1e-6)


def test_the_local_losses_of_the_processes_average_to_the_global_batchs():
    """Under torchrun process r passes its own views and everyone's (rank order): its 2N
    anchors meet all 2·W·N views, and the W losses' mean is the loss of the whole batch."""
    torch.manual_seed(0)
    world, n = 3, 4
    z1, z2 = torch.randn(world * n, 8), torch.randn(world * n, 8)
    local = [nt_xent(z1[r * n:(r + 1) * n], z2[r * n:(r + 1) * n], 0.5, z1, z2, r)
             for r in range(world)]
    torch.testing.assert_close(sum(local) / world, nt_xent(z1, z2, 0.5))


def _one_process_of_two(rank: int, z1: torch.Tensor, z2: torch.Tensor, out) -> None:
    import torch.distributed as dist

    from deepatlas.tasks.simclr import gathered_nt_xent
    from deepatlas.train.distributed import DistEnv

    dist.init_process_group("gloo", init_method=f"file://{out / 'store'}", rank=rank,
                            world_size=2)
    b = len(z1) // 2
    mine = [z[rank * b:(rank + 1) * b].clone().requires_grad_() for z in (z1, z2)]
    loss = gathered_nt_xent(*mine, 0.5, DistEnv(rank=rank, local_rank=rank, world_size=2))
    loss.backward()
    torch.save({"loss": loss.detach(), "grads": [m.grad for m in mine]}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes_give_the_global_batchs_loss_and_gradient(tmp_path):
    """The task's loss under torchrun, run in 2 processes: their mean loss is NT-Xent of the
    whole batch, and each one's gradient, averaged as DDP averages, is the global one's."""
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 6, requires_grad=True), torch.randn(8, 6, requires_grad=True)
    mp.spawn(_one_process_of_two, args=(z1.detach(), z2.detach(), tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    expected = nt_xent(z1, z2, 0.5)
    torch.testing.assert_close((ranks[0]["loss"] + ranks[1]["loss"]) / 2, expected.detach())
    expected_grads = torch.autograd.grad(expected, (z1, z2))
    for i in range(2):  # each rank holds half of z1 and of z2; DDP divides by the 2 processes
        got = torch.cat([ranks[r]["grads"][i] for r in range(2)]) / 2
        torch.testing.assert_close(got, expected_grads[i])


def test_crop_flip_theta_is_the_identity_a_mirror_and_a_crop():
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    one, zero = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)

    def sample(theta: torch.Tensor) -> torch.Tensor:
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, align_corners=False)

    whole = sample(crop_flip_theta(one, one, zero, zero, torch.tensor([False, True, False])))
    torch.testing.assert_close(whole[0], x[0])
    torch.testing.assert_close(whole[1], x[1].flip(-1))
    # A quarter of the area (half the side), pushed to the right edge (cx = 1) on an image
    # whose value is its column: output column j reads input column 4 (1.5 + u_j / 2) - 1/2,
    # u_j = (2j + 1) / 8 - 1 (align_corners=False), clamped at the border: 3.75 ... 7.
    ramp = torch.arange(8, dtype=torch.float64).expand(1, 1, 8, 8)
    theta = crop_flip_theta(one[:1] / 4, one[:1], one[:1], zero[:1], torch.tensor([False]))
    grid = torch.nn.functional.affine_grid(theta, [1, 1, 8, 8], align_corners=False)
    crop = torch.nn.functional.grid_sample(ramp, grid, padding_mode="border",
                                           align_corners=False)[0, 0, 0]
    u = (2 * torch.arange(8, dtype=torch.float64) + 1) / 8 - 1
    torch.testing.assert_close(crop, (4 * (1.5 + u / 2) - 0.5).clamp(max=7))


def test_views_are_seeded_different_and_geometric():
    mean, std = torch.tensor(0.3).view(1, 1, 1, 1), torch.tensor(0.4).view(1, 1, 1, 1)
    x = (torch.rand(8, 1, 28, 28) - mean) / std
    a = simclr_views(x, mean, std, torch.Generator().manual_seed(1))
    b = simclr_views(x, mean, std, torch.Generator().manual_seed(1))
    c = simclr_views(x, mean, std, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, c)
    pixels = a * std + mean
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6  # still intensities in [0, 1]
    flat = (torch.full((4, 1, 28, 28), 0.5) - mean) / std  # a uniform image stays uniform
    view = simclr_views(flat, mean, std, torch.Generator().manual_seed(3)) * std + mean
    assert torch.allclose(view, view.mean((1, 2, 3), keepdim=True).expand_as(view), atol=1e-6)


def test_simclr_resnet_features_projection_and_gradients():
    torch.manual_seed(0)
    model = create_model("simclr-resnet", in_channels=1, image_size=28, num_classes=10,
                         width=8, projection_dim=24)
    for m in model.modules():  # give zero-init BN scales a value: every parameter checked
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    x = torch.randn(6, 1, 28, 28)
    assert model.features(x).shape == (6, 32)  # 4 x width, pooled
    z = model(x)
    assert z.shape == (6, 24) and torch.isfinite(z).all()
    nt_xent(z[:3], z[3:]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_probes_label_the_images_a_supervised_run_trains_on(tmp_path):
    from deepatlas.config import load_recipe
    from deepatlas.data import load_data
    from deepatlas.train import Context
    from deepatlas.train.distributed import DistEnv
    from deepatlas.tasks.simclr import SimCLR
    from fakedata import make_mnist

    folder = make_mnist(tmp_path / "fm", n_train=200, n_test=20)
    sets = [f"data.dir={folder}", "train.batch_size=16"]
    config = load_recipe("simclr-fashion", sets)
    task = SimCLR(config)
    task.setup(Context(config, torch.device("cpu"), DistEnv(), None,
                       torch.contiguous_format, tmp_path))
    supervised = load_data("fashion-mnist", data_dir=str(folder), image_size=28,
                           val_fraction=config.data.val_fraction, train_examples=20)
    chosen = task.data.train.images[torch.from_numpy(task.label_order[:20])]
    assert torch.equal(chosen, supervised.train.images)
    assert task.full_train == 200


def test_linear_probe_and_knn_on_separable_features():
    from deepatlas.tasks.simclr import knn_accuracy, linear_probe

    rng = np.random.default_rng(0)
    labels = np.arange(200) % 4
    features = rng.normal(size=(200, 8)) + 4 * np.eye(4, 8)[labels]
    assert linear_probe(features[:150], labels[:150], features[150:], labels[150:]) > 0.95
    assert knn_accuracy(features[:150], labels[:150], features[150:], labels[150:], k=5) > 0.95
    shuffled = rng.permutation(labels)  # labels unrelated to the features: chance
    assert knn_accuracy(features[:150], shuffled[:150], features[150:], shuffled[150:]) < 0.5
