"""Where a command may write: never over a run's checkpoint, never over an existing file the
user did not name with ``--force``; always through a temporary file and a rename, so that a
failed write leaves no half-written file behind."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from deepatlas.errors import UserError

CHECKPOINTS = ("last.pt", "best.pt")
RUN_FILES = ("config.toml", "summary.json", "metrics.jsonl")


def is_run_checkpoint(path: Path) -> bool:
    """``path`` is ``last.pt`` or ``best.pt`` of a run folder."""
    return path.name in CHECKPOINTS and any((path.parent / f).exists() for f in RUN_FILES)


def check_output(path: str | Path, force: bool = False, *, protect: Path | None = None) -> Path:
    """``path``, once it is safe to write: not a run's checkpoint (nor ``protect``, the file
    being read), not a folder, and not an existing file unless ``force``; its folder is
    created."""
    path = Path(path)
    resolved = path.resolve()
    if is_run_checkpoint(resolved):
        raise UserError(f"{path} is a checkpoint of a run; deepatlas never writes over one "
                        "(the run could no longer resume): choose another --out")
    if protect is not None and resolved == protect.resolve():
        raise UserError(f"{path} is the file this command reads; deepatlas never writes over "
                        "its input, even with --force: choose another --out")
    if path.is_dir():
        raise UserError(f"{path} is a folder; --out needs a file name")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it, or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"cannot write into {path.parent}: permission denied")
    return path


def check_out_dir(path: str | Path) -> Path:
    """``path`` as a folder to write into (created if needed), or one line saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; --out needs a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {path}: {exc.strerror or exc}; choose "
                        "another --out") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"cannot write into {path}: permission denied; choose another --out")
    return path


LOCK_FILE = ".lock"  # the file in a folder that lock_folder locks


def lock_folder(path: Path, holder: str) -> int:
    """An exclusive lock on ``path/.lock``, held until the returned descriptor is closed (or
    the process ends, however it ends): two processes writing one folder would mix their
    files. A UserError names the ``holder`` when another process has it."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{path} is in use by another deepatlas process ({holder}); wait for "
                        "it to finish, or choose another --out") from None
    return fd


def claim_out_dir(path: str | Path, holder: str) -> int:
    """:func:`check_out_dir`, then :func:`lock_folder` on it; the lock's descriptor."""
    folder = check_out_dir(path)
    try:
        return lock_folder(folder, holder)
    except OSError as exc:
        raise UserError(f"cannot write into {folder}: {exc.strerror or exc}; choose another "
                        "--out") from None


def write_via_temp(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then rename ``tmp`` to ``path``; on failure nothing is left behind and
    the error is one line."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
