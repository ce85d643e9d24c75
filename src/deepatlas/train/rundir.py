"""The run directory's guard: never start a new run over an existing checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

from deepatlas.errors import UserError


def prepare_out_dir(out_dir: Path, resume: bool) -> None:
    """Create ``out_dir`` and check it is writable; refuse to overwrite a run unless resuming,
    and to resume where there is nothing to resume."""
    last = out_dir / "last.pt"
    if resume and not last.is_file():
        raise UserError(f"--resume: {last} does not exist; drop --resume to start a new run "
                        "there, or pass the --out of the run to continue")
    if not resume and last.is_file():
        raise UserError(f"{out_dir} already holds a run (last.pt); pass --resume to continue it "
                        "or choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.pt.*.tmp"):  # a checkpoint write cut short by a crash
            stale.unlink()
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to the output directory {out_dir}: "
                        f"{exc.strerror or exc}; choose another --out") from None


def start_fresh_run(out_dir: str | Path, resume: bool, what: str) -> Path:
    """The run directory of a short task (graphs, sequences), which has no --resume."""
    if resume:
        raise UserError(f"--resume is for image runs; a {what} run is short: start it again "
                        "without --resume")
    out = Path(out_dir)
    prepare_out_dir(out, resume=False)
    return out


class RunFiles:
    """config.toml at the start, a metrics.jsonl line per epoch, summary.json at the end: the
    run directory of the small tasks (graphs, sequences), like the image Trainer's."""

    def __init__(self, out_dir: Path, config) -> None:
        import tomli_w

        self.out_dir, self.config = out_dir, config
        self.history: list[dict] = []
        self.t0 = time.perf_counter()
        (out_dir / "config.toml").write_text(tomli_w.dumps(config.to_dict()))
        (out_dir / "metrics.jsonl").write_text("")

    def log(self, metrics: dict) -> None:
        self.history.append(metrics)
        with (self.out_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        print(f"epoch {metrics['epoch']:>3}/{self.config.train.epochs}  " + "  ".join(
            f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch"), flush=True)

    def summary(self, extra: dict) -> dict:
        best = max(self.history, key=lambda m: m["test_acc"])
        summary = {"recipe": self.config.recipe, "test_acc": self.history[-1]["test_acc"],
                   "best_test_acc": best["test_acc"], "best_test_epoch": best["epoch"],
                   "epochs": len(self.history), "wall_s": time.perf_counter() - self.t0,
                   "seed": self.config.seed, "out_dir": str(self.out_dir), **extra}
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
