"""Whether gated is running on a state directory, told by a lock it holds while it runs.

gated takes an exclusive ``flock`` on ``<state>/gated.lock`` for as long as it serves, and
writes its pid there. The kernel drops the lock when the process dies, however it dies, so a
stale file never says "running". gatectl asks before it touches a device gated may hold.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from gate.errors import GateError

LOCK_FILE = "gated.lock"
ACQUIRE_SECONDS = 0.5


class RunLock:
    """The lock gated holds on its state directory while it runs."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise GateError naming the pid of the gated that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + ACQUIRE_SECONDS  # outlasts a probe by running_pid()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                os.close(fd)
                pid = running_pid(self.path.parent)
                raise GateError(
                    f"another gated (pid {pid or 'unknown'}) already serves "
                    f"{self.path.parent}; stop it first (systemctl stop gated)"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_pid(state_dir: Path) -> int | None:
    """The pid of the gated serving ``state_dir`` (0 if unreadable), or None when none runs.

    The probe holds a shared lock for a moment; a gated starting meanwhile waits it out.
    """
    path = Path(state_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
