"""A line-based 2D barcode scanner on a serial port (RS-232 or USB-CDC)."""

from __future__ import annotations

import errno
import logging
import time

import serial

from drivers.base import CodeReader, Presentation
from gate.errors import ConfigError, DriverInitError, DriverOperationError

log = logging.getLogger(__name__)

TERMINATORS = ("CR", "LF", "CRLF")

_CR, _LF = 0x0D, 0x0A

#: most bytes taken from the port in one read, so a flood costs bounded memory per call
_CHUNK = 4096

#: an empty read that returns this much faster than its timeout counts as a hang-up sign
_QUICK_EMPTY_FRACTION = 0.25
#: that many such reads in a row mean the port has hung up (a closed pty may read b'' forever)
_QUICK_EMPTY_LIMIT = 5

#: what a technician should check when a port cannot be opened, by errno
_OPEN_HINTS = {
    errno.ENOENT: "no such device (is the scanner plugged in?)",
    errno.ENODEV: "device not present (is the scanner plugged in?)",
    errno.ENXIO: "device not present (is the scanner plugged in?)",
    errno.EACCES: "permission denied (is the gate's user in the dialout group?)",
    errno.EPERM: "permission denied (is the gate's user in the dialout group?)",
    errno.EBUSY: "device busy (is another program using the port?)",
    errno.EIO: "input/output error (is the cable loose or the scanner failing?)",
}


class SerialScanner(CodeReader):
    """A 2D barcode scanner that sends each code as one line of ASCII on a serial port.

    Configuration:

    - ``url``: the device path (``/dev/ttyUSB0``, a udev symlink such as ``/dev/scanner``) or
      any pyserial URL (``loop://``, ``rfc2217://host:port``); opened with
      ``serial.serial_for_url``.
    - ``name``: the reader's name in health reports and :attr:`Presentation.source`.
    - ``baudrate``: as configured on the scanner (USB-CDC scanners ignore it).
    - ``terminator``: ``"CR"``, ``"LF"`` or ``"CRLF"``, what the scanner sends after a code.
    - ``prefix``, ``suffix``: text the scanner is programmed to add around each code; removed
      when present, left alone when a line lacks it.
    - ``max_line``: the longest line accepted, in bytes, without its terminator.

    Only the terminator is trimmed: base45 has a space in its alphabet, so leading and trailing
    spaces are data. Lines that cannot be a ticket are handled here rather than passed on:

    - longer than ``max_line``: dropped with a warning; the partial line is discarded as soon
      as it grows too long and the reader resynchronises at the next terminator, so it never
      holds more than ``max_line`` bytes however long a line is;
    - holding a byte of 0x80 or above: dropped with a warning;
    - empty (also after removing the prefix and suffix): ignored.

    Any other ASCII, control characters included, is delivered as text; the validator rejects
    it as malformed, and the gate shows that to the passenger.

    Terminator details: with ``"CR"`` a single LF straight after a CR is dropped, because
    scanners set to CR often send CRLF anyway; any other LF is data. With ``"LF"`` a CR straight
    before the LF is taken as part of the terminator, for the same reason. With ``"CRLF"`` a
    lone CR or LF is data.

    :attr:`Presentation.arrived` is when the first byte of the line was read, even when the
    line comes in several reads. A vanished port (USB unplug, a pty whose other side closed)
    raises :class:`DriverOperationError`, and :meth:`run` reopens the device path until it is
    back. Note that pyserial flushes the input buffer on open, so bytes that reached the port
    while it was closed are lost; a scan during reconnection has to be repeated.

    Counters for diagnostics, never reset: :attr:`lines_delivered`,
    :attr:`lines_dropped_overlong`, :attr:`lines_dropped_non_ascii`; :attr:`buffered` is the
    size of the partial line held now and :attr:`buffer_peak` the largest it has been.
    """

    #: a serial device is cheap to probe, and a replugged scanner must be back within seconds
    backoff_max = 1.0

    def __init__(
        self,
        url: str,
        *,
        name: str = "serial",
        baudrate: int = 9600,
        terminator: str = "CR",
        prefix: str = "",
        suffix: str = "",
        max_line: int = 1024,
    ) -> None:
        super().__init__(name)
        terminator = terminator.upper()
        if terminator not in TERMINATORS:
            raise ConfigError(
                f"{name}: terminator must be one of {', '.join(TERMINATORS)}, not {terminator!r}"
            )
        if baudrate <= 0:
            raise ConfigError(f"{name}: baudrate must be a positive number, not {baudrate}")
        if max_line < 1:
            raise ConfigError(f"{name}: max_line must be at least 1, not {max_line}")
        for what, text in (("prefix", prefix), ("suffix", suffix)):
            if not text.isascii():
                raise ConfigError(f"{name}: {what} must be ASCII, not {text!r}")
        self.url = url
        self.baudrate = baudrate
        self.terminator = terminator
        self.prefix = prefix
        self.suffix = suffix
        self.max_line = max_line
        self.lines_delivered = 0
        self.lines_dropped_non_ascii = 0
        self._framer = _LineFramer(name, terminator, max_line)
        self._port: serial.SerialBase | None = None
        self._quick_empty_reads = 0

    @property
    def port(self) -> serial.SerialBase | None:
        """The open pyserial port, or ``None`` while disconnected."""
        return self._port

    @property
    def lines_dropped_overlong(self) -> int:
        return self._framer.overlong

    @property
    def buffered(self) -> int:
        """Bytes of the partial line held now; never more than ``max_line``."""
        return len(self._framer)

    @property
    def buffer_peak(self) -> int:
        """The most bytes of a partial line ever held; never more than ``max_line``."""
        return self._framer.peak

    def counters(self) -> dict[str, int]:
        """The diagnostic counters, for status reports."""
        return {
            "lines_delivered": self.lines_delivered,
            "lines_dropped_overlong": self.lines_dropped_overlong,
            "lines_dropped_non_ascii": self.lines_dropped_non_ascii,
        }

    def _open(self) -> None:
        self._close()
        self._framer.reset()
        self._quick_empty_reads = 0
        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=self.read_timeout, do_not_open=False
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DriverInitError(
                f"{self.name}: cannot open {self.url}: {_why_not_open(err)}"
            ) from err

    def _read(self, timeout: float) -> list[Presentation]:
        port = self._port
        if port is None:
            raise DriverOperationError(f"{self.name}: {self.url} is not open")
        try:
            if port.timeout != timeout:
                port.timeout = timeout
            started = time.monotonic()
            data = port.read(1)
            now = time.monotonic()
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(waiting, _CHUNK))
        except (serial.SerialException, OSError) as err:
            raise DriverOperationError(
                f"{self.name}: lost {self.url}: {err} (was the scanner unplugged?)"
            ) from err
        if not data:
            self._check_hangup(now - started, timeout)
            return []
        self._quick_empty_reads = 0
        return [
            presentation
            for line, arrived in self._framer.feed(data, now)
            if (presentation := self._presentation(line, arrived)) is not None
        ]

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def _check_hangup(self, waited: float, timeout: float) -> None:
        # pyserial raises on a hung-up tty, but other port types may just return b'' at once,
        # forever; without this the reader would spin instead of reconnecting.
        if timeout <= 0 or waited >= timeout * _QUICK_EMPTY_FRACTION:
            self._quick_empty_reads = 0
            return
        self._quick_empty_reads += 1
        if self._quick_empty_reads >= _QUICK_EMPTY_LIMIT:
            raise DriverOperationError(
                f"{self.name}: {self.url} returns no data without waiting "
                "(hung up: was the scanner unplugged?)"
            )

    def _presentation(self, line: bytes, arrived: float) -> Presentation | None:
        if not line.isascii():
            self.lines_dropped_non_ascii += 1
            log.warning(
                "%s: dropped a %d-byte line with non-ASCII bytes (is the scanner set to ASCII?)",
                self.name,
                len(line),
            )
            return None
        text = line.decode("ascii").removeprefix(self.prefix).removesuffix(self.suffix)
        if not text:
            return None
        self.lines_delivered += 1
        return Presentation(text, self.name, arrived)


