import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepatlas.data import load_data
from fakedata import make_image_folder


def test_recipes_lists_one_line_each(cli):
    code, out, _ = cli("recipes")
    assert code == 0
    lines = out.strip().splitlines()
    assert any(line.startswith("digits ") for line in lines) and len(lines) >= 5


def test_train_eval_predict_round_trip(cli, tmp_path):
    run = tmp_path / "run"
    code, out, _ = cli("train", "digits", "--out", run, "--set", "train.epochs=10",
                       "--no-progress")
    assert code == 0 and f"run written to {run}" in out
    summary = json.loads((run / "summary.json").read_text())

    code, out, _ = cli("eval", run, "--json")
    result = json.loads(out)
    assert code == 0 and result["test_images"] == 360
    # eval reads best.pt: the epoch the validation split chose, with its test accuracy
    assert result["epoch"] == summary["best_monitored_epoch"]
    assert result["test_acc"] == pytest.approx(summary["best"]["test_acc"])

    test = load_data("digits").test
    paths = []
    for i in range(20):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(path)
        paths.append(path)
    code, out, _ = cli("predict", run, *paths, "--top", "2")
    assert code == 0
    guesses = [line.split(": ")[1].split()[0] for line in out.strip().splitlines()]
    correct = sum(g == str(int(label)) for g, label in zip(guesses, test.labels[:20]))
    assert correct >= 17

    # The same digit in every encoding a user may have: each is converted (alpha dropped,
    # colour to grey, 16-bit and float scaled), and reads as the 8-bit greyscale file does.
    grey = test.images[0, 0].numpy().astype(np.uint8)
    variants = {"rgb.png": Image.fromarray(np.stack([grey] * 3, -1)),
                "rgba.png": Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], -1)),
                "palette.png": Image.fromarray(grey).convert("P"),
                "sixteen.png": Image.fromarray(grey.astype(np.uint16) * 257),
                "float.tiff": Image.fromarray(grey.astype(np.float32) / 255),
                "int32.tiff": Image.fromarray(grey.astype(np.int32))}
    for name, img in variants.items():
        img.save(tmp_path / name)
    (tmp_path / "broken.png").write_text("not an image")
    names = [*variants, "broken.png"]
    code, out, err = cli("predict", run, *[tmp_path / n for n in names])
    assert code == 2 and err.count("\n") == 1 and "broken.png is not an image" in err, err
    answers = [line.split(": ")[1].split()[0] for line in out.strip().splitlines()]
    assert answers == [guesses[0]] * len(variants), out
    code, out, _ = cli("predict", run, paths[0], tmp_path / "broken.png", "--json", "--device",
                       "cpu", "--top", "2")
    rows = json.loads(out)
    assert code == 2 and rows[0]["top"][0]["class"] == guesses[0] and len(rows[0]["top"]) == 2
    assert "is not an image" in rows[1]["error"]


def test_resume_and_out_dir_guards(cli, tmp_path):
    code, _, err = cli("train", "digits", "--out", tmp_path, "--resume")
    assert code == 2 and "does not exist; drop --resume" in err
    assert cli("train", "digits", "--out", tmp_path, "--set", "train.epochs=1")[0] == 0
    code, _, err = cli("train", "digits", "--out", tmp_path, "--set", "train.epochs=1")
    assert code == 2 and "already holds a run" in err  # never overwrite a checkpoint
    code, _, err = cli("train", "digits", "--out", tmp_path, "--resume",
                       "--set", "model.width=64")
    assert code == 2 and "differs from the config's" in err


def test_predict_rejects_a_file_that_is_not_an_image(cli, tmp_path):
    assert cli("train", "digits", "--out", tmp_path / "r", "--set", "train.epochs=1")[0] == 0
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    code, _, err = cli("predict", tmp_path / "r", bogus)
    assert code == 2 and "is not an image" in err


