import copy
import json

import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.tasks import fit
from deepatlas.train import Callback, EarlyStopping, load_checkpoint
from deepatlas.train.checkpoint import save_checkpoint

FAST = ["train.epochs=6", "train.tensorboard=false"]


def test_digits_short_run_reaches_95_percent_and_writes_the_run_dir(tmp_path):
    config = load_recipe("digits", ["train.epochs=8"])
    summary = fit(config, tmp_path, progress=False)
    assert summary["test_acc"] >= 0.95
    for name in ("config.toml", "metrics.jsonl", "summary.json", "last.pt", "best.pt"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tb").iterdir()), "no TensorBoard events"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert set(rows[0]) >= {"epoch", "train_loss", "val_acc", "test_loss", "test_acc", "lr",
                            "wall_s"}
    saved = json.loads((tmp_path / "summary.json").read_text())
    # best.pt follows the validation split, never the test set
    best_val = max(r["val_acc"] for r in rows)
    best = next(r for r in rows if r["val_acc"] == best_val)
    assert saved["monitor"] == "val_acc" and saved["best_monitored_epoch"] == best["epoch"]
    assert saved["best"]["test_acc"] == best["test_acc"]
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best["epoch"]
    assert saved["data"]["val_fraction"] == 0.1 and saved["data"]["val"] == 144
    assert 0 < saved["test_acc"] <= 1 and saved["torch"] == torch.__version__
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 8 and state["config"]["recipe"] == "digits"
    assert set(state) >= {"model", "optimizers", "schedulers", "scalers", "rng", "callbacks"}