class _LineFramer:
    """Cuts a byte stream into lines at a terminator, holding at most ``max_line`` bytes.

    A CR that ends the data seen so far may be the first half of a CRLF; it is remembered as a
    flag rather than buffered, so the buffer limit is exact.
    """

    def __init__(self, name: str, terminator: str, max_line: int) -> None:
        self.name = name
        self.terminator = terminator
        self.max_line = max_line
        self.overlong = 0
        self.peak = 0
        self.reset()

    def reset(self) -> None:
        """Forget any partial line (the port was reopened)."""
        self._buf = bytearray()
        self._first: float | None = None
        self._discarding = False
        self._held_cr = False  # LF, CRLF: the data ended in a CR that may begin the terminator
        self._after_cr = False  # CR: the last byte ended a line, so a LF now is a stray

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, now: float) -> list[tuple[bytes, float]]:
        """Take ``data`` read at ``now``; return each completed line with its first byte's time."""
        lines: list[tuple[bytes, float]] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._after_cr:
                self._after_cr = False
                if data[pos] == _LF:
                    pos += 1
                    continue
            if self._held_cr:
                self._held_cr = False
                if data[pos] == _LF:
                    self._end_line(lines)
                    pos += 1
                    continue
                self._append(b"\r", now)
            stop, content_end, skip = self._find_terminator(data, pos)
            if stop < 0:
                if self.terminator != "CR" and data[end - 1] == _CR:
                    self._append(data[pos : end - 1], now)
                    self._held_cr = True
                    if self._first is None:
                        self._first = now
                else:
                    self._append(data[pos:end], now)
                break
            self._append(data[pos:content_end], now)
            self._end_line(lines)
            pos = stop + skip
            self._after_cr = self.terminator == "CR"
        return lines

    def _find_terminator(self, data: bytes, pos: int) -> tuple[int, int, int]:
        """Where the next terminator starts, where the line's content ends, and its length."""
        if self.terminator == "CR":
            stop = data.find(b"\r", pos)
            return stop, stop, 1
        if self.terminator == "CRLF":
            stop = data.find(b"\r\n", pos)
            return stop, stop, 2
        stop = data.find(b"\n", pos)
        if stop > pos and data[stop - 1] == _CR:
            return stop, stop - 1, 1
        return stop, stop, 1

    def _append(self, chunk: bytes, now: float) -> None:
        if not chunk:
            return
        if self._first is None:
            self._first = now
        if self._discarding:
            return
        if len(self._buf) + len(chunk) > self.max_line:
            self._discarding = True
            self._buf.clear()
            self.overlong += 1
            log.warning(
                "%s: dropped a line longer than %d bytes; skipping to the next terminator "
                "(is the terminator set to the scanner's?)",
                self.name,
                self.max_line,
            )
            return
        self._buf += chunk
        self.peak = max(self.peak, len(self._buf))

    def _end_line(self, lines: list[tuple[bytes, float]]) -> None:
        if self._discarding:
            self._discarding = False
        elif self._buf and self._first is not None:
            lines.append((bytes(self._buf), self._first))
        self._buf.clear()
        self._first = None


def _why_not_open(err: BaseException) -> str:
    """A technician's reading of why a port did not open."""
    code = getattr(err, "errno", None)
    if code in _OPEN_HINTS:
        return _OPEN_HINTS[code]
    return str(err) or type(err).__name__
