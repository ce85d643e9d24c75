"""Checkpoints that describe themselves and are never half-written.

A checkpoint is one ``torch.save`` file of plain containers and tensors: model, optimizer,
scheduler, scaler and EMA states, epoch and step, RNG states, callback states, the resolved
config and what the data looked like. It is written to a temporary file, fsynced and renamed
over the old one (atomic on POSIX), and read back with ``torch.load(weights_only=True)``, which
refuses pickles that would run code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepatlas.errors import UserError

FORMAT = "deepatlas-checkpoint-v1"
TEST_WRITE_DELAY = "DEEPATLAS_TEST_WRITE_DELAY"  # fault injection for tests/test_faults.py


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        if os.environ.get(TEST_WRITE_DELAY):  # tests kill the process inside this window
            time.sleep(float(os.environ[TEST_WRITE_DELAY]))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def find_checkpoint(run_or_file: str | Path) -> Path:
    """A checkpoint file, or the ``best.pt`` (else ``last.pt``) of a run directory."""
    path = Path(run_or_file)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path} holds no checkpoint (best.pt or last.pt); is it a run directory "
                        "written by `deepatlas train`?")
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file or run directory")
    return path


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""  # unreadable: torch.load below says why


def load_checkpoint(path: str | Path, formats: tuple[str, ...] = (FORMAT,)) -> dict[str, Any]:
    """Read a checkpoint safely; anything else is a one-line UserError. ``formats``: the
    markers accepted (``deepatlas quantize`` writes another one)."""
    path = Path(path)
    if path.is_file() and _head(path) not in (b"PK\x03\x04", b""):  # torch.save: a zip
        raise UserError(f"{path} is not a PyTorch checkpoint (an exported .onnx, .safetensors "
                        "or .pt2 file?); give the run directory, or its best.pt or last.pt")
    try:
        with warnings.catch_warnings():  # INT8 files: PyTorch's own notices, not the user's
            warnings.filterwarnings("ignore", "TypedStorage is deprecated")
            warnings.filterwarnings("ignore", ".*quantized tensor creation functions")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise UserError(f"{path} was refused: it is not a plain-tensor checkpoint and loading it "
                        f"could run code ({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{path} is truncated or corrupted and cannot be read "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    if not isinstance(state, dict) or state.get("format") not in formats:
        found = state.get("format") if isinstance(state, dict) else None
        raise UserError(f"{path} is not a deepatlas checkpoint (no '{FORMAT}' marker)"
                        + (f"; it is a {found} file, which this command does not take"
                           if found else ""))
    return state


def load_run(run_or_file: str | Path, task: str, refusal: str, label: str | None = None
             ) -> tuple[dict[str, Any], Path]:
    """The checkpoint of a ``task`` run (a run folder or a checkpoint file) and its path; any
    other run is a UserError naming what it is, that ends with ``refusal`` (which says what
    the command reads). ``label`` is the task's name in the message (``task`` by default)."""
    path = find_checkpoint(run_or_file)
    state = load_checkpoint(path)
    found = state.get("task")
    if found != task:
        def a(name: str) -> str:
            return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"

        what = f"it is {a(found)} run" if found else "it names no task"
        raise UserError(f"{path} is not {a(label or task)} run ({what}); {refusal}")
    return state, path


def load_pretrained(run_or_file: str | Path, task: str, train_it: str,
                    model_config: dict[str, Any], ignore: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], Path]:
    """The checkpoint ``train.init_from`` names, and its path, after checking that it is a
    ``task`` run (else the message says how to make one: ``train_it``) whose model is the one
    this recipe builds (keys in ``ignore``, dropout say, may differ)."""
    path = find_checkpoint(run_or_file)
    state = load_checkpoint(path)
    if state.get("task") != task:
        raise UserError(f"train.init_from={run_or_file} is a {state.get('task')} run; this "
                        f"recipe starts from a {task} run ({train_it})")
    theirs = state["config"]["model"]
    differ = [k for k in sorted(set(theirs) | set(model_config))
              if k not in ignore and theirs.get(k) != model_config.get(k)]
    if differ:
        k = differ[0]
        raise UserError(f"model.{k} is {model_config.get(k)!r} here but {theirs.get(k)!r} in "
                        f"the pretrained {path}; starting from it keeps its architecture")
    return state, path
