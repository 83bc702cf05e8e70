"""A PN532 NFC reader on a UART (HSU), reading GT1 tickets from NTAG21x Text records.

The PN532 protocol is written here on pyserial, and the port is opened with
``serial.serial_for_url`` so tests and ``gated --simulate`` drive the very same code through a
pty (:mod:`drivers.nfc.sim`). We do not use nfcpy: it drives readers through its own USB/tty
device stack, carries a large Python-2-era code base, and we need only four PN532 commands and
one tag type.

What happens on the line (NXP PN532 user manual UM0701-02; frames in :mod:`.frames`):

- open: the HSU wake-up preamble (``55 55 00 ..``) precedes the first command,
  SAMConfiguration (normal mode, which also leaves the power-on LowVbat state), then
  GetFirmwareVersion (the answer must name IC 0x32) and RFConfiguration MaxRetries, so that
  InListPassiveTarget tries one activation and answers at once instead of waiting for a tag
  forever (the power-on default);
- every ``poll_interval``: InListPassiveTarget (MaxTg 1, 106 kbps ISO 14443A). For a new
  Type 2 tag (SAK 00), InDataExchange carries NTAG READ (``30 page``, 16 bytes = 4 pages) from
  page 0 (UID and capability container) on, until the NDEF TLV is complete; the text of the
  first Text record is presented once (:mod:`.ndef`).

Each command waits for the PN532's ACK and answer within ``command_timeout``. A corrupt answer
is asked for again with a NACK (twice at most); a NACK from the PN532 resends the command once;
an error frame, a timeout or a failed tag read skips this poll and the next poll tries again.
A tag is read whole before anything is presented, so a tag pulled away mid-read presents
nothing. Only when the PN532 misses :data:`MISSED_REPLIES_LIMIT` answers in a row, or the port
itself fails, does ``_read`` raise :class:`DriverOperationError` and the base reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import serial

from drivers.base import CodeReader, Presentation
from drivers.nfc.frames import (
    ACK_FRAME,
    NACK_FRAME,
    PN532_TO_HOST,
    Frame,
    FrameKind,
    build_frame,
    parse_frames,
)
from drivers.nfc.ndef import (
    DATA_AREA_START,
    MAX_NDEF_LENGTH,
    NdefError,
    data_area_size,
    find_ndef_message,
    first_text,
)
from gate.errors import DriverInitError, DriverOperationError

log = logging.getLogger(__name__)

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_DATA_EXCHANGE = 0x40
CMD_IN_LIST_PASSIVE_TARGET = 0x4A
NTAG_READ = 0x30

#: HSU wake-up: 0x55 0x55 and a long preamble, sent just before the first command
WAKE_UP = b"\x55\x55" + bytes(14)
PN532_IC = 0x32
SAM_NORMAL_MODE, SAM_TIMEOUT, SAM_USE_IRQ = 0x01, 0x14, 0x01
BAUD_106_TYPE_A = 0x00
RF_ITEM_MAX_RETRIES = 0x05
#: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation (one try: "no target" comes back at once)
RF_MAX_RETRIES = bytes([0xFF, 0x01, 0x01])
TYPE_2_SAK = 0x00

#: answers a command may miss in a row before the PN532 counts as gone
MISSED_REPLIES_LIMIT = 3
NACK_RETRIES = 2
#: the most tag memory read for one ticket: header pages, message, room for control TLVs;
#: also below 256 pages, the reach of READ's one-byte page address
MAX_MEMORY_READ = min(DATA_AREA_START + MAX_NDEF_LENGTH + 64, 256 * 4)
#: how long one port read blocks; command deadlines are enforced around it
PORT_READ_TIMEOUT = 0.02
#: after a NACK, how long at most to wait for (and drop) a duplicate answer
SETTLE_TIME = 0.1


class PN532Error(Exception):
    """One command got no usable answer: corrupt frames, an error frame, a timeout."""


class NoReply(PN532Error):
    """Not a single frame came back before the deadline."""


class TagReadError(Exception):
    """The tag stopped answering (pulled away) or answered a READ badly."""


class PN532Link:
    """Commands and their answers over an open serial port: framing, ACK/NACK and deadlines."""

    def __init__(self, port: serial.SerialBase, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self._pending = b""
        self._frames: deque[Frame] = deque()
        self._asked_again = False

    def command(self, code: int, params: bytes = b"", *, preamble: bytes = b"") -> bytes:
        """Send one command and return its answer's data (after the response code)."""
        request = build_frame(bytes([code]) + params)
        self._discard_input()
        self._write(preamble + request)
        self._asked_again = False
        try:
            return self._answer(code, request, time.monotonic() + self.timeout)
        finally:
            if self._asked_again:
                # A NACK for a garbled frame that was not our answer (or a resent command)
                # brings one more answer later: let it arrive and drop it, so it cannot pass
                # for the answer to the next command, such as a READ of another page.
                self._settle()

    def _answer(self, code: int, request: bytes, deadline: float) -> bytes:
        nacks = resends = 0
        heard = False
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                self._write(ACK_FRAME)  # an ACK from the host aborts a command still running
                error = PN532Error if heard else NoReply
                raise error(f"no answer to command {code:#04x} within {self.timeout} s")
            heard = True
            if frame.kind is FrameKind.INFORMATION:
                if _answers(frame, code):
                    return frame.data[1:]
                continue  # a late answer to an earlier command
            if frame.kind is FrameKind.CORRUPT:
                if any(_answers(queued, code) for queued in self._frames):
                    continue  # the answer itself arrived whole: nothing to ask again
                if nacks == NACK_RETRIES:
                    raise PN532Error(f"corrupt answer to command {code:#04x}: {frame.reason}")
                nacks += 1
                self._asked_again = True
                self._write(NACK_FRAME)  # asks the PN532 to send its last frame again
            elif frame.kind is FrameKind.NACK:
                if resends == 1:
                    raise PN532Error(f"the PN532 refused command {code:#04x} twice (NACK)")
                resends += 1
                self._asked_again = True
                self._write(request)
            elif frame.kind is FrameKind.ERROR:
                raise PN532Error(f"the PN532 answered command {code:#04x} with an error frame")
            # An ACK only says the command arrived; its answer follows.

    def _settle(self) -> None:
        until = time.monotonic() + SETTLE_TIME
        while time.monotonic() < until and self._read_port():
            pass
        self._pending = b""
        self._frames.clear()

    def _next_frame(self, deadline: float) -> Frame | None:
        while not self._frames:
            if time.monotonic() >= deadline:
                return None
            chunk = self._read_port()
            if chunk:
                frames, self._pending = parse_frames(self._pending + chunk)
                self._frames.extend(frames)
        return self._frames.popleft()

    def _discard_input(self) -> None:
        self._pending = b""
        self._frames.clear()
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as err:
            raise DriverOperationError(f"serial port failed: {err}") from err

    def _read_port(self) -> bytes:
        try:
            first = self.port.read(1)  # blocks for at most PORT_READ_TIMEOUT
            waiting = self.port.in_waiting if first else 0
            return first + self.port.read(waiting) if waiting else first
        except (serial.SerialException, OSError) as err:
            raise DriverOperationError(f"serial port failed: {err}") from err

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as err:
            raise DriverOperationError(f"serial port failed: {err}") from err


