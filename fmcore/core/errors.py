"""User-facing errors: one paragraph, exit code 2, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_USAGE = 2


class FmError(Exception):
    """An error caused by the user's input (recipe, option, file, run directory).

    The command line prints ``error: <message>`` and exits with :data:`EXIT_USAGE`.
    """

    exit_code: int = EXIT_USAGE


class NonFiniteLossError(FmError):
    """Training produced a NaN or infinite loss; the run stopped before checkpointing it."""


def close_matches(word: str, choices: Iterable[str]) -> list[str]:
    """Names in ``choices`` that look like ``word`` (best first)."""
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    matches = close_matches(word, choices)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def listing(names: Iterable[str]) -> str:
    """Comma-separated sorted names, or 'none' when there are none."""
    names = sorted(names)
    return ", ".join(names) if names else "none"