class StopAfter(Callback):
    """Stops the run after ``epoch`` epochs, as a user's interruption would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, metrics):
        if metrics["epoch"] >= self.epoch:
            trainer.should_stop = True


@pytest.mark.parametrize("extra", [
    ["data.augment=crop", "model.dropout=0.3"],  # RNG used by augmentation and dropout
    ["model.name=cnn", "model.width=8", "train.ema_decay=0.9", "train.ema_warmup_steps=5",
     "schedule.name=onecycle",
     "optim.name=sgd", "optim.lr=0.05", "train.clip_grad_norm=1.0"],
])
def test_resume_after_stopping_gives_the_same_weights(tmp_path, extra):
    overrides = FAST + extra + ["train.deterministic=true"]
    fit(load_recipe("digits", overrides), tmp_path / "full", progress=False)
    fit(load_recipe("digits", overrides), tmp_path / "cut", progress=False,
            callbacks=[StopAfter(2)])
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    fit(load_recipe("digits", overrides), tmp_path / "cut", progress=False,
            resume=True)
    full, resumed = (load_checkpoint(tmp_path / run / "last.pt") for run in ("full", "cut"))
    for part in ("model", "ema"):  # the average too: its ramp resumes where it was
        for key in full[part] or {}:
            assert torch.equal(full[part][key], resumed[part][key]), (part, key)
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 6


@pytest.mark.parametrize("values, mode, patience, min_delta, stops_at", [
    ([0.5, 0.6, 0.6, 0.6, 0.6], "max", 3, 0.0, 5),  # equal is no improvement
    ([0.5, 0.6, 0.61, 0.615, 0.62], "max", 2, 0.02, 4),  # gains under min_delta count as none
    ([0.5, 0.6, 0.55, 0.7, 0.65, 0.64, 0.63], "max", 3, 0.0, 7),  # patience restarts on a gain
    ([1.0, 0.9, 0.95, 0.97], "min", 2, 0.0, 4),  # loss: lower is better
    ([1.0, 0.9, 0.8, 0.7], "min", 1, 0.0, None),
])
def test_early_stopping_patience(values, mode, patience, min_delta, stops_at):
    stopper = EarlyStopping("m", patience=patience, min_delta=min_delta, mode=mode)
    stopped = [epoch for epoch, v in enumerate(values, 1) if stopper.step(v, epoch)]
    assert (stopped[0] if stopped else None) == stops_at


def test_early_stopping_stops_a_run_and_is_recorded(tmp_path):
    config = load_recipe("digits", ["train.epochs=40", "data.val_fraction=0.2",
                                    "train.early_stopping_patience=2",
                                    "train.early_stopping_min_delta=0.5"])
    summary = fit(config, tmp_path, progress=False)
    # With min_delta = 50 points nothing after epoch 1 counts as a gain: stop at epoch 3.
    assert summary["epochs"] == 3 and summary["stopped_early"]
    assert summary["monitor"] == "val_acc" and summary["data"]["val"] == 287


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "last.pt")

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"model": {"w": torch.zeros(2)}}, tmp_path / "last.pt")
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_label_smoothing_and_adamw_run(tmp_path):
    config = load_recipe("digits", ["train.epochs=2", "regularize.label_smoothing=0.2",
                                    "schedule.name=constant", "train.precision=bf16"])
    summary = fit(config, tmp_path, progress=False)
    assert summary["precision"] == "bfloat16" and summary["test_acc"] > 0.5


@pytest.mark.parametrize("overrides", [["optim.name=adamw"],
                                       ["optim.name=sgd", "optim.momentum=0.9"]])
def test_the_optimizers_foreach_path_gives_the_per_parameter_loops_bits(overrides):
    """build_optimizer takes torch's foreach path; the results committed before it were
    trained with the per-parameter loop, and must come out the same to the last bit."""
    from deepatlas.models import create_model
    from deepatlas.train.optim import build_optimizer, param_groups

    cfg = load_recipe("detect-scenes", overrides).optim
    torch.manual_seed(0)
    model = create_model("yolo", in_channels=3, image_size=64, num_classes=10, width=8)
    twin = copy.deepcopy(model)
    fast = build_optimizer(model, cfg)
    loop = type(fast)(param_groups(twin, cfg.weight_decay), foreach=False,
                      **{k: v for k, v in fast.defaults.items()
                         if k in ("lr", "betas", "momentum", "nesterov")})
    assert fast.defaults["foreach"] is True
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        for a, b in zip(model.parameters(), twin.parameters()):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        fast.step()
        loop.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_schedules_have_their_documented_shape():
    from deepatlas.config import ScheduleConfig
    from deepatlas.train.optim import lr_factor

    one = [lr_factor(s, ScheduleConfig(name="onecycle"), 10, 4) for s in range(40)]
    assert one[0] == pytest.approx(1 / 25 + (1 - 1 / 25) / 10)  # climbing from peak/25
    assert max(one) == one[9] == 1.0  # the peak at 25% of the steps
    assert one[-1] < 0.01 and all(a >= b for a, b in zip(one[9:], one[10:]))
    cos = [lr_factor(s, ScheduleConfig(warmup_epochs=1, final_lr_fraction=0.1), 10, 4)
           for s in range(41)]
    assert cos[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert cos[25] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert cos[40] == pytest.approx(0.1)
    # one-cycle is defined even for a run of a single step
    assert lr_factor(0, ScheduleConfig(name="onecycle"), 1, 1) == 1.0


def test_clip_grad_norm_bounds_the_total_norm_after_unscaling(tmp_path, monkeypatch):
    """train.clip_grad_norm: the norm the optimizer sees equals the bound when exceeded."""
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = original(parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters]))
        seen.append((float(before), float(after)))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    config = load_recipe("digits", ["train.epochs=1", "train.clip_grad_norm=0.05",
                                    "train.precision=bf16", "train.tensorboard=false"])
    fit(config, tmp_path, progress=False)
    assert len(seen) == (1437 - 144) // 64  # 10% of the training images are validation
    for before, after in seen:
        assert after == pytest.approx(min(before, 0.05), rel=1e-4)
    assert max(before for before, _ in seen) > 0.05  # the bound was really in force


def test_resume_keeps_the_runs_own_config_and_changes_only_the_named_keys(cli, tmp_path):
    import tomllib

    code, _, err = cli("train", "digits", "--out", tmp_path, "--no-progress", "--set",
                       "train.epochs=1", "--set", "regularize.label_smoothing=0.0", "--set",
                       "train.tensorboard=false")
    assert code == 0, err
    code, _, err = cli("train", "digits", "--out", tmp_path, "--resume", "--no-progress",
                       "--set", "train.epochs=2")
    assert code == 0, err
    saved = tomllib.loads((tmp_path / "config.toml").read_text())
    assert saved["train"]["epochs"] == 2  # named on resume
    assert saved["regularize"]["label_smoothing"] == 0.0  # the run's own, not the recipe's 0.1
    assert saved["train"]["tensorboard"] is False
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_a_key_no_one_reads_is_refused_and_defaults_are_not():
    from deepatlas.tasks import Gan, create_task, unused_keys

    assert unused_keys(load_recipe("gan-progan"), Gan) == []
    config = load_recipe("gan-dcgan", ["train.tta=flip", "regularize.mixup_alpha=0.2"])
    assert unused_keys(config, Gan) == ["train.tta", "regularize.mixup_alpha"]
    from deepatlas.errors import UserError

    with pytest.raises(UserError, match="train.tta does nothing for task gan"):
        create_task(config)


def test_a_log_gets_a_progress_line_a_minute_within_an_epoch(capsys, monkeypatch):
    """Not a terminal (a log, CI, nohup): the bar is off, and a line reports the step, the
    loss, the speed and the epoch's ETA every ``log_every_s`` (60 s by default)."""
    import time

    from deepatlas.train.progress import EpochProgress

    clock = iter(range(0, 1000, 30))  # 30 s a step
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    with EpochProgress(2, 5, steps=10, enabled=True) as bar:
        assert not bar.enabled and bar.log_every_s == 60  # pytest's stderr is not a tty
        for _ in range(5):
            bar.advance(1, loss=1.5)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "epoch 2/5  step 2/10  loss 1.5000  0.03 steps/s  epoch eta 240 s"
    assert len(lines) == 2
    with EpochProgress(1, 1, steps=10, enabled=False) as quiet:
        assert quiet.log_every_s == 0  # --no-progress: silent


