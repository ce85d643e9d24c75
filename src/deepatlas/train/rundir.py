"""The run directory's guard: never start a new run over an existing checkpoint."""

from __future__ import annotations

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
