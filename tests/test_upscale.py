"""Super-resolution (MAP 6.1, ESRGAN): the Y-channel metrics against scikit-image, the
relativistic losses against their formula, the RRDB generator, exact tiling, the patch bank,
and the two stages with `deepatlas upscale` and `eval` on a tiny trained run."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepatlas.data.superres import downscale, patch_bank
from deepatlas.losses import (PerceptualLoss, relativistic_discriminator_loss,
                              relativistic_generator_loss)
from deepatlas.models import create_model, list_models
from deepatlas.tasks.upscale import rgb_to_y, upscale_tiled, y_psnr_ssim


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random image and a noisy copy, (3, 40, 48) uint8."""
    g = torch.Generator().manual_seed(seed)
    clean = F.interpolate(torch.rand(1, 3, 10, 12, generator=g) * 255, size=(40, 48),
                          mode="bicubic", align_corners=False)[0].clamp(0, 255)
    noisy = (clean + 12 * torch.randn(clean.shape, generator=g)).clamp(0, 255)
    return clean.round().to(torch.uint8), noisy.round().to(torch.uint8)


def test_y_channel_is_bt601_as_skimage_computes_it():
    from skimage.color import rgb2ycbcr

    image, _ = _pair()
    ours = rgb_to_y(image)
    theirs = rgb2ycbcr(image.permute(1, 2, 0).numpy())[..., 0]
    assert np.abs(ours.numpy() - theirs).max() < 1e-9


def test_y_psnr_and_ssim_equal_skimage_metrics_with_the_border_cropped():
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    hr, sr = _pair(1)
    psnr, ssim = y_psnr_ssim(sr, hr, border=4)
    y_hr, y_sr = (rgb2ycbcr(t.permute(1, 2, 0).numpy())[4:-4, 4:-4, 0] for t in (hr, sr))
    assert psnr == pytest.approx(peak_signal_noise_ratio(y_hr, y_sr, data_range=255), abs=1e-5)
    # Wang et al.'s SSIM: Gaussian window sigma 1.5, population covariances
    theirs = structural_similarity(y_hr, y_sr, data_range=255, gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False)
    assert ssim == pytest.approx(theirs, abs=1e-6)
    assert y_psnr_ssim(hr, hr, border=4)[1] == pytest.approx(1.0)


def test_relativistic_losses_follow_their_formula():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(6, generator=g), torch.randn(5, generator=g)
    d_real = torch.sigmoid(real - fake.mean())  # D_Ra(x_r, x_f)
    d_fake = torch.sigmoid(fake - real.mean())  # D_Ra(x_f, x_r)
    expected_d = -(d_real.log().mean() + (1 - d_fake).log().mean())
    expected_g = -((1 - d_real).log().mean() + d_fake.log().mean())
    assert relativistic_discriminator_loss(real, fake) == pytest.approx(float(expected_d))
    assert relativistic_generator_loss(real, fake) == pytest.approx(float(expected_g))
    # a critic that ranks every real above every fake by a wide margin has ~zero loss
    assert relativistic_discriminator_loss(real + 50, fake) < 1e-6


def test_the_real_image_term_reaches_the_generators_fakes_too():
    """Unlike a standard GAN's, the relativistic generator loss's term about real images moves
    the fakes (through E[C(x_f)]): its gradient differs from the fake-only term's."""
    real, fake = torch.randn(4), torch.randn(4, requires_grad=True)
    relativistic_generator_loss(real, fake).backward()
    both = fake.grad.clone()
    fake.grad = None
    F.binary_cross_entropy_with_logits(fake - real.mean(), torch.ones(4)).backward()
    assert not torch.allclose(both, fake.grad, atol=1e-4)


def test_perceptual_loss_is_zero_on_equal_images_and_frozen():
    loss = PerceptualLoss()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    assert float(loss(x, x.detach()).detach()) == 0.0
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training
    y = torch.rand(2, 3, 16, 16)
    loss(x, y).backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_models("upscale") + list_models("upscale-critic"))
