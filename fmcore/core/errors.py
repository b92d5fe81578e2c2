"""User-facing errors: one paragraph, exit code 2, never a traceback.

:func:`user_error` is the one place that decides which exceptions other than :class:`FmError` are the user's
(a path that cannot be written, memory that the machine does not have, a device it lacks) and turns them into
an :class:`FmError`; everything else is an internal error (exit code 1, reported as such).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

EXIT_USAGE = 2
EXIT_INTERNAL = 1

#: OSError numbers caused by the environment the user gave (paths, permissions, space), not by a bug
USER_ERRNOS = {
    errno.EACCES: "permission denied (check the owner and mode of the path, or choose another)",
    errno.EPERM: "operation not permitted (check the owner and mode of the path, or choose another)",
    errno.ENOENT: "no such file or directory (check the path)",
    errno.ENOTDIR: "a part of the path is a file, not a directory (choose another path)",
    errno.EISDIR: "it is a directory, where a file is expected (name a file)",
    errno.EEXIST: "it already exists (remove it or choose another path)",
    errno.ELOOP: "the path is a loop of symbolic links (fix or remove the link)",
    errno.ENOSPC: "no space left on the device (free some space or write elsewhere)",
    errno.EDQUOT: "disk quota exceeded (free some space or write elsewhere)",
    errno.EROFS: "the file system is read-only (write elsewhere)",
    errno.ENAMETOOLONG: "the file name is too long (choose a shorter one)",
    errno.ENOTEMPTY: "the directory is not empty (choose another path)",
    errno.EMFILE: "too many open files (raise `ulimit -n`)",
}
_ALLOC = re.compile(r"tried to allocate (\d+) bytes|Tried to allocate ([\d.]+ [KMGT]i?B)")


class FmError(Exception):
    """An error caused by the user's input (recipe, option, file, run directory).

    The command line prints ``error: <message>`` and exits with :attr:`exit_code` (:data:`EXIT_USAGE`).
    """

    exit_code: int = EXIT_USAGE


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (which handles it itself): it unwinds like Ctrl-C (code that lets
    KeyboardInterrupt through, such as plugin loading, lets it through too) and ``fm`` exits with 143."""


class NonFiniteLossError(FmError):
    """Training produced a NaN or infinite loss; the run stopped before checkpointing it."""


def size(n: float) -> str:
    """``n`` bytes in human units (``1.5 GiB``)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _oom(detail: str) -> FmError:
    return FmError(f"out of memory: {detail}. Make the network, the batch (--batch-size, [train] batch_size) or "
                   "the number of samples smaller, or use a machine with more memory")


def user_error(exc: BaseException) -> FmError | None:
    """The :class:`FmError` that ``exc`` is for the user, or None when it is an internal error (a bug)."""
    if isinstance(exc, FmError):
        return exc
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        where = " -> ".join(repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None)
        return FmError(f"{where or 'a file operation'}: {exc.strerror or exc}: {USER_ERRNOS[exc.errno]}")
    if isinstance(exc, MemoryError):
        detail = f": {exc}" if str(exc) else ""
        return _oom(f"the machine could not provide the memory asked for (MemoryError{detail})")
    if isinstance(exc, RuntimeError):
        text = " ".join(str(exc).split())
        match = _ALLOC.search(text)
        if type(exc).__name__ == "OutOfMemoryError" or (match and "alloc" in text.lower()):
            asked = (size(int(match.group(1))) if match.group(1) else match.group(2)) if match else "more memory"
            return _oom(f"an allocation of {asked} failed ({text[:300]})")
    return None


def internal_message(exc: BaseException) -> str:
    """The paragraph printed for an internal error: the exception, and how to report it."""
    text = " ".join(str(exc).split())
    return (f"internal error: {type(exc).__name__}{': ' + text if text else ''}. This is a bug in fmcore or in a "
            "plugin, not a problem with your input; please report it with the command you ran and the traceback "
            "that `fm --debug ...` (or FMCORE_DEBUG=1) prints")


F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise exceptions that are the user's (see :func:`user_error`) as :class:`FmError`."""
    try:
        yield
    except FmError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified; internal errors are re-raised unchanged
        mapped = user_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


def raises_user_errors(func: F) -> F:
    """Decorator form of :func:`user_errors` for the Python API."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with user_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
