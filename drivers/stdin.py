"""A code reader on a file descriptor (standard input), for keyboard-wedge scanners and
scripts: one code per line, only the line terminator removed."""

from __future__ import annotations

import os
import select
import time

from drivers.base import CodeReader, Presentation
from gate.errors import DriverOperationError

MAX_LINE = 4096


class StreamReader(CodeReader):
    """One code per line read from ``fd``; at end of input ``ended`` is set (a last line
    without a terminator still counts).

    Lines longer than ``MAX_LINE`` bytes are dropped; bytes that are not UTF-8 become U+FFFD
    (the validator then rejects the code as malformed).
    """

    def __init__(self, fd: int = 0, name: str = "stdin") -> None:
        super().__init__(name)
        self.fd = fd
        self.ended = False
        self._buffer = b""
        self._first_byte: float | None = None
        self._overlong = False

    def _open(self) -> None:
        if self.ended:
            raise DriverOperationError(f"{self.name}: end of input")

    def _read(self, timeout: float) -> list[Presentation]:
        if self.ended:  # the end of input is not a fault: nothing more will come
            time.sleep(timeout)
            return []
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.ended = True
            chunk = b"\n" if self._buffer else b""  # a last line without its terminator
        if self._first_byte is None:
            self._first_byte = time.monotonic()
        self._buffer += chunk
        presentations = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            arrived, self._first_byte = (
                self._first_byte,
                (time.monotonic() if self._buffer else None),
            )
            if self._overlong:
                self._overlong = False
                continue
            text = line.rstrip(b"\r").decode("utf-8", errors="replace")
            if text:
                presentations.append(Presentation(text, self.name, arrived))
        if len(self._buffer) > MAX_LINE:
            self._buffer, self._overlong = b"", True
        return presentations