def _answers(frame: Frame, code: int) -> bool:
    return frame.tfi == PN532_TO_HOST and frame.data[:1] == bytes([code + 1])


@dataclass(frozen=True)
class Target:
    """A tag the PN532 activated: its number, UID and SAK, and when it was seen."""

    number: int
    uid: bytes
    sak: int
    seen: float


def parse_target(answer: bytes) -> Target | None:
    """The first target of an InListPassiveTarget answer (106 kbps type A), or None."""
    if not answer or answer[0] == 0:
        return None
    # NbTg, Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1 [, ATS]
    if len(answer) < 6 or len(answer) < 6 + answer[5] or answer[5] == 0:
        raise PN532Error(f"malformed InListPassiveTarget answer {answer.hex()}")
    return Target(answer[1], answer[6 : 6 + answer[5]], answer[4], time.monotonic())


class PN532Reader(CodeReader):
    """GT1 texts from NTAG21x tags on a PN532 reader connected to a UART (HSU mode).

    ``url`` is a device path or any ``serial_for_url`` URL. A tag is presented once; it is
    presented again only after a poll has found it gone.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "nfc",
        baudrate: int = 115200,
        poll_interval: float = 0.1,
        command_timeout: float = 0.5,
    ) -> None:
        super().__init__(name)
        self.url = url
        self.baudrate = baudrate
        self.poll_interval = poll_interval
        self.command_timeout = command_timeout
        #: (IC, Ver, Rev, Support) from GetFirmwareVersion, once open
        self.firmware: tuple[int, ...] | None = None
        self._port: serial.SerialBase | None = None
        self._link: PN532Link | None = None
        self._handled_uid: bytes | None = None  # presented (or refused); cleared when gone
        self._missed = 0
        self._next_poll = 0.0

    def _open(self) -> None:
        self._close()
        self._handled_uid, self._missed, self._next_poll = None, 0, 0.0
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=PORT_READ_TIMEOUT,
                write_timeout=self.command_timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DriverInitError(f"{self.name}: cannot open {self.url}: {err}") from err
        self._link = PN532Link(self._port, self.command_timeout)
        try:
            self._start_pn532()
        except (PN532Error, DriverOperationError) as err:
            self._close()
            raise DriverInitError(f"{self.name}: no PN532 answering on {self.url}: {err}") from err
        except BaseException:
            self._close()
            raise

    def _start_pn532(self) -> None:
        sam = bytes([SAM_NORMAL_MODE, SAM_TIMEOUT, SAM_USE_IRQ])
        try:
            self._command(CMD_SAM_CONFIGURATION, sam, preamble=WAKE_UP)
        except PN532Error:  # one more wake-up: the first may have been spent waking it
            self._command(CMD_SAM_CONFIGURATION, sam, preamble=WAKE_UP)
        firmware = self._command(CMD_GET_FIRMWARE_VERSION)
        if len(firmware) < 4 or firmware[0] != PN532_IC:
            raise DriverInitError(
                f"{self.name}: the device on {self.url} is not a PN532 "
                f"(GetFirmwareVersion answered {firmware.hex() or 'nothing'})"
            )
        self.firmware = tuple(firmware[:4])
        self._command(CMD_RF_CONFIGURATION, bytes([RF_ITEM_MAX_RETRIES]) + RF_MAX_RETRIES)
        log.info("%s: PN532 firmware %d.%d on %s", self.name, firmware[1], firmware[2], self.url)

    def _close(self) -> None:
        port, self._port, self._link = self._port, None, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):  # it may have vanished
                port.close()

    def _read(self, timeout: float) -> list[Presentation]:
        wait = self._next_poll - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return []
        if wait > 0:
            time.sleep(wait)
        self._next_poll = time.monotonic() + self.poll_interval
        return self._poll()

    def _poll(self) -> list[Presentation]:
        try:
            target = parse_target(
                self._command(CMD_IN_LIST_PASSIVE_TARGET, bytes([1, BAUD_106_TYPE_A]))
            )
        except PN532Error as err:
            # Whether a tag is there is unknown: keep the handled UID, so a tag held still
            # through a bad frame is not presented twice.
            log.debug("%s: poll skipped: %s", self.name, err)
            return []
        if target is None:
            self._handled_uid = None
            return []
        if target.uid == self._handled_uid:
            return []
        uid = target.uid.hex()
        if target.sak != TYPE_2_SAK:
            log.warning(
                "%s: tag %s is not an NTAG/Type 2 tag (SAK %02x)", self.name, uid, target.sak
            )
            self._handled_uid = target.uid
            return []
        try:
            text = self._read_text(target.number)
        except (PN532Error, TagReadError) as err:
            log.warning("%s: reading tag %s failed, will retry: %s", self.name, uid, err)
            return []
        except NdefError as err:
            log.warning("%s: tag %s holds no readable NDEF message: %s", self.name, uid, err)
            self._handled_uid = target.uid
            return []
        self._handled_uid = target.uid
        if text is None:
            log.warning("%s: tag %s holds no NDEF Text record", self.name, uid)
            return []
        log.debug("%s: tag %s read", self.name, uid)
        return [Presentation(text, self.name, target.seen)]

    def _read_text(self, target: int) -> str | None:
        memory = self._read_pages(target, 0)  # pages 0-3: UID, lock bytes, capability container
        area_end = DATA_AREA_START + data_area_size(memory[12:16])
        limit = min(area_end, MAX_MEMORY_READ)
        while (message := find_ndef_message(memory, area_end)) is None:
            if len(memory) >= limit:
                raise NdefError(f"no complete NDEF message in the first {limit} bytes")
            memory += self._read_pages(target, len(memory) // 4)
        return first_text(message)

    def _read_pages(self, target: int, page: int) -> bytes:
        answer = self._command(CMD_IN_DATA_EXCHANGE, bytes([target, NTAG_READ, page]))
        if not answer:
            raise PN532Error("empty InDataExchange answer")
        status = answer[0] & 0x3F
        if status:
            raise TagReadError(f"READ of page {page} failed (PN532 status {status:#04x})")
        if len(answer) != 17:
            raise TagReadError(f"READ of page {page} returned {len(answer) - 1} bytes, not 16")
        return answer[1:]

    def _command(self, code: int, params: bytes = b"", *, preamble: bytes = b"") -> bytes:
        if self._link is None:
            raise DriverOperationError(f"{self.name}: the reader is not open")
        try:
            answer = self._link.command(code, params, preamble=preamble)
        except NoReply as err:
            self._missed += 1
            if self._missed >= MISSED_REPLIES_LIMIT:
                raise DriverOperationError(
                    f"{self.name}: the PN532 on {self.url} stopped answering "
                    f"({self._missed} commands without a reply)"
                ) from err
            raise
        self._missed = 0
        return answer