def test_missing_data_exits_2_from_a_real_process(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if "PYTHONPATH" in os.environ:  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.run([sys.executable, "-m", "deepatlas", "train", "mnist", "--out",
                           tmp_path / "r", "--set", "data.download=false"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "mnist-10k is not installed" in proc.stderr
    assert "deepatlas data get mnist-10k" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------- curriculum recipes end to end


def _train(cli, tmp_path, recipe, data_dir, *extra):
    code, out, err = cli("train", recipe, "--out", tmp_path / "run", "--no-progress",
                         "--set", f"data.dir={data_dir}", "--set", "train.epochs=1",
                         "--set", "train.tensorboard=false", *extra)
    assert code == 0, err
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def test_mnist_recipe_end_to_end(cli, tmp_path, mnist_dir):
    # the recipe's own set, mnist-10k, from a folder of its installed files
    images = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    (tmp_path / "m10k").mkdir()
    np.save(tmp_path / "m10k" / "images.npy", images)
    np.save(tmp_path / "m10k" / "labels.npy", np.arange(100, dtype=np.uint8) % 10)
    summary = _train(cli, tmp_path, "mnist", tmp_path / "m10k", "--set", "train.batch_size=20")
    assert summary["data"] == {"name": "mnist-10k", "source": str(tmp_path / "m10k"),
                               "train": 72, "test": 20, "val": 8, "val_fraction": 0.1}
    # and the full IDX files, with data.name=mnist
    summary = _train(cli, tmp_path / "idx", "mnist", mnist_dir, "--set", "data.name=mnist",
                     "--set", "train.batch_size=50")
    assert summary["data"] == {"name": "mnist", "source": str(mnist_dir), "train": 180,
                               "test": 60, "val": 20, "val_fraction": 0.1}




def test_imagenet_recipe_end_to_end(cli, tmp_path):
    make_image_folder(tmp_path / "data", classes=3, per_class=4)
    summary = _train(cli, tmp_path, "imagenet-resnet50", tmp_path / "data",
                     "--set", "train.batch_size=4", "--set", "data.train_size_start=0",
                     "--set", "data.train_size_end=0",
                     "--set", "train.eval_batch_size=6", "--set", "data.image_size=32",
                     "--set", "data.num_workers=0")
    assert summary["data"]["train"] == 11 and 0 <= summary["test_acc"] <= 1


def test_version_names_deepatlas_and_torch(cli, capsys):
    import pytest

    import deepatlas

    with pytest.raises(SystemExit) as exit_:
        cli("--version")
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"deepatlas {deepatlas.__version__} (torch 2.")


def test_your_own_recipe_file_trains_and_is_validated_like_a_shipped_one(cli, tmp_path):
    recipe = tmp_path / "tiny-mlp.toml"
    recipe.write_text('[model]\nname = "mlp"\nwidth = 32\n[train]\nepochs = 2\n'
                      'tensorboard = false\n', "utf-8")
    code, out, err = cli("train", recipe, "--out", tmp_path / "run", "--no-progress")
    assert code == 0, err
    assert 'recipe = "tiny-mlp"' in (tmp_path / "run" / "config.toml").read_text()
    (tmp_path / "typo.toml").write_text("[train]\nepoch = 2\n", "utf-8")
    (tmp_path / "broken.toml").write_text("[train\n", "utf-8")
    for name, message in (("typo.toml", "did you mean 'train.epochs'"),
                          ("broken.toml", "(TOML syntax)"), ("absent.toml", "no such recipe")):
        code, _, err = cli("train", tmp_path / name)
        assert code == 2 and message in err and "Traceback" not in err, err


def test_runs_lists_each_run_with_its_state_and_headline(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["--no-progress", "--set", "train.epochs=2", "--set", "train.tensorboard=false"]
    assert cli("train", "digits", "--out", "runs/done", *quick)[0] == 0
    monkeypatch.setenv("DEEPATLAS_TEST_NAN_AT_STEP", "3")
    assert cli("train", "digits", "--out", "runs/nan", *quick)[0] == 3
    monkeypatch.delenv("DEEPATLAS_TEST_NAN_AT_STEP")
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    rows = {r["run"]: r for r in json.loads(out)}
    assert rows["runs/done"]["state"] == "finished" and rows["runs/done"]["metric"] == "test_acc"
    assert rows["runs/nan"]["state"] == "diverged" and "NaN" in rows["runs/nan"]["detail"]
    code, out, _ = cli("runs")
    assert code == 0 and "runs/done  digits" in out and "test_acc" in out
    # Training there again (it stopped before its first checkpoint) clears the stopped state.
    assert cli("train", "digits", "--out", "runs/nan", *quick)[0] == 0
    assert {r["run"]: r for r in json.loads(cli("runs", "--json")[1])}["runs/nan"]["state"] \
        == "finished"


def test_every_help_shows_every_default_and_export_names_all_formats():
    import argparse

    from deepatlas.cli.main import build_parser

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from walk(child, f"{name} {sub}")
        yield name, parser

    for name, parser in walk(build_parser(), "deepatlas"):
        text = parser.format_help()
        for action in parser._actions:
            default = action.default
            if "(default" in (action.help or ""):  # it states the default in words
                continue
            if (action.option_strings and default not in (None, argparse.SUPPRESS)
                    and default is not False and default != []):
                assert str(default) in text, f"{name} --help hides {action.dest}={default}"
    export = dict(walk(build_parser(), "deepatlas"))["deepatlas export"].format_help()
    assert all(f in export for f in ("pt2", "onnx", "torchscript", "safetensors"))
