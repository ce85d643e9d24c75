"""Compression and deployment (MAP 5.3): distill, quantize, export, and eval of their files."""

import json
import warnings

import pytest
import torch

QUICK = ["--set", "train.epochs=4", "--set", "train.tensorboard=false", "--no-progress"]


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A small CIFAR-style ResNet trained briefly on digits: convs, BN, residual adds."""
    from deepatlas.cli.main import main

    out = tmp_path_factory.mktemp("resnet") / "run"
    code = main(["train", "digits", "--out", str(out), "--set", "model.name=resnet",
                 "--set", "model.depth=8", "--set", "model.width=16", "--set", "optim.name=sgd",
                 "--set", "optim.lr=0.1", "--set", "train.epochs=6", *QUICK[2:]])
    assert code == 0
    return out


def test_distill_trains_the_student_with_and_without_its_teacher(cli, tmp_path, resnet_run):
    code, out, err = cli("distill", "--teacher", resnet_run, "--student", "digits",
                         "--set", "model.width=32", "--compare", "--out", tmp_path / "s", *QUICK)
    assert code == 0, err
    result = json.loads((tmp_path / "s" / "distill.json").read_text())
    assert result["student_params"] * 10 <= result["teacher_params"]
    assert result["distilled"]["test_acc"] > 0.5 and result["no_teacher"]["test_acc"] > 0.5
    assert result["gain"] == pytest.approx(result["distilled"]["test_acc"]
                                           - result["no_teacher"]["test_acc"])
    assert "distill.teacher" not in out and "gain" in out
    saved = (tmp_path / "s" / "config.toml").read_text()
    assert f'teacher = "{resnet_run}"' in saved
    assert 'teacher = ""' in (tmp_path / "s" / "no-teacher" / "config.toml").read_text()


def test_the_teacher_changes_the_students_training(tmp_path, resnet_run):
    """Same seed, same data order: only the loss differs, so the weights must differ, and
    with alpha = 1 (no soft term) they must not."""
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit
    from deepatlas.train import load_checkpoint

    weights = {}
    for name, teacher, alpha in (("alone", "", 0.5), ("taught", str(resnet_run), 0.5),
                                 ("alpha1", str(resnet_run), 1.0)):
        config = load_recipe("digits", ["train.epochs=1", "train.tensorboard=false",
                                        f"distill.alpha={alpha}"])
        config.distill.teacher = teacher
        fit(config, tmp_path / name, progress=False)
        weights[name] = load_checkpoint(tmp_path / name / "last.pt")["model"]
    first = next(iter(weights["alone"]))
    assert not torch.equal(weights["alone"][first], weights["taught"][first])
    assert torch.equal(weights["alone"][first], weights["alpha1"][first])


def test_a_teacher_for_other_classes_is_refused(cli, tmp_path, mnist_dir):
    code, _, _ = cli("train", "mnist", "--out", tmp_path / "t", "--set", "data.name=mnist",
                     "--set", f"data.dir={mnist_dir}",
                     "--set", "train.epochs=1", "--set", "train.batch_size=50", *QUICK[4:])
    assert code == 0
    code, _, err = cli("distill", "--teacher", tmp_path / "t", "--student", "digits",
                       "--out", tmp_path / "s", *QUICK)
    assert code == 2 and "Traceback" not in err
    assert "distillation needs the same classes" in err or "reads 1x28x28 images" in err


def test_quantize_shrinks_and_speeds_up_without_losing_accuracy(cli, tmp_path, resnet_run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli("quantize", resnet_run, "--calibration", "256", "--out",
                             tmp_path / "int8.pt")
    assert code == 0, err
    noisy = [str(w.message)[:80] for w in caught if "quantiz" in str(w.message).lower()
             or "deprecat" in str(w.message).lower()]
    assert noisy == [], "the user should not see PyTorch's quantization notices"
    report = json.loads((tmp_path / "int8.json").read_text())
    assert report["calibration_images"] == 256 and report["method"] == "ptq"
    assert report["size_ratio"] < 0.35  # int8 weights + per-channel scales vs fp32
    assert report["accuracy_drop"] <= 0.02
    assert report["int8"]["latency_ms_batch256"] < report["fp32"]["latency_ms_batch256"]
    for key in ("latency_ms_batch1", "bytes", "test_acc"):
        assert report["int8"][key] > 0
    # eval reads the INT8 file and reproduces the accuracy the report measured.
    code, out, err = cli("eval", tmp_path / "int8.pt", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "int8" and result["test_acc"] == report["int8"]["test_acc"]


def test_quantize_with_qat_fine_tunes_and_reports_both(cli, tmp_path, resnet_run):
    code, out, err = cli("quantize", resnet_run, "--calibration", "64", "--qat", "--out",
                         tmp_path / "qat.pt")
    assert code == 0, err
    report = json.loads((tmp_path / "qat.json").read_text())
    assert report["method"] == "qat" and "int8_ptq" in report
    assert report["int8"]["test_acc"] >= report["fp32"]["test_acc"] - 0.03
    code, out, err = cli("eval", tmp_path / "qat.pt", "--json")
    assert code == 0 and json.loads(out)["test_acc"] == report["int8"]["test_acc"]


def test_quantize_refuses_what_it_cannot_do(cli, tmp_path, resnet_run):
    code, _, err = cli("quantize", resnet_run, "--calibration", "0")
    assert code == 2 and "--calibration must be >= 1" in err
    code, _, err = cli("quantize", tmp_path / "nothing")
    assert code == 2 and "no such checkpoint" in err


@pytest.mark.parametrize("fmt", ["pt2", "onnx", "torchscript", "safetensors"])
def test_export_matches_pytorch_and_evaluates(cli, tmp_path, resnet_run, fmt):
    from deepatlas.compress.modelfile import load_model_file

    path = tmp_path / f"model.{fmt}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli("export", resnet_run, "--format", fmt, "--out", path)
    assert code == 0, err
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
    reference = load_model_file(resnet_run)
    exported = load_model_file(path)
    assert exported.kind == fmt and exported.meta["data"] == reference.meta["data"]
    x = torch.randn(5, 1, 8, 8)  # a batch size the export never saw
    with torch.inference_mode():
        assert (exported.module(x) - reference.module.eval()(x)).abs().max() <= 1e-4
    code, out, err = cli("eval", path, "--json")
    assert code == 0, err
    code2, out2, _ = cli("eval", resnet_run, "--json")
    assert json.loads(out)["test_acc"] == pytest.approx(json.loads(out2)["test_acc"], abs=0.003)


def test_export_names_its_mistakes(cli, tmp_path, resnet_run):
    code, _, err = cli("export", resnet_run, "--format", "onnx", "--out", tmp_path / "m.pt2")
    assert code == 2 and "must end in .onnx" in err
    code, _, err = cli("eval", resnet_run / "best.pt", "--set", "optim.lr=1")
    assert code == 2 and "data.* keys only" in err
