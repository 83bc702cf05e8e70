"""A simulated PN532 on a real pty, with an NTAG215 that can be placed in and removed from its
field, and faults to inject. Tests and ``gated --simulate`` use it; it is never picked
automatically.

::

    from drivers.nfc.pn532 import PN532Reader
    from drivers.nfc.sim import SimulatedPN532

    with SimulatedPN532(Path(tmp) / "pn532") as sim:     # or SimulatedPN532() for /dev/pts/N
        reader = PN532Reader(sim.device, poll_interval=0.02)
        sim.place_tag("GT1:...")                          # an NTAG215 holding a Text record
        ...                                               # reader.run(deliver, stop) elsewhere
        sim.remove_tag()

A background thread reads the pty master and answers like a PN532 in HSU mode: it sleeps until
the wake-up byte 0x55, ignores frames whose checksums fail (as the chip does), ACKs every
command, answers NACK by sending its last answer again, and answers unknown commands with the
error frame. Commands: GetFirmwareVersion (IC 0x32, firmware 1.6), SAMConfiguration,
RFConfiguration, InListPassiveTarget (106 kbps type A: no target, or the placed tag's
7-byte UID with SENS_RES 00 44 and SAK 00), InRelease, and InDataExchange with NTAG READ
(16 bytes from the requested page, rolling over at the end of memory like the real tag).

Faults, each for the next ``n`` frames or commands (all thread-safe):

- :meth:`corrupt_responses`, :meth:`bad_lcs`, :meth:`bad_dcs` damage answer frames
  (retransmissions after a NACK count too);
- :meth:`inject_garbage` sends bytes (by default a bogus start code and a truncated frame)
  just before the next answer;
- :meth:`drop_responses` leaves commands unanswered, not even ACKed;
- :meth:`error_frames` answers with the PN532 error frame after the ACK;
- :meth:`remove_tag_after_reads` pulls the tag away after ``k`` more page READs.

Set :attr:`~SimulatedPN532.fault_commands` (e.g. ``{0x40}``) to aim the answer faults at some
commands only, such as the tag READs rather than the polls.

:meth:`close` (or leaving the ``with`` block) stops the thread, closes both ends of the pty and
removes the symlink, so a reader connected to it sees its device vanish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from drivers.nfc.frames import (
    ACK_FRAME,
    ERROR_FRAME,
    HOST_TO_PN532,
    PN532_TO_HOST,
    Frame,
    FrameKind,
    build_frame,
    parse_frames,
)
from drivers.nfc.ndef import TLV_TERMINATOR, ndef_tlv, text_message

log = logging.getLogger(__name__)

DEFAULT_UID = bytes.fromhex("04a1b2c3d4e580")
FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # PN532, firmware 1.6, ISO A/B and ISO 18092
SENS_RES_NTAG = b"\x00\x44"

NTAG215_PAGES = 135
NTAG215_CC = bytes([0xE1, 0x10, 0x3E, 0x00])  # NDEF 1.0, 496-byte data area, read/write
NTAG215_DATA_AREA = 0x3E * 8
NTAG215_USER_BYTES = 504  # pages 4-129
# Pages 130-134: dynamic lock bytes, CFG0, CFG1, PWD and PACK (these two read as zeros).
NTAG215_CONFIG = bytes.fromhex("000000bd040000ff000500000000000000000000")

#: Before the next answer by default: a start code with a bad LCS, then a frame header
#: whose claimed length swallows the start of the real answer (bad DCS).
DEFAULT_GARBAGE = bytes.fromhex("1337 00ff 4242 0000ff03fdd5")

STATUS_OK = 0x00
STATUS_TIMEOUT = 0x01  # the target did not answer (it left the field)


def ntag215_image(data_area: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    """The 540-byte memory of an NTAG215 whose data area (from page 4) holds ``data_area``."""
    if len(uid) != 7:
        raise ValueError("an NTAG215 has a 7-byte UID")
    if len(data_area) > NTAG215_DATA_AREA:
        raise ValueError(f"{len(data_area)} bytes do not fit the NTAG215's {NTAG215_DATA_AREA}")
    bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]  # 0x88: the cascade tag
    bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]
    header = uid[:3] + bytes([bcc0]) + uid[3:] + bytes([bcc1, 0x48, 0x00, 0x00]) + NTAG215_CC
    image = header + data_area.ljust(NTAG215_USER_BYTES, b"\x00") + NTAG215_CONFIG
    assert len(image) == NTAG215_PAGES * 4
    return image


def text_data_area(text: str, language: str = "en") -> bytes:
    """The TLVs for a tag holding one Text record: NDEF Message TLV, then Terminator."""
    return ndef_tlv(text_message(text, language)) + bytes([TLV_TERMINATOR])


class SimulatedPN532:
    """A PN532 (HSU) with an optional NTAG215 in its field, answering on a pty.

    ``path``: where to create a symlink to the pty (replacing any old one), so a new
    simulator can appear at the same device path; without it :attr:`device` is the pty's own
    ``/dev/pts/N`` name.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Condition()
        self._master, self._slave = os.openpty()
        # Raw mode, no echo. The simulator keeps the slave open so the master never reads EIO
        # while no reader is connected.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.tty_name = os.ttyname(self._slave)
        self.link = Path(path) if path is not None else None
        if self.link is not None:
            temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(self.tty_name)
            temporary.replace(self.link)
        #: the path to give :class:`~drivers.nfc.pn532.PN532Reader`
        self.device = str(self.link) if self.link is not None else self.tty_name
        self._wake_read, self._wake_write = os.pipe()
        self._closed = False

        self._awake = False
        self._pending = b""
        self._last_answer: bytes | None = None
        self._memory: bytes | None = None
        self._uid = b""
        self._selected = False

        self._corrupt = self._bad_lcs = self._bad_dcs = self._drop = self._errors = 0
        self._garbage = b""
        self._remove_after: int | None = None
        #: when set, the answer faults (all but :meth:`remove_tag_after_reads`) only hit
        #: commands with these codes, e.g. ``{0x40}`` for the tag READs
        self.fault_commands: set[int] | None = None
        self._last_code = 0

        #: counters for tests: commands answered (by code), page READs served, NACKs seen
        self.commands: dict[int, int] = {}
        self.page_reads = 0
        self.nacks = 0

        self._thread = threading.Thread(target=self._serve, name="pn532-sim", daemon=True)
        self._thread.start()

    # -- the tag ---------------------------------------------------------------------------

    def place_tag(
        self, text: str | None = None, *, uid: bytes = DEFAULT_UID, data_area: bytes | None = None
    ) -> None:
        """Put an NTAG215 in the field holding ``text`` as a Text record, or ``data_area``
        (raw TLV bytes from page 4) to test malformed content."""
        if data_area is None:
            if text is None:
                raise ValueError("give text or data_area")
            data_area = text_data_area(text)
        image = ntag215_image(data_area, uid)
        with self._lock:
            self._memory, self._uid, self._selected = image, bytes(uid), False

    def remove_tag(self) -> None:
        with self._lock:
            self._memory, self._uid, self._selected = None, b"", False

    @property
    def tag_present(self) -> bool:
        with self._lock:
            return self._memory is not None

    # -- faults ----------------------------------------------------------------------------

    def corrupt_responses(self, n: int = 1) -> None:
        """Flip the last data byte of the next ``n`` answer frames (the DCS then fails)."""
        with self._lock:
            self._corrupt += n

    def bad_lcs(self, n: int = 1) -> None:
        """Send the next ``n`` answer frames with a wrong length checksum."""
        with self._lock:
            self._bad_lcs += n

    def bad_dcs(self, n: int = 1) -> None:
        """Send the next ``n`` answer frames with a wrong data checksum."""
        with self._lock:
            self._bad_dcs += n

    def inject_garbage(self, data: bytes = DEFAULT_GARBAGE) -> None:
        """Send ``data`` just before the next answer frame."""
        with self._lock:
            self._garbage += data

    def drop_responses(self, n: int = 1) -> None:
        """Leave the next ``n`` commands without ACK or answer (the host times out)."""
        with self._lock:
            self._drop += n

    def error_frames(self, n: int = 1) -> None:
        """Answer the next ``n`` commands with the error frame instead of their answer."""
        with self._lock:
            self._errors += n

    def remove_tag_after_reads(self, k: int) -> None:
        """Pull the tag out of the field once ``k`` more page READs have been answered."""
        with self._lock:
            self._remove_after = k

    @property
    def faults_pending(self) -> bool:
        """Whether an injected fault has not happened yet."""
        with self._lock:
            counts = (self._corrupt, self._bad_lcs, self._bad_dcs, self._drop, self._errors)
            return any(counts) or bool(self._garbage) or self._remove_after is not None

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``condition()`` holds, re-checked after every command; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return True

    # -- life cycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop answering, close the pty and remove the symlink; idempotent."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.link is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self.tty_name:
                    self.link.unlink()

    def __enter__(self) -> SimulatedPN532:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the PN532 -------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            try:
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # no slave side (cannot happen while we hold it): idle a little
                time.sleep(0.01)
                continue
            try:
                self._receive(chunk)
            except Exception:  # a simulator bug must show, not silently stop answering
                log.exception("simulated PN532 failed")

    def _receive(self, chunk: bytes) -> None:
        if not self._awake:
            wake = chunk.find(0x55)
            if wake < 0:
                return  # asleep: only the HSU wake-up byte is heard
            self._awake, chunk = True, chunk[wake:]
        frames, self._pending = parse_frames(self._pending + chunk)
        for frame in frames:
            self._handle(frame)
            with self._lock:
                self._lock.notify_all()

    def _handle(self, frame: Frame) -> None:
        if frame.kind is FrameKind.NACK:
            with self._lock:
                self.nacks += 1
            if self._last_answer is not None:
                self._send_answer(self._last_answer, self._last_code)
            return
        if frame.kind is not FrameKind.INFORMATION or frame.tfi != HOST_TO_PN532:
            return  # ACK (abort), corrupt frames and stray frames get no answer
        if not frame.data:
            self._write(ERROR_FRAME)
            return
        code, params = frame.data[0], frame.data[1:]
        with self._lock:
            targeted = self._targeted(code)
            if self._drop and targeted:
                self._drop -= 1
                return
            self._write(ACK_FRAME)
            self.commands[code] = self.commands.get(code, 0) + 1
            if self._errors and targeted:
                self._errors -= 1
                self._write(ERROR_FRAME)
                return
            answer = self._answer(code, params)
        if answer is None:
            self._write(ERROR_FRAME)
            return
        self._last_answer = build_frame(bytes([code + 1]) + answer, tfi=PN532_TO_HOST)
        self._last_code = code
        self._send_answer(self._last_answer, code)

    def _targeted(self, code: int) -> bool:
        return self.fault_commands is None or code in self.fault_commands

    def _answer(self, code: int, params: bytes) -> bytes | None:
        if code == 0x02:  # GetFirmwareVersion
            return FIRMWARE
        if code in (0x14, 0x32):  # SAMConfiguration, RFConfiguration
            return b""
        if code == 0x52:  # InRelease
            self._selected = False
            return b"\x00"
        if code == 0x4A:  # InListPassiveTarget
            if params[:2] != b"\x01\x00" or self._memory is None:
                self._selected = False
                return b"\x00"
            self._selected = True
            return b"\x01\x01" + SENS_RES_NTAG + bytes([0x00, len(self._uid)]) + self._uid
        if code == 0x40:  # InDataExchange
            return self._exchange(params)
        return None

    def _exchange(self, params: bytes) -> bytes:
        if self._memory is None or not self._selected or len(params) < 2 or params[0] != 1:
            return bytes([STATUS_TIMEOUT])
        if params[1] != 0x30 or len(params) != 3 or params[2] >= NTAG215_PAGES:
            return bytes([STATUS_TIMEOUT])  # the tag NAKs; the PN532 reports no answer
        start = params[2] * 4
        data = (self._memory[start:] + self._memory)[:16]  # READ rolls over to page 0
        self.page_reads += 1
        if self._remove_after is not None:
            self._remove_after -= 1
            if self._remove_after <= 0:
                self._remove_after = None
                self._memory, self._uid, self._selected = None, b"", False
        return bytes([STATUS_OK]) + data

    def _send_answer(self, frame: bytes, code: int) -> None:
        damaged = bytearray(frame)
        garbage = b""
        with self._lock:
            if not self._targeted(code):
                self._write(frame)
                return
            garbage, self._garbage = self._garbage, b""
            if self._corrupt:
                self._corrupt -= 1
                damaged[-3] ^= 0xFF  # the last data byte
            elif self._bad_lcs:
                self._bad_lcs -= 1
                damaged[4] ^= 0x01
            elif self._bad_dcs:
                self._bad_dcs -= 1
                damaged[-2] ^= 0x01
        self._write(garbage + bytes(damaged))

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except (BlockingIOError, OSError):  # nobody reading: the bytes are lost, as on a UART
            log.debug("simulated PN532: %d bytes not delivered", len(data))