def test_every_upscale_model_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, image_size=32, width=8)
    x = torch.rand(2, 3, 8, 8) if name == "rrdb" else torch.rand(3, 3, 32, 32)
    out = model(x)
    assert out.shape == ((2, 3, 32, 32) if name == "rrdb" else (3,))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"


def test_rrdb_has_esrgans_structure():
    model = create_model("rrdb", blocks=2, width=16, growth=8)
    rdbs = [m for m in model.modules() if type(m).__name__ == "ResidualDenseBlock"]
    assert len(rdbs) == 6  # three dense blocks per RRDB
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    first = rdbs[0]
    assert [c.in_channels for c in first.convs] == [16, 24, 32, 40]  # dense: +growth each
    assert first.fuse.in_channels == 48 and first.fuse.out_channels == 16


def test_bicubic_skip_makes_the_residual_path_the_only_learned_part():
    model = create_model("rrdb", blocks=1, width=8, growth=4)
    torch.nn.init.zeros_(model.out.weight)
    torch.nn.init.zeros_(model.out.bias)
    x = torch.rand(1, 3, 6, 7)
    expected = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_tiles_join_into_exactly_the_whole_images_result():
    """In float64, with the trunk's weights enlarged so that its far pixels matter: tiles that
    overlap by the receptive radius give the whole image's result; one pixel less shows."""
    torch.manual_seed(0)
    model = create_model("rrdb", blocks=1, width=8, growth=4, bicubic_skip=False).double()
    with torch.no_grad():
        for p in model.trunk.parameters():
            p.mul_(30)
    lr = torch.rand(1, 3, 45, 38, dtype=torch.float64)
    with torch.no_grad():
        whole = model(lr)
    tiled = upscale_tiled(model, lr, tile=16)
    assert tiled.shape == whole.shape == (1, 3, 180, 152)
    assert (tiled - whole).abs().max() < 1e-12
    model.receptive_radius -= 1  # too little overlap: the seams show, so the test can fail
    assert (upscale_tiled(model, lr, tile=16) - whole).abs().max() > 1e-9


