"""One writer per run directory: an OS file lock (``fcntl.flock``) on ``RUN_DIR/.lock``.

The kernel drops the lock when the holding process exits in any way (SIGKILL included), so a lock is never
stale. The holder writes its pid into the file so that a second writer can be told who holds it. Readers
(``fm sample``, ``fm eval``) never take the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fmcore.core.errors import FmError

LOCK = ".lock"


class RunLock:
    """The exclusive lock of a run directory, held from :meth:`acquire` until :meth:`release` or exit."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise an :class:`FmError` naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FmError(f"run directory {str(self.path.parent)!r} is being written by another `fm train` (pid "
                          f"{holder}); one run directory has one writer. Wait for it to finish, stop it (kill "
                          f"{holder}; it checkpoints on SIGTERM) and then `fm train --resume`, or choose another "
                          "--run-dir. `fm sample` and `fm eval` can read the run meanwhile") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
