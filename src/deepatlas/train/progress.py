"""Progress for a terminal (a rich bar per epoch with loss and ETA) or for logs (one line per
epoch, printed by the trainer)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class EpochProgress(AbstractContextManager):
    """``with EpochProgress(epoch, epochs, steps) as bar: bar.update(loss)`` per step."""

    def __init__(self, epoch: int, epochs: int, steps: int, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.steps = steps
        self.done = 0
        self._progress: Progress | None = None
        self._task = None
        self._label = f"epoch {epoch}/{epochs}"

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
        self.done += n
        if self._progress is not None:
            fields = {} if loss is None else {"loss": f"{loss:.4f}"}
            self._progress.update(self._task, advance=n, **fields)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


PERCENT_SUFFIXES = ("_acc", "_exact_match", "_coverage")  # shares, shown as percentages


def format_metric(key: str, value: float) -> str:
    """One metric the way every command prints it: shares as percent, the rest to 4 digits."""
    if key.endswith(PERCENT_SUFFIXES):
        return f"{key} {value:.2%}"
    return f"{key} {value:.4g}"


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(format_metric(k, v) for k, v in metrics.items())
