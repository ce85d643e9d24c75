"""MAP 8, speed: airbench's whitening layer, flip TTA, progressive resizing, evaluation every N
epochs, and the speed recipes end to end on generated files (their timings are benchmarks,
in benchmarks/, never tests)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from deepatlas.data import load_data, make_loader
from deepatlas.data.progressive import progressive_size
from deepatlas.nn.whitening import PatchWhitening
from deepatlas.train.runtime import autocast_dtype, evaluate_model
from fakedata import make_image_folder

# The speed recipes say precision = "auto": bf16 where this CPU has it natively, else fp32.
AUTO_PRECISION = str(autocast_dtype("auto", torch.device("cpu")) or torch.float32).split(".")[-1]


def test_patch_whitening_decorrelates_patches_to_unit_variance():
    torch.manual_seed(0)
    # Correlated images: smoothed noise, so neighbouring pixels share most of their variance.
    images = nn.functional.avg_pool2d(torch.randn(64, 3, 34, 34), 3, stride=1)  # (64, 3, 32, 32)
    layer = PatchWhitening(3, kernel_size=2, eps=1e-8)
    layer.fit(images)
    out = layer(images)  # (64, 24, 31, 31)
    d = 3 * 2 * 2
    assert out.shape == (64, 2 * d, 31, 31)
    coords = out[:, :d].permute(0, 2, 3, 1).reshape(-1, d).double()  # (N L, d)
    torch.testing.assert_close(coords.mean(0), torch.zeros(d, dtype=torch.double), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(torch.cov(coords.T), torch.eye(d, dtype=torch.double), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(out[:, d:], -out[:, :d])  # each filter and its negative
    assert not any(p.requires_grad for p in layer.parameters())


def test_flip_tta_averages_the_logits_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))  # not mirror-symmetric
    x, y = torch.randn(10, 2, 4, 4), torch.randint(0, 3, (10,))
    loss, acc = evaluate_model(model, [(x, y)], torch.device("cpu"), tta="flip")
    with torch.no_grad():
        logits = (model(x) + model(x.flip(3))) / 2
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-6)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    plain, _ = evaluate_model(model, [(x, y)], torch.device("cpu"))
    assert plain != pytest.approx(loss)


def test_progressive_size_follows_ffcv_resnet50_schedule():
    sizes = [progressive_size(e, 88, 160, 192) for e in range(88)]
    assert set(sizes[:65]) == {160} and set(sizes[76:]) == {192}
    assert sizes == sorted(sizes) and all(s % 32 == 0 for s in sizes)
    assert [progressive_size(e, 4, 32, 64) for e in range(4)] == [32, 32, 32, 64]


def test_streamed_training_crops_change_size_in_the_workers(tmp_path):
    make_image_folder(tmp_path, classes=2, per_class=4, size=48)
    data = load_data("imagenet", data_dir=str(tmp_path), image_size=32)
    loader = make_loader(data, "train", 4, augment="crop-flip", num_workers=1)
    assert next(iter(loader))[0].shape[-1] == 32
    loader.set_image_size(16)
    assert next(loader.iterate())[0].shape == (4, 3, 16, 16)
    workers = loader.loader
    loader.set_image_size(16)  # the same size again (every epoch): the workers are kept
    assert loader.loader is workers


def test_in_memory_batches_are_resized(mnist_dir):
    data = load_data("mnist", data_dir=str(mnist_dir))
    loader = make_loader(data, "train", 8)
    loader.set_image_size(14)
    assert next(iter(loader))[0].shape == (8, 1, 14, 14)


def _train(cli, tmp_path, recipe, *sets):
    args = ["train", recipe, "--out", tmp_path / "run", "--no-progress",
            "--set", "train.tensorboard=false"]
    for s in sets:
        args += ["--set", s]
    code, out, err = cli(*args)
    assert code == 0, err
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return json.loads((tmp_path / "run" / "summary.json").read_text()), \
        [json.loads(line) for line in lines], out


def test_eval_every_tests_every_nth_epoch_and_the_last(cli, tmp_path):
    summary, metrics, out = _train(cli, tmp_path, "digits", "train.epochs=3",
                                   "train.eval_every=2")
    assert ["test_acc" in m for m in metrics] == [False, True, True]
    assert summary["test_acc"] == metrics[-1]["test_acc"] > 0.5
    assert "epoch   1/3  train_loss" in out


def test_fashion_mnist_fast_recipe_end_to_end(cli, tmp_path, mnist_dir):
    summary, metrics, _ = _train(cli, tmp_path, "fashion-mnist-fast", f"data.dir={mnist_dir}",
                                 "train.epochs=2", "train.batch_size=50")
    assert summary["num_params"] > 0 and summary["precision"] == AUTO_PRECISION
    assert ["test_acc" in m for m in metrics] == [False, True]  # eval_every = 0
    from deepatlas.train import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "last.pt")
    whiten = state["model"]["whiten.weight"]  # fitted to the data: +-(unit eigen-directions)
    torch.testing.assert_close(whiten[4:], -whiten[:4])
    assert state["config"]["train"]["tta"] == "flip"



def test_imagenet_resnet50_under_torchrun_with_two_cpu_processes(tmp_path):
    make_image_folder(tmp_path / "data", classes=3, per_class=4, size=72)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # resnet18, not the recipe's resnet50 (the every-recipe test trains that one): this test is
    # about torchrun, progressive resizing and the evaluation schedule.
    sets = ["model.name=\"resnet18\"", "train.epochs=4", "train.batch_size=4", "train.eval_batch_size=6",
            "train.eval_every=2", "data.image_size=64", "data.train_size_start=32",
            "data.train_size_end=64", "data.num_workers=1", "train.tensorboard=false",
            f"data.dir={tmp_path / 'data'}"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "deepatlas", "train", "imagenet-resnet50",
                           "--out", tmp_path / "run", "--no-progress",
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_size"] for m in metrics] == [32, 32, 32, 64]
    assert ["test_acc" in m for m in metrics] == [False, True, False, True]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["precision"] == AUTO_PRECISION
    assert summary["data"]["train"] == 11 and summary["data"]["val"] == 1


def test_flip_translate_tta_is_airbench_weighting():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4, 3))
    x, y = torch.randn(6, 1, 4, 4), torch.randint(0, 3, (6,))
    loss, _ = evaluate_model(model, [(x, y)], torch.device("cpu"), tta="flip-translate")
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :4, :4], padded[..., 2:, 2:]

    def mirror_mean(z):
        return (model(z) + model(z.flip(3))) / 2

    with torch.no_grad():
        logits = (0.5 * mirror_mean(x) + 0.25 * mirror_mean(up_left)
                  + 0.25 * mirror_mean(down_right))
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-6)


def test_benchmark_results_record_the_machine(tmp_path):
    from deepatlas.train.runinfo import write_result

    path = write_result(tmp_path / "results", "bench", {"figure": 1.5})
    saved = json.loads(path.read_text())
    assert saved["figure"] == 1.5 and saved["torch"] == torch.__version__
    assert saved["cpu_threads"] >= 1 and path.name.startswith("bench-")


def test_gpu_benchmark_results_are_named_after_the_gpu(tmp_path, monkeypatch):
    """One host's CPU and GPU results must not overwrite each other (both hosts here are
    called "vm")."""
    from deepatlas.train import runinfo

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(runinfo, "machine_info", lambda device: {"device": str(device)})
    path = runinfo.write_result(tmp_path, "bench", {"figure": 1.5}, torch.device("cuda"))
    assert path.name == "bench-h200.json"
    assert json.loads(path.read_text())["device"] == "cuda"
    cpu = runinfo.write_result(tmp_path, "bench", {"figure": 2.0})
    assert cpu != path and json.loads(path.read_text())["figure"] == 1.5