def test_fit_arms_runs_every_arm_at_every_seed_and_pairs_them_by_seed(tmp_path):
    from deepatlas.lab.common import fit_arms

    arms = {"plain": ("digits", []), "with mixup": ("digits", ["regularize.mixup_alpha=0.2"])}
    seen = fit_arms(tmp_path, [3, 4], arms,
                    lambda summary, run: (summary["seed"], run.name,
                                          load_checkpoint(run / "last.pt")["config"]),
                    ["train.epochs=1", "train.limit_train_batches=2", "train.tensorboard=false"])
    assert list(seen) == ["plain", "with mixup"]
    for arm, runs in seen.items():
        assert [(seed, name) for seed, name, _ in runs] == [
            (3, f"{arm.replace(' ', '-')}-seed3"), (4, f"{arm.replace(' ', '-')}-seed4")]
    assert [c["regularize"]["mixup_alpha"] for _, _, c in seen["with mixup"]] == [0.2, 0.2]
    assert [c["regularize"]["mixup_alpha"] for _, _, c in seen["plain"]] == [0.0, 0.0]
    assert all(c["train"]["limit_train_batches"] == 2 for runs in seen.values()
               for _, _, c in runs)  # common reaches every run


def test_a_run_of_another_task_is_refused_with_what_it_is(tmp_path):
    from deepatlas.errors import UserError
    from deepatlas.train.checkpoint import load_run

    fit(load_recipe("digits", ["train.epochs=1", "train.limit_train_batches=2",
                               "train.tensorboard=false"]), tmp_path, progress=False)
    state, path = load_run(tmp_path, "classify-images", "unused")
    assert path.name == "best.pt" and state["task"] == "classify-images"
    with pytest.raises(UserError, match=r"is not an upscale run \(it is a classify-images run\); "
                                        r"upscale needs one"):
        load_run(tmp_path, "upscale", "upscale needs one")
