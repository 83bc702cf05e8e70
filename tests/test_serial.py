"""The serial scanner driver against real ports: a pty pair from ``PtyScanner`` and pyserial's
``loop://``, both opened through ``serial.serial_for_url`` as on a gate.

Each test runs ``SerialScanner.run`` in a thread, as ``gated`` does, sends bytes as a scanner
would, and waits (with a deadline, never a fixed sleep) for what the decision loop receives.
A test that expects lines to be dropped ends with a sentinel line, so "nothing else arrived"
is checked without waiting for a timeout.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import nacl.signing
import pytest
import serial
from serial.urlhandler import protocol_loop

from drivers.base import Health, HealthState, Presentation
from drivers.serial.fake import PtyScanner
from drivers.serial.scanner import SerialScanner
from gate.errors import ConfigError
from gate.ticket import Claims, mint_ticket

WAIT = 5.0  # the longest any single expectation may take


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class Running:
    """A scanner running in its own thread, with what it delivered and its health changes."""

    def __init__(self, scanner: SerialScanner) -> None:
        self.scanner = scanner
        self.stop = threading.Event()
        self.delivered: queue.Queue[tuple[Presentation, float]] = queue.Queue()
        self.changes: list[Health] = []
        scanner.health.listeners.append(lambda _name, health: self.changes.append(health))
        self.thread = threading.Thread(target=scanner.run, args=(self._deliver, self.stop))
        self.thread.start()

    def _deliver(self, presentation: Presentation) -> None:
        self.delivered.put((presentation, time.monotonic()))

    def wait_state(self, state: HealthState) -> Health:
        wait_for(lambda: self.scanner.health.get().state == state, f"health {state.value}")
        return self.scanner.health.get()

    def take(self, count: int) -> list[tuple[Presentation, float]]:
        """The next ``count`` deliveries with the time each was delivered."""
        deadline = time.monotonic() + WAIT
        taken = []
        for _ in range(count):
            left = max(0.0, deadline - time.monotonic())
            try:
                taken.append(self.delivered.get(timeout=left))
            except queue.Empty:
                raise AssertionError(f"got {len(taken)} of {count} lines: {taken}") from None
        return taken

    def texts(self, count: int) -> list[str]:
        return [presentation.text for presentation, _ in self.take(count)]

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the reader did not stop"


@pytest.fixture
def start() -> Iterator[Callable[[SerialScanner], Running]]:
    running: list[Running] = []

    def start(scanner: SerialScanner) -> Running:
        running.append(Running(scanner))
        return running[-1]

    yield start
    for each in running:
        each.halt()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[PtyScanner]:
    with PtyScanner(tmp_path) as fake:
        yield fake


@pytest.fixture
def connect(fake: PtyScanner, start: Callable[[SerialScanner], Running]) -> Callable[..., Running]:
    """Start a scanner on the fake's device path and wait until it has opened the port
    (pyserial flushes the input on open, so nothing may be sent before)."""

    def connect(**options) -> Running:
        run = start(SerialScanner(str(fake.path), **options))
        run.wait_state(HealthState.OK)
        return run

    return connect


def send_pieces(fake: PtyScanner, scanner: SerialScanner, pieces: list[bytes]) -> None:
    """Send each piece only once the reader has taken the previous one off the port, so each
    arrives in a read of its own."""
    for piece in pieces:
        fake.send_raw(piece)
        wait_for(lambda: scanner.port is not None and scanner.port.in_waiting == 0, "a read")


def mint() -> str:
    claims = Claims(cti=os.urandom(16), exp=int(time.time()) + 3600, product="single")
    return mint_ticket(claims, nacl.signing.SigningKey.generate())


@pytest.mark.parametrize(
    ("terminator", "pieces", "expected"),
    [
        ("CR", [b"ONE\rTWO\r"], ["ONE", "TWO"]),
        ("LF", [b"ONE\nTWO\n"], ["ONE", "TWO"]),
        ("CRLF", [b"ONE\r\nTWO\r\n"], ["ONE", "TWO"]),
        ("crlf", [b"ONE\r\n"], ["ONE"]),
        # CR: a LF straight after the CR is a stray from a scanner that sends CRLF anyway...
        ("CR", [b"ONE\r\nTWO\r\n", b"THREE\r"], ["ONE", "TWO", "THREE"]),
        ("CR", [b"ONE\r", b"\nTWO\r"], ["ONE", "TWO"]),
        # ...but only one, and a LF anywhere else is data
        ("CR", [b"A\nB\r\n\nC\r"], ["A\nB", "\nC"]),
        # LF: a CR straight before the LF belongs to the terminator, elsewhere it is data
        ("LF", [b"ONE\r\nTWO\n"], ["ONE", "TWO"]),
        ("LF", [b"ONE\r", b"\n", b"A\rB\n"], ["ONE", "A\rB"]),
        ("LF", [b"ONE\r", b"TWO\n"], ["ONE\rTWO"]),
        # CRLF: a lone CR or LF is data, and the pair may be split across reads
        ("CRLF", [b"A\rB\nC\r\n"], ["A\rB\nC"]),
        ("CRLF", [b"ONE\r", b"\n", b"TW", b"O\r", b"\r\n"], ["ONE", "TWO\r"]),
        # empty lines are ignored
        ("CR", [b"\r\r\rONE\r\r"], ["ONE"]),
        ("CRLF", [b"\r\n\r\nONE\r\n"], ["ONE"]),
    ],
)
def test_terminators(connect, fake, terminator, pieces, expected):
    run = connect(terminator=terminator)
    end = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}[terminator.upper()]
    send_pieces(fake, run.scanner, [*pieces, b"END" + end])
    assert run.texts(len(expected) + 1) == [*expected, "END"]
    assert run.scanner.lines_delivered == len(expected) + 1


def test_spaces_are_kept_only_the_terminator_is_trimmed(connect, fake):
    run = connect(terminator="CRLF")
    fake.send(" GT1:AB CD ", b"\r\n")
    fake.send("  ", b"\r\n")
    assert run.texts(2) == [" GT1:AB CD ", "  "]


def test_prefix_and_suffix_are_removed_when_present(connect, fake):
    run = connect(prefix="]Q1", suffix="#")
    fake.send("]Q1GT1:BOTH#")
    fake.send("GT1:NEITHER")
    fake.send("]Q1 GT1:PREFIX ")
    fake.send("GT1:SUFFIX#")
    fake.send("]Q1#")  # nothing left: ignored like an empty line
    fake.send("]Q1]Q1X##")  # removed once each
    fake.send("END")
    assert run.texts(6) == ["GT1:BOTH", "GT1:NEITHER", " GT1:PREFIX ", "GT1:SUFFIX", "]Q1X#", "END"]


def test_garbage_ascii_is_delivered_as_text(connect, fake):
    run = connect()
    fake.send("hello")
    fake.send("\x1b[2J\x00\x07tab\there")
    assert run.texts(2) == ["hello", "\x1b[2J\x00\x07tab\there"]


def test_non_ascii_lines_are_dropped_with_a_warning(connect, fake, caplog):
    caplog.set_level(logging.WARNING, logger="drivers.serial.scanner")
    run = connect()
    fake.send(b"\xff\xfe\x00GT1")
    fake.send("café")
    fake.send(b"GT1:" + bytes(range(256)).replace(b"\r", b""))
    fake.send("next")
    assert run.texts(1) == ["next"]
    assert run.scanner.counters() == {
        "lines_delivered": 1,
        "lines_dropped_overlong": 0,
        "lines_dropped_non_ascii": 3,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("non-ASCII" in message for message in warnings)
    assert run.scanner.health.get().state == HealthState.OK


def test_a_megabyte_without_terminator_is_dropped_in_bounded_memory(connect, fake, caplog):
    caplog.set_level(logging.WARNING, logger="drivers.serial.scanner")
    run = connect(max_line=1024)
    fake.send_raw(b"A" * 1_000_000)
    fake.send_raw(b"\rVALID LINE\r")
    assert run.texts(1) == ["VALID LINE"]
    scanner = run.scanner
    assert scanner.lines_dropped_overlong == 1
    assert scanner.buffer_peak <= 1024
    assert scanner.buffered == 0
    assert scanner.health.get().state == HealthState.OK
    assert any("longer than 1024 bytes" in r.getMessage() for r in caplog.records)


def test_max_line_is_the_longest_line_accepted(connect, fake):
    run = connect(max_line=100, terminator="CRLF")
    send_pieces(
        fake,
        run.scanner,
        [
            b"A" * 100 + b"\r\n",
            b"B" * 101 + b"\r\n",
            b"C" * 99 + b"\r\r\n",  # a lone CR is data and counts...
            b"D" * 100 + b"\r\r\n",
            b"E" * 100 + b"\r",  # ... but not the first half of a split terminator
            b"\nEND\r\n",
        ],
    )
    assert run.texts(4) == ["A" * 100, "C" * 99 + "\r", "E" * 100, "END"]
    assert run.scanner.lines_dropped_overlong == 2
    assert run.scanner.buffer_peak == 100


def test_a_minted_ticket_arrives_byte_for_byte(connect, fake):
    ticket = mint()
    run = connect()
    fake.send(ticket)
    fake.send(ticket + " ")
    fake.send(" " + ticket)
    assert run.texts(3) == [ticket, ticket + " ", " " + ticket]


def test_arrived_is_the_time_of_the_first_byte(connect, fake):
    ticket = mint()
    half = len(ticket) // 2
    run = connect()
    before = time.monotonic()
    fake.send_raw(ticket[:half].encode())
    wait_for(lambda: run.scanner.buffered == half, "the first half to be read")
    time.sleep(0.3)
    fake.send(ticket[half:])
    ((presentation, delivered),) = run.take(1)
    assert presentation.text == ticket
    assert before <= presentation.arrived
    assert 0.3 <= delivered - presentation.arrived < 0.3 + 0.5


def test_unplug_fails_health_and_replug_recovers_within_five_seconds(connect, fake):
    run = connect()
    fake.send("before")
    assert run.texts(1) == ["before"]

    fake.unplug()
    failed = run.wait_state(HealthState.FAILED)
    assert failed.reason
    with pytest.raises(RuntimeError, match="unplugged"):
        fake.send("lost")
    wait_for(lambda: "is the scanner plugged in?" in run.scanner.health.get().reason, "reopen")

    replugged = time.monotonic()
    fake.replug()
    run.wait_state(HealthState.OK)
    fake.send("after")
    ((presentation, delivered),) = run.take(1)
    assert presentation.text == "after"
    assert delivered - replugged < 5.0

    states = [health.state for health in run.changes]
    assert states[0] == HealthState.OK
    assert HealthState.FAILED in states
    assert states[-1] == HealthState.OK
    reasons = [health.reason for health in run.changes if health.state == HealthState.FAILED]
    assert any("unplugged" in reason for reason in reasons), reasons


class HangingUpLoop(protocol_loop.Serial):
    """pyserial's ``loop://`` as ``hangup://``: once ``hung_up`` is set, every read returns b''
    at once, forever, as some ports do after the far end closed instead of raising."""

    hung_up = False

    def from_url(self, url: str) -> None:
        super().from_url(url.replace("hangup://", "loop://", 1))

    def read(self, size: int = 1) -> bytes:
        return b"" if self.hung_up else super().read(size)


def test_a_port_that_reads_nothing_forever_is_taken_as_hung_up(start, monkeypatch):
    handlers = types.ModuleType("test_handlers")
    handler = types.ModuleType("test_handlers.protocol_hangup")
    handler.Serial = HangingUpLoop
    monkeypatch.setitem(sys.modules, "test_handlers", handlers)
    monkeypatch.setitem(sys.modules, "test_handlers.protocol_hangup", handler)
    monkeypatch.setattr(serial, "protocol_handler_packages", ["test_handlers"])

    run = start(SerialScanner("hangup://"))
    run.wait_state(HealthState.OK)
    port = run.scanner.port
    assert isinstance(port, HangingUpLoop)
    port.write(b"one\r")
    assert run.texts(1) == ["one"]

    port.hung_up = True
    failed = run.wait_state(HealthState.FAILED)
    assert failed.reason == (
        "serial: hangup:// returns no data without waiting (hung up: was the scanner unplugged?)"
    )
    run.wait_state(HealthState.OK)
    assert run.scanner.port is not port
    run.scanner.port.write(b"two\r")
    assert run.texts(1) == ["two"]


def test_a_missing_device_reports_what_to_check(tmp_path, start):
    scanner = SerialScanner(str(tmp_path / "ttyNothing"), name="scanner")
    run = start(scanner)
    failed = run.wait_state(HealthState.FAILED)
    assert failed.reason == (
        f"scanner: cannot open {tmp_path / 'ttyNothing'}: no such device "
        "(is the scanner plugged in?)"
    )
    run.halt()
    scanner.close()
    scanner.close()


def test_loop_url_uses_the_same_code_path(start, caplog):
    caplog.set_level(logging.WARNING, logger="drivers.serial.scanner")
    run = start(SerialScanner("loop://", name="loop", terminator="CRLF", prefix="]Q1"))
    run.wait_state(HealthState.OK)
    ticket = mint()
    port = run.scanner.port
    assert port is not None
    port.write(f"]Q1{ticket} \r\nhello\r\n".encode())
    port.write(b"\xc3\xa9\r\n" + b"X" * 5000 + b"\r\n")
    port.write(b"A\rB\r\n")
    (first, _), (second, _), (third, _) = run.take(3)
    assert [first.text, second.text, third.text] == [ticket + " ", "hello", "A\rB"]
    assert first.source == "loop"
    assert run.scanner.lines_dropped_non_ascii == 1
    assert run.scanner.lines_dropped_overlong == 1


def test_close_is_idempotent(fake):
    scanner = SerialScanner(str(fake.path))
    scanner._open()
    assert scanner.port is not None
    scanner.close()
    scanner.close()
    assert scanner.port is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"terminator": "NUL"}, "terminator must be one of CR, LF, CRLF"),
        ({"max_line": 0}, "max_line must be at least 1"),
        ({"baudrate": 0}, "baudrate must be a positive number"),
        ({"prefix": "é"}, "prefix must be ASCII"),
    ],
)
def test_bad_configuration_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        SerialScanner("loop://", **options)
