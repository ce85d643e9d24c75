"""Every recipe, on the one Trainer, keeps the never-lose-a-run promises (the way timm tests
every model): on tiny data in its real on-disk format, each recipe

(a) killed with SIGKILL mid-run (a real process: no clean-up) and resumed ends with bitwise
    the weights of an unbroken run;
(b) with a NaN injected into one step's loss stops with exit 3 and keeps a good last.pt;
(c) interrupted by SIGINT saves, says how to resume, and resuming finishes the run exactly.

A new recipe is covered without editing this file; a new *data set* needs a tiny maker in
TINY_DATA (the test says so).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepatlas.config import list_recipes, load_recipe
from deepatlas.models import model_options
from deepatlas.tasks import TASKS
from deepatlas.tasks import _reads as task_reads
from deepatlas.train import load_checkpoint
from fakedata import (make_adult, make_cifar, make_clipart, make_image_folder, make_mnist,
                      make_proteins, make_speech)


def _idx(folder: Path) -> list[str]:
    return [f"data.dir={make_mnist(folder, n_train=120, n_test=30)}", "train.batch_size=24"]


def _mnist_10k(folder: Path) -> list[str]:
    """The installed form of `deepatlas data get mnist-10k`: images.npy and labels.npy."""
    import numpy as np

    folder.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (160, 28, 28), dtype=np.uint8)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", np.arange(160, dtype=np.uint8) % 10)
    return [f"data.dir={folder}", "train.batch_size=24"]


def _austen(folder: Path) -> list[str]:
    """The installed form of `deepatlas data get austen`: one UTF-8 .txt per novel."""
    from fakedata import make_austen

    return [f"data.dir={make_austen(folder)}", "train.batch_size=8", "model.context=16",
            "train.eval_batch_size=16"]


def _bible(folder: Path) -> list[str]:
    """The installed form of `deepatlas data get bible-en-es`: pairs.tsv."""
    from fakedata import make_bible_pairs

    return [f"data.dir={make_bible_pairs(folder)}", "train.batch_size=8", "data.vocab_size=300",
            "model.max_len=32", "train.eval_batch_size=64"]


def _bert_text(folder: Path) -> list[str]:
    """austen/ and rt-snippets/ in their installed forms, side by side."""
    from fakedata import make_bert_text

    return [f"data.dir={make_bert_text(folder)}", "train.batch_size=16", "data.vocab_size=300",
            "train.eval_batch_size=64"]


def _rt(folder: Path) -> list[str]:
    """rt-snippets' snippets.tsv; fine-tuning starts from scratch here (tests/test_bert.py
    fine-tunes a pretrained run)."""
    from fakedata import make_rt_snippets

    return [f"data.dir={make_rt_snippets(folder)}", "train.batch_size=16",
            "data.vocab_size=300", "train.init_from="]


def _scenes(folder: Path) -> list[str]:
    """mnist-10k and photos, installed, as the two subfolders copy-paste scenes read."""
    from fakedata import make_scene_sources

    return [f"data.dir={make_scene_sources(folder)}", "data.image_size=16", "model.depth=2",
            "train.batch_size=8", "train.limit_train_batches=4", "train.limit_eval_examples=16"]


def _photos(folder: Path) -> list[str]:
    """photos, installed (index.tsv and PNGs), for super-resolution; the GAN stage starts
    from scratch here (tests/test_upscale.py starts it from a stage-1 run)."""
    from fakedata import make_scene_sources

    return [f"data.dir={make_scene_sources(folder)}", "upscale.photo_side=64",
            "upscale.patch=16", "upscale.patches=16", "train.batch_size=4", "model.blocks=1",
            "model.growth=4", "train.init_from="]


# data.name -> how to make a tiny copy in its real format (returns --set overrides)
TINY_DATA = {
    "digits": lambda folder: ["train.batch_size=256"],
    "mnist": _idx,
    "mnist-10k": _mnist_10k,
    "fashion-mnist": _idx,
    "cifar10": lambda folder: [f"data.dir={make_cifar(folder, 10, per_batch=24)}",
                               "train.batch_size=24"],
    "imagenet": lambda folder: [f"data.dir={make_image_folder(folder, 3, 8, 40)}",
                                "train.batch_size=5", "data.image_size=32",
                                "data.train_size_start=0", "data.train_size_end=0",
                                "data.num_workers=0", "train.eval_batch_size=8"],
    "karate": lambda folder: ["train.epochs=4", "train.checkpoint_every_epochs=1"],
    "number-words": lambda folder: ["train.batch_size=64", "train.limit_train_batches=5"],
    "austen": _austen,
    "bible-en-es": _bible,
    "austen+rt-snippets": _bert_text,
    "rt-snippets": _rt,
    "digit-scenes": _scenes,
    "photos": _photos,
    "fashion-mnist-binary": lambda folder: [f"data.dir={make_mnist(folder, 500, 60)}",
                                            "train.batch_size=16"],  # 2 of 10 classes: ~90
    "adult": lambda folder: [f"data.dir={make_adult(folder)}", "train.batch_size=32"],
    "potts-proteins": lambda folder: [f"data.dir={make_proteins(folder)}", "train.batch_size=2",
                                      "contacts.length=32", "contacts.sequences=4",
                                      "contacts.families_per_chain=3",
                                      "contacts.eval_families_per_chain=1", "contacts.sweeps=1",
                                      "model.blocks=1"],
    "clipart": lambda folder: [f"data.dir={make_clipart(folder, per_category=20)}",
                               "train.batch_size=8", "data.vocab_size=300", "data.image_size=16",
                               "model.text_width=16", "model.embed_dim=8"],
    "speech": lambda folder: [f"data.dir={make_speech(folder)}", "train.batch_size=8",
                              "speech.symbols=characters", "model.prenet=8", "model.rnn=16",
                              "model.attention=8", "model.postnet=8", "speech.eval_sentences=2",
                              "speech.wer_sentences=0", "speech.griffin_lim_iterations=2"],
}
SMALL_MODEL = {"width": 8, "depth": 8, "hidden": 8, "d_model": 16, "heads": 2, "layers": 1,
               "z_dim": 16}
# train.deterministic stays off: on the CPU these recipes are bitwise repeatable without it
# (the test proves it), and it makes ProGAN's backward passes 3x slower.
# One epoch of 4+ steps, checkpointed every 2 and cut at step 3: a mid-epoch resume, the hard
# case (tests/test_faults.py covers epoch ends and real SIGKILLs at random moments).
COMMON = ["train.epochs=1", "train.tensorboard=false", "train.checkpoint_every_steps=2",
          "train.eval_every=0", "gan.fd_samples=32", "gan.discriminator_width=8",
          "upscale.discriminator_width=8"]


def tiny_overrides(recipe: str, folder: Path) -> list[str]:
    config = load_recipe(recipe)
    if config.data.name not in TINY_DATA:
        pytest.fail(f"recipe {recipe} trains on {config.data.name}: add a tiny maker for it "
                    "to TINY_DATA in tests/test_every_recipe.py")
    task = TASKS[config.task]
    sets = [s for s in COMMON if task_reads(s.split("=")[0], task)]
    sets += [f"model.{k}={v}" for k, v in SMALL_MODEL.items()
             if k in model_options(config.model["name"])]
    options = model_options(config.model["name"])  # a set's model.* keys fit some models
    return sets + [s for s in TINY_DATA[config.data.name](folder / "data")
                   if not s.startswith("model.") or s.split("=")[0][len("model."):] in options]


def _train(cli, recipe: str, out: Path, sets: list[str], *extra: str):
    args = ["train", recipe, "--out", out, "--no-progress", *extra]
    return cli(*args, *[a for s in sets for a in ("--set", s)])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "last.pt")
    flat = {f"{m}.{k}": v for m, sd in state["models"].items() for k, v in sd.items()}
    flat.update({f"ema.{k}": v for k, v in (state["ema"] or {}).items()})
    return flat


def _assert_same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} tensors differ, first {differ[0]}"


def _die_mid_run(recipe: str, out: Path, sets: list[str], step: int) -> tuple[int, str]:
    """Train ``recipe`` in a child process that dies with ``os._exit(17)`` after ``step`` (the
    trainer's crash hook): no clean-up, no flush, as under SIGKILL. Returns (exit code, stderr).

    Under `make test` (Linux, one thread per worker) the child is forked from this process,
    which has imported torch already: a fresh interpreter would spend about 5 s of each
    recipe's check importing it again. With more threads a fresh interpreter it is: a child
    forked from a process whose OpenMP pool is running waits forever on the pool's locks.
    Either way the child has this process's thread count, which matters: oneDNN sums
    convolutions in a per-thread order.
    """
    args = ["train", recipe, "--out", str(out), "--no-progress",
            *[a for s in sets for a in ("--set", s)]]
    log = out.parent / f"{out.name}.stderr"
    if sys.platform != "linux" or torch.get_num_threads() > 1:
        proc = subprocess.run([sys.executable, "-m", "deepatlas", *args], capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
                                   "DEEPATLAS_TEST_CRASH_AT_STEP": str(step)})
        return proc.returncode, proc.stderr
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here and never returns into pytest
        code = 99
        try:
            sys.stdout = sys.stderr = log.open("w", buffering=1)  # lines reach the file
            os.environ["DEEPATLAS_TEST_CRASH_AT_STEP"] = str(step)
            from deepatlas.cli.main import main

            code = main(args)
        except SystemExit as stop:  # argparse's exit 2
            code = stop.code if isinstance(stop.code, int) else 98
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 98)
    deadline = time.monotonic() + 300  # as the fresh interpreter's timeout
    try:
        while (reaped := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{recipe}: the forked run did not end within 300 s")
            time.sleep(0.05)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    return os.waitstatus_to_exitcode(reaped[1]), log.read_text() if log.is_file() else ""


# Every other recipe here, the rest in tests/test_every_recipe_more.py: `--dist loadfile` gives
# each worker a file, and one file of every recipe would keep one worker busy alone at the end.
RECIPES = sorted(list_recipes())


@pytest.mark.parametrize("recipe", RECIPES[::2])
def test_every_recipe_resumes_exactly_and_stops_cleanly(recipe, cli, tmp_path, monkeypatch):
    check_recipe(recipe, cli, tmp_path, monkeypatch)


def check_recipe(recipe: str, cli, tmp_path: Path, monkeypatch) -> None:
    """(a), (b) and (c) of the module's docstring, for ``recipe``."""
    monkeypatch.chdir(tmp_path)
    sets = tiny_overrides(recipe, tmp_path)
    unbroken = tmp_path / "unbroken"
    code, _, err = _train(cli, recipe, unbroken, sets)
    assert code == 0, err
    total = load_checkpoint(unbroken / "last.pt")["step"]
    # 4+ steps: a checkpoint at step 2, the cut at step 3, still mid-run
    assert total >= 4, f"{recipe}: {total} steps are too few to cut in the middle"
    middle = total // 2 + 1

    # (a) SIGKILL-equivalent: the process dies with os._exit after step `middle`, then resumes.
    killed = tmp_path / "killed"
    code, err = _die_mid_run(recipe, killed, sets, middle)
    assert code == 17, err[-2000:]
    assert load_checkpoint(killed / "last.pt")["step"] < middle <= total
    code, _, err = _train(cli, recipe, killed, sets, "--resume")
    assert code == 0, err
    _assert_same(unbroken, killed)

    # (b) a NaN loss: exit 3, one line, and last.pt stays a good checkpoint.
    diverged = tmp_path / "diverged"
    monkeypatch.setenv("DEEPATLAS_TEST_NAN_AT_STEP", str(middle - 1))
    code, _, err = _train(cli, recipe, diverged, sets)
    monkeypatch.delenv("DEEPATLAS_TEST_NAN_AT_STEP")
    assert code == 3 and "NaN" in err and err.count("\n") == 1, err
    kept = load_checkpoint(diverged / "last.pt")
    assert kept["step"] <= middle - 1
    assert all(torch.isfinite(v).all() for v in _weights(diverged).values()
               if v.is_floating_point())

    # (c) SIGINT: saved, the resume command printed, and resuming finishes exactly.
    interrupted = tmp_path / "interrupted"
    monkeypatch.setenv("DEEPATLAS_TEST_SIGINT_AT_STEP", str(middle))
    code, _, err = _train(cli, recipe, interrupted, sets)
    monkeypatch.delenv("DEEPATLAS_TEST_SIGINT_AT_STEP")
    assert code == 130 and f"--out {interrupted} --resume" in err, err
    assert load_checkpoint(interrupted / "last.pt")["step"] == middle
    code, _, err = _train(cli, recipe, interrupted, sets, "--resume")
    assert code == 0, err
    _assert_same(unbroken, interrupted)
