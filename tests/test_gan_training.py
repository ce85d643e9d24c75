"""MAP 4.3 trained for real: the three GAN recipes run end to end on tiny settings, and the
quality measures behave as their definitions say."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepatlas.models.gan import Growth, at_stage
from deepatlas.tasks.gan_quality import class_coverage, frechet_distance

TINY = ["--set", "data.name=digits", "--set", "train.epochs=1", "--set", "model.width=16",
        "--set", "gan.discriminator_width=16", "--set", "gan.fd_samples=300"]


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    from deepatlas.cli.main import main

    out = tmp_path_factory.mktemp("judge") / "run"
    assert main(["train", "digits", "--out", str(out), "--set", "train.epochs=5",
                 "--set", "train.tensorboard=false", "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("recipe", ["gan-dcgan", "gan-wgan-gp", "gan-progan"])
def test_each_gan_recipe_trains_and_writes_samples(cli, tmp_path, recipe, digits_classifier):
    out = tmp_path / recipe
    code, stdout, err = cli("train", recipe, "--out", out, *TINY,
                            "--set", f"gan.classifier={json.dumps(str(digits_classifier))}")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # The summary reports the last epoch's measurement of the generator, not a placeholder:
    # one epoch of a 16-wide generator is far from the real digits (real vs real: FD ~ 0).
    for key in ("fd", "classes_covered", "class_entropy"):
        assert summary[key] == rows[-1][key], key
    assert summary["fd"] > 1.0 and summary["num_classes"] == 10
    assert all(np.isfinite(r["train_d_loss"]) and np.isfinite(r["train_g_loss"]) for r in rows)
    for name in ("samples/epoch-001.png", "samples/final.png", "losses.png", "last.pt"):
        assert (out / name).is_file(), name
    assert Image.open(out / "samples" / "final.png").size == (8 * 34 + 2,) * 2  # 8x8 of 32 px
    if recipe == "gan-progan":
        assert rows[-1]["resolution"] == 32  # grown through every stage in one short epoch
    assert f"fd {summary['fd']:.4g} after 1 epochs" in stdout and "samples in" in stdout


def test_sample_draws_a_grid_from_a_trained_generator(cli, tmp_path, digits_classifier):
    code, _, err = cli("train", "gan-progan", "--out", tmp_path / "run", *TINY,
                       "--set", f"gan.classifier={json.dumps(str(digits_classifier))}")
    assert code == 0, err
    code, out, err = cli("sample", tmp_path / "run", "--n", "16", "--out", tmp_path / "g.png")
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size == (4 * 34 + 2,) * 2
    code, _, err = cli("sample", digits_classifier, "--out", tmp_path / "x.png")
    assert code == 2 and "not a GAN run" in err



def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)) @ rng.normal(size=(8, 8))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    # A pure translation leaves the covariances equal: FD is exactly ||shift||^2.
    distances = [frechet_distance(x, x + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert distances == pytest.approx([8 * s * s for s in (0.1, 0.5, 1.0, 2.0)], rel=1e-6)


def test_frechet_distance_matches_scipy_and_survives_dead_features():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2000, 6)), rng.normal(size=(1500, 6)) * 0.7 + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(
        ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-9)
    a[:, 0] = 0  # a ReLU unit that never fires: singular covariance, still a finite answer
    assert np.isfinite(frechet_distance(a, b))


def test_class_coverage_tells_collapse_from_variety():
    k = 10
    uniform = torch.eye(k).repeat(50, 1)  # every class equally often
    collapsed = torch.eye(k)[torch.zeros(500, dtype=torch.long)]
    assert class_coverage(uniform) == {"class_entropy": pytest.approx(1.0),
                                       "classes_covered": 10, "num_classes": 10}
    assert class_coverage(collapsed)["class_entropy"] == pytest.approx(0.0)
    assert class_coverage(collapsed)["classes_covered"] == 1


def test_progan_growth_schedule_fades_each_new_stage_in():
    growth = Growth(stages=4, total_steps=400, fade=0.5)
    assert growth.at(0) == (0, 1.0) and growth.at(99) == (0, 1.0)
    assert growth.at(100) == (1, 0.0) and growth.at(125) == (1, 0.5)
    assert growth.at(150) == (1, 1.0) and growth.at(399) == (3, 1.0)
    x = torch.rand(2, 1, 32, 32)
    assert at_stage(x, 3, 1.0).shape == (2, 1, 32, 32)
    low = at_stage(x, 1, 1.0)
    assert low.shape == (2, 1, 8, 8) and torch.allclose(low, torch.nn.functional.avg_pool2d(x, 4))
    faded = at_stage(x, 1, 0.0)  # alpha 0: exactly the 4 px image, upsampled
    assert torch.allclose(faded, torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(x, 8), scale_factor=2))