def test_patch_bank_pairs_each_crop_with_the_same_window_of_the_shrunk_photograph():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 52, 3), dtype=np.uint8) for _ in range(2)]
    hr, lr = patch_bank(images, 12, 16, 4, seed=3)
    assert hr.shape == (12, 3, 16, 16) and lr.shape == (12, 3, 4, 4)
    again, _ = patch_bank(images, 12, 16, 4, seed=3)
    assert torch.equal(hr, again)
    # every pair is one of the 8 symmetries of an HR window and of the same window of the
    # photograph shrunk whole (as the test photographs are), never of the crop shrunk alone
    pairs = set()
    for im in images:
        small = downscale(im, 4)
        for y in range(0, 25, 4):
            for x in range(0, 37, 4):
                for k in range(4):
                    for flip in (False, True):
                        a = np.rot90(im[y:y + 16, x:x + 16], k)
                        b = np.rot90(small[y // 4:y // 4 + 4, x // 4:x // 4 + 4], k)
                        a, b = (a[:, ::-1], b[:, ::-1]) if flip else (a, b)
                        pairs.add((np.ascontiguousarray(a).tobytes(),
                                   np.ascontiguousarray(b).tobytes()))
    for h, l in zip(hr, lr):
        key = tuple(np.ascontiguousarray(t.permute(1, 2, 0).numpy()).tobytes() for t in (h, l))
        assert key in pairs


# ------------------------------------------------------------------ the two stages, end to end

TINY = ["upscale.photo_side=64", "upscale.patch=16", "upscale.patches=16",
        "train.batch_size=4", "model.blocks=1", "model.growth=4", "model.width=8",
        "train.tensorboard=false", "upscale.discriminator_width=8"]


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory):
    from deepatlas.cli.main import main
    from fakedata import make_scene_sources

    root = tmp_path_factory.mktemp("sr")
    data = make_scene_sources(root / "data")
    sets = [*TINY, f"data.dir={data}", "train.epochs=2"]
    run = root / "psnr"
    assert main(["train", "upscale-psnr", "--out", str(run), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    return root, run, sets


def test_stage_one_scores_itself_beside_bicubic_and_draws_crops(stage_one):
    import json

    _, run, _ = stage_one
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    from deepatlas.data.superres import bicubic_upscale, load_superres

    root, run, _ = stage_one
    summary = json.loads((run / "summary.json").read_text())
    # the bicubic baseline, computed again here with PIL and skimage
    test = load_superres(str(root / "data"), photo_side=64, patch=16, patches=1).test
    expected = []
    for lr, hr in zip(test.lr, test.hr):
        big = bicubic_upscale(lr.permute(1, 2, 0).numpy(), 4)
        y_big, y_hr = (rgb2ycbcr(im)[4:-4, 4:-4, 0] for im in (big, hr.permute(1, 2, 0).numpy()))
        expected.append(peak_signal_noise_ratio(y_hr, y_big, data_range=255))
    assert summary["test_bicubic_psnr"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert 0 < summary["test_ssim"] <= 1
    assert (run / "crops.png").stat().st_size > 1000


def test_eval_rescores_the_saved_run_exactly(stage_one, cli):
    import json

    _, run, _ = stage_one
    code, out, err = cli("eval", run, "--json")
    assert code == 0, err
    result, summary = json.loads(out), json.loads((run / "summary.json").read_text())
    best = summary["best_monitored_epoch"]
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    at_best = next(h for h in history if h.get("epoch") == best and "test_psnr" in h)
    assert result["test_psnr"] == pytest.approx(at_best["test_psnr"], abs=1e-9)
    assert result["test_bicubic_psnr"] == pytest.approx(summary["test_bicubic_psnr"])


def test_upscale_command_writes_an_image_four_times_larger(stage_one, cli, tmp_path):
    from PIL import Image

    _, run, _ = stage_one
    small = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 30, 3), np.uint8)).save(small)
    code, out, err = cli("upscale", run, small, "--out", tmp_path / "big.png", "--tile", "8")
    assert code == 0, err
    assert "30x21 -> 120x84" in out
    tiled = np.asarray(Image.open(tmp_path / "big.png"))
    # an enlargement keeps the picture's brightness, roughly (this tiny model barely trained);
    # reading pixels wrongly scaled (once /255 too many) gave a black picture, 125 levels off
    assert abs(tiled.astype(float).mean() - np.asarray(Image.open(small)).mean()) < 30
    code, _, err = cli("upscale", run, small, "--out", tmp_path / "whole.png", "--tile", "0")
    assert code == 0, err
    whole = np.asarray(Image.open(tmp_path / "whole.png"))
    assert tiled.shape == (84, 120, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # float noise at rounding
    code, _, err = cli("upscale", run, small, "--out", tmp_path / "big.png")
    assert code == 2 and "exists" in err


def test_gan_stage_starts_from_stage_one_and_keeps_only_its_last_epoch(stage_one):
    import json

    from deepatlas.cli.main import main
    from deepatlas.train import load_checkpoint

    root, run, sets = stage_one
    gan = root / "gan"
    sets = [*sets[:-1], "train.epochs=1", f"train.init_from={run}"]
    assert main(["train", "upscale-esrgan", "--out", str(gan), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    summary = json.loads((gan / "summary.json").read_text())
    assert summary["monitor"] is None and summary["data"]["pretrained"].endswith(".pt")
    assert not (gan / "best.pt").exists()  # nothing to choose by: last.pt is the model
    state = load_checkpoint(gan / "last.pt")
    assert set(state["models"]) == {"generator", "critic"}
    history = [json.loads(line) for line in (gan / "metrics.jsonl").read_text().splitlines()]
    assert any("train_d_loss" in h and "train_perceptual" in h for h in history)


def test_gan_stage_refuses_a_stage_one_run_of_another_architecture(stage_one, cli):
    root, run, sets = stage_one
    sets = [s for s in sets if not s.startswith("model.width")] + ["model.width=12",
                                                                    f"train.init_from={run}"]
    code, _, err = cli("train", "upscale-esrgan", "--out", root / "bad", "--no-progress",
                       *[a for s in sets for a in ("--set", s)])
    assert code == 2 and "model.width is 12 here but 8" in err
