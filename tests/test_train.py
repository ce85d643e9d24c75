import json

import pytest
import torch

from deepatlas.config import load_recipe
from deepatlas.train import Callback, EarlyStopping, Trainer, load_checkpoint
from deepatlas.train.checkpoint import save_checkpoint

FAST = ["train.epochs=6", "train.tensorboard=false"]


def test_digits_short_run_reaches_95_percent_and_writes_the_run_dir(tmp_path):
    config = load_recipe("digits", ["train.epochs=8"])
    summary = Trainer(config, tmp_path, progress=False).fit()
    assert summary["test_acc"] >= 0.95
    for name in ("config.toml", "metrics.jsonl", "summary.json", "last.pt", "best.pt"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tb").iterdir()), "no TensorBoard events"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert set(rows[0]) >= {"epoch", "train_loss", "test_loss", "test_acc", "lr", "wall_s"}
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["best_test_acc"] == max(r["test_acc"] for r in rows)
    assert 0 < saved["test_acc"] <= 1 and saved["torch"] == torch.__version__
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 8 and state["config"]["recipe"] == "digits"
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "rng", "callbacks"}


class StopAfter(Callback):
    """Stops the run after ``epoch`` epochs, as a user's interruption would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, metrics):
        if metrics["epoch"] >= self.epoch:
            trainer.should_stop = True


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.parametrize("extra", [
    ["data.augment=crop", "model.dropout=0.3"],  # RNG used by augmentation and dropout
    ["model.name=cnn", "model.width=8", "train.ema_decay=0.9", "schedule.name=onecycle",
     "optim.name=sgd", "optim.lr=0.05", "train.clip_grad_norm=1.0"],
])
def test_resume_after_stopping_gives_the_same_weights(tmp_path, extra):
    overrides = FAST + extra + ["train.deterministic=true"]
    Trainer(load_recipe("digits", overrides), tmp_path / "full", progress=False).fit()
    Trainer(load_recipe("digits", overrides), tmp_path / "cut", progress=False,
            callbacks=[StopAfter(2)]).fit()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    Trainer(load_recipe("digits", overrides), tmp_path / "cut", progress=False,
            resume=True).fit()
    full, resumed = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
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
    summary = Trainer(config, tmp_path, progress=False).fit()
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
    summary = Trainer(config, tmp_path, progress=False).fit()
    assert summary["precision"] == "bfloat16" and summary["test_acc"] > 0.5


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
    Trainer(config, tmp_path, progress=False).fit()
    assert len(seen) == 1437 // 64
    for before, after in seen:
        assert after == pytest.approx(min(before, 0.05), rel=1e-4)
    assert max(before for before, _ in seen) > 0.05  # the bound was really in force
