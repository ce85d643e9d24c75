"""Progress for a terminal (a rich bar per epoch with loss and ETA) or for logs (a line a
minute within an epoch, and the trainer's line per epoch)."""

from __future__ import annotations

import sys
import time

from deepatlas.formats import PERCENT_SUFFIXES, format_metric, format_metrics  # noqa: F401
from contextlib import AbstractContextManager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class EpochProgress(AbstractContextManager):
    """``with EpochProgress(epoch, epochs, steps) as bar: bar.update(loss)`` per step."""

    def __init__(self, epoch: int, epochs: int, steps: int, enabled: bool,
                 log_every_s: float = 60.0) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        # A log (stderr not a terminal) would otherwise be silent for a whole epoch.
        self.log_every_s = log_every_s if enabled and not self.enabled else 0.0
        self.steps = steps
        self.done = 0
        self._progress: Progress | None = None
        self._task = None
        self._label = f"epoch {epoch}/{epochs}"
        self._start = self._last_log = time.perf_counter()
        self._first = 0

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._label, total=self.steps, loss="-")
        return self

    def advance(self, n: int = 1, loss: float | None = None) -> None:
        if self.done == 0 and loss is None:  # the resumed position: not steps of this run
            self._first = n
        self.done += n
        if self._progress is not None:
            fields = {} if loss is None else {"loss": f"{loss:.4f}"}
            self._progress.update(self._task, advance=n, **fields)
        now = time.perf_counter()
        if self.log_every_s and now - self._last_log >= self.log_every_s:
            self._last_log = now
            rate = (self.done - self._first) / max(now - self._start, 1e-9)  # steps/s
            eta = (self.steps - self.done) / max(rate, 1e-9)
            shown = "" if loss is None else f"  loss {loss:.4f}"
            print(f"{self._label}  step {self.done}/{self.steps}{shown}  {rate:.2f} steps/s  "
                  f"epoch eta {eta:.0f} s", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
