"""The run directory's guard: one process at a time, and never a new run over an existing
checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from deepatlas.errors import UserError
from deepatlas.outputs import LOCK_FILE, lock_folder


def lock_run_dir(out_dir: Path) -> int:
    """An exclusive lock on ``out_dir/.lock`` (see :func:`deepatlas.outputs.lock_folder`)."""
    return lock_folder(out_dir, "a run is training there")


def prepare_out_dir(out_dir: Path, resume: bool) -> int:
    """Create ``out_dir``, lock it (see :func:`lock_run_dir`; returns the lock) and check it
    is writable; refuse to overwrite a run unless resuming, and to resume where there is
    nothing to resume."""
    last = out_dir / "last.pt"
    if resume and not out_dir.is_dir():
        raise UserError(f"--resume: {last} does not exist; drop --resume to start a new run "
                        "there, or pass the --out of the run to continue")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run_dir(out_dir)
    except OSError as exc:
        raise UserError(f"cannot write to the output directory {out_dir}: "
                        f"{exc.strerror or exc}; choose another --out") from None
    try:
        _check(out_dir, last, resume)
    except BaseException:
        os.close(lock)
        raise
    return lock


def remove_if_unused(out_dir: Path) -> None:
    """Remove ``out_dir`` if it holds nothing but its lock file: a run folder that this
    process created, and holds the lock of, for a run that stopped before writing anything.
    Parents that ``mkdir(parents=True)`` made stay. A second process that opened the lock in
    the instant before the removal is told the folder cannot be written, and can rerun."""
    try:
        if {p.name for p in out_dir.iterdir()} <= {LOCK_FILE}:
            (out_dir / LOCK_FILE).unlink(missing_ok=True)
            out_dir.rmdir()
    except OSError:
        pass  # tidying is best effort: the error the user sees is the one that stopped the run


def _check(out_dir: Path, last: Path, resume: bool) -> None:
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


STOPPED = "stopped.json"  # why a run stopped before its end; removed when it resumes


def mark_stopped(out_dir: Path, state: str, message: str, epoch: int, step: int) -> None:
    """Record that the run stopped (``state``: diverged or interrupted), for ``deepatlas
    runs``; best effort, since the run is already ending."""
    import json

    try:
        (out_dir / STOPPED).write_text(json.dumps({"state": state, "message": message,
                                                   "epoch": epoch, "step": step}) + "\n")
    except OSError:
        pass


def clear_stopped(out_dir: Path) -> None:
    (out_dir / STOPPED).unlink(missing_ok=True)
