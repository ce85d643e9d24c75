"""Errors a user can act on.

Every problem caused by input (a recipe name, a config key, a data directory, a checkpoint) is
raised as a :class:`UserError`; the CLI prints its one-line message and exits with its code,
never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: the message says what is wrong and how to fix it. Exit code 2."""

    exit_code = 2


class TrainingDiverged(UserError):
    """The loss became NaN or Inf. Exit code 3."""

    exit_code = 3


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can resume. Exit code 130."""

    exit_code = 130


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """The error for a name that is not in a registry, naming the valid ones."""
    choices = sorted(choices)
    return UserError(
        f"unknown {kind} {name!r}{did_you_mean(name, choices)}; valid: {', '.join(choices)}"
    )
