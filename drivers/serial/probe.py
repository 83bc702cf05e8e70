"""Listening to a serial scanner for a while, for ``gatectl selftest``.

The port is opened as :class:`~drivers.serial.scanner.SerialScanner` opens it (through
``serial.serial_for_url``, with the same hints when it cannot be), and its bytes are cut into
lines by the scanner's own framer, so "no complete line" here means the gate would not see a
code either (for example when the scanner's terminator is not the configured one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from drivers.serial.scanner import _LineFramer, _why_not_open
from gate.errors import DriverInitError, DriverOperationError

READ_TIMEOUT = 0.1


@dataclass(frozen=True)
class Heard:
    """What a port delivered: bytes in all, and the complete lines among them."""

    bytes: int
    lines: list[bytes]
    seconds: float


def listen(
    url: str,
    *,
    baudrate: int = 9600,
    terminator: str = "CR",
    max_line: int = 1024,
    seconds: float = 5.0,
    until_line: bool = True,
) -> Heard:
    """Open ``url`` and count what arrives for ``seconds`` (until the first complete line,
    with ``until_line``). Raises :class:`DriverInitError` when the port cannot be opened and
    :class:`DriverOperationError` when it fails while listening."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT)
    except (serial.SerialException, OSError, ValueError) as err:
        raise DriverInitError(f"cannot open {url}: {_why_not_open(err)}") from err
    framer = _LineFramer("serial", terminator, max_line)
    received, lines = 0, []
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds and not (until_line and lines):
            try:
                data = port.read(1)
                if data and port.in_waiting:
                    data += port.read(port.in_waiting)
            except (serial.SerialException, OSError) as err:
                raise DriverOperationError(
                    f"lost {url}: {err} (was the scanner unplugged?)"
                ) from err
            if data:
                received += len(data)
                lines += [line for line, _ in framer.feed(data, time.monotonic())]
    finally:
        port.close()
    return Heard(received, lines, time.monotonic() - started)
