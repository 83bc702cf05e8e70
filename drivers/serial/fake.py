"""A pretend serial scanner on a real pseudo-terminal, for tests and ``--simulate``."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from pathlib import Path


class PtyScanner:
    """The scanner's side of a real pty pair, reachable at a stable device path.

    ``PtyScanner(directory, name="ttyScanner")`` opens a pty pair, puts the slave in raw mode
    and makes ``<directory>/<name>`` a symlink to the slave's device, so
    ``SerialScanner(str(fake.path))`` opens it exactly as it would open ``/dev/ttyUSB0``.

    - :meth:`send` writes a code and its terminator (``b"\\r"`` unless told otherwise);
      :meth:`send_raw` writes bytes as they are.
    - :meth:`unplug` closes the pty and removes the symlink, as a USB unplug removes the
      device node; :meth:`replug` makes a new pty and points the symlink at it.
    - :meth:`close` (or leaving the ``with`` block) unplugs for good; idempotent.

    Writes never block for long: the master is non-blocking and a write waits at most
    ``timeout`` seconds for the reader to drain the pty's buffer (a few KiB), then raises
    :class:`TimeoutError`. pyserial flushes the input when it opens a port, so send only once
    the reader has opened it (its health is ok).
    """

    def __init__(self, directory: str | os.PathLike[str], name: str = "ttyScanner") -> None:
        self.path = Path(directory) / name
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def device(self) -> str | None:
        """The pty slave the symlink points to, or ``None`` while unplugged."""
        return os.ttyname(self._slave) if self._slave is not None else None

    def send(
        self, code: str | bytes, terminator: str | bytes = b"\r", *, timeout: float = 5.0
    ) -> None:
        """Send one code as a scanner would: its bytes, then ``terminator``."""
        if isinstance(code, str):
            code = code.encode("utf-8")
        if isinstance(terminator, str):
            terminator = terminator.encode("ascii")
        self.send_raw(code + terminator, timeout=timeout)

    def send_raw(self, data: bytes, *, timeout: float = 5.0) -> None:
        """Write ``data`` as is; wait at most ``timeout`` seconds for room in the pty."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._master is None:
                raise RuntimeError(f"{self.path} is unplugged")
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.path}: nobody read {len(view)} bytes within {timeout} s"
                    )
                _, writable, _ = select.select([], [self._master], [], min(left, 0.1))
                if not writable:
                    continue
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    continue
                view = view[written:]

    def unplug(self) -> None:
        """Make the port vanish: remove the symlink, then close the pty (readers get EIO)."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None

    def replug(self) -> None:
        """Plug a new pty in at the same path (unplugging the current one first)."""
        self.unplug()
        self._plug()

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> PtyScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _plug(self) -> None:
        master, slave = os.openpty()
        # the slave stays open here too: settings survive, and data waits until a reader opens
        tty.setraw(slave)
        os.set_blocking(master, False)
        link = self.path.with_name(self.path.name + ".new")
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(slave))
        os.replace(link, self.path)
        with self._lock:
            self._master, self._slave = master, slave
