"""Signals and injected faults: how a run stops cleanly, and how the tests make it fail.

**Ctrl-C / SIGTERM** (:func:`catch_signals`): the Trainer finishes the step, saves
``last.pt`` and exits with the command that resumes; a second signal stops at once.

**Fault injection** for the tests of never-lose-a-run (``tests/test_faults.py``,
``tests/test_every_recipe.py``): environment variables, unset in real runs, that slow every
step, turn one step's loss into NaN, send SIGINT at a step, or kill the last rank at a step
as a killed process dies (no clean-up, first attempt only, so torchrun's restart resumes).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from deepatlas.train.distributed import DistEnv

TEST_STEP_DELAY = "DEEPATLAS_TEST_STEP_DELAY"  # seconds to sleep after every step
TEST_CRASH_AT_STEP = "DEEPATLAS_TEST_CRASH_AT_STEP"  # the last rank dies there, first attempt
TEST_NAN_AT_STEP = "DEEPATLAS_TEST_NAN_AT_STEP"  # the loss of that step becomes NaN
TEST_SIGNAL_AT_STEP = "DEEPATLAS_TEST_SIGINT_AT_STEP"  # the process sends itself SIGINT there


def catch_signals(on_first: Callable[[int], None], already: Callable[[], bool]
                  ) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to ``on_first(signum)``; when ``already()`` says one came
    before, raise KeyboardInterrupt instead. Returns the previous handlers, to restore; off
    the main thread (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if already():
            raise KeyboardInterrupt
        on_first(signum)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def step_delay() -> float:
    """Seconds to sleep after every step (0 in real runs)."""
    return float(os.environ.get(TEST_STEP_DELAY, "0"))


def nan_at(step: int) -> bool:
    """Whether the loss of ``step`` is to become NaN."""
    return os.environ.get(TEST_NAN_AT_STEP) == str(step)


def after_step(step: int, dist: DistEnv) -> None:
    """SIGINT to this process, or the last rank's death, when the test asked for it here."""
    if os.environ.get(TEST_SIGNAL_AT_STEP) == str(step):
        os.kill(os.getpid(), signal.SIGINT)
    crash_at = os.environ.get(TEST_CRASH_AT_STEP)
    if (crash_at and step == int(crash_at) and dist.rank == dist.world_size - 1
            and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):
        os._exit(17)  # a rank dies as a killed process would: no clean-up
