"""PN532 frames as the NXP PN532 user manual (UM0701-02, §6.2.1) defines them, for HSU.

::

    normal information frame   00 00 FF LEN LCS TFI PD0 .. PDn DCS 00
    ACK                        00 00 FF 00 FF 00
    NACK                       00 00 FF FF 00 00
    error (application level)  00 00 FF 01 FF 7F 81 00
    extended information frame 00 00 FF FF FF LENM LENL LCS TFI ... DCS 00   (not supported)

``LEN`` counts TFI and the data bytes, ``LEN + LCS == 0 (mod 256)``, and
``TFI + PD0 + .. + PDn + DCS == 0 (mod 256)``. TFI is D4 from the host and D5 from the PN532.

Both functions here are pure, so the reader and the simulator share them and the tests pin
them against the manual's byte sequences. :func:`parse_frames` never raises: garbage before
a start code is dropped, a frame whose checksum fails becomes a ``CORRUPT`` frame and parsing
resumes just past its start code, and an incomplete frame is left in the remainder until
more bytes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5
ERROR_TFI = 0x7F  # the single data byte of an application-level error frame

START_CODE = b"\x00\xff"
ACK_FRAME = b"\x00\x00\xff\x00\xff\x00"
NACK_FRAME = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"

#: TFI + data of a normal information frame; 0xFF with LCS 0xFF marks an extended frame
MAX_FRAME_DATA = 0xFF


class FrameKind(Enum):
    ACK = "ack"
    NACK = "nack"
    ERROR = "error"
    INFORMATION = "information"
    CORRUPT = "corrupt"  # checksum failure or unsupported extended frame


@dataclass(frozen=True)
class Frame:
    """One frame found on the line. ``data`` excludes TFI; ``reason`` explains CORRUPT."""

    kind: FrameKind
    tfi: int | None = None
    data: bytes = b""
    reason: str = ""


def checksum(data: bytes) -> int:
    """The byte that makes ``sum(data) + checksum`` a multiple of 256 (LCS and DCS)."""
    return (0x100 - sum(data)) & 0xFF


def build_frame(data: bytes, tfi: int = HOST_TO_PN532) -> bytes:
    """A normal information frame carrying ``data`` (command code and parameters)."""
    body = bytes([tfi]) + bytes(data)
    if len(body) > MAX_FRAME_DATA:
        raise ValueError(f"a normal frame carries at most {MAX_FRAME_DATA - 1} data bytes")
    length = len(body)
    return (
        b"\x00\x00\xff"
        + bytes([length, checksum(bytes([length]))])
        + body
        + bytes([checksum(body), 0x00])
    )


def parse_frames(buffer: bytes) -> tuple[list[Frame], bytes]:
    """Split ``buffer`` into the frames it holds and the bytes not yet parsed.

    The remainder is an incomplete frame (keep it and append what arrives next) or a single
    trailing ``00`` that may begin a start code; everything else that is not a frame is
    dropped.
    """
    frames: list[Frame] = []
    data = bytes(buffer)
    pos = 0
    while True:
        start = data.find(START_CODE, pos)
        if start < 0:
            # Keep a trailing 00: it may be the first half of a start code.
            return frames, b"\x00" if data[pos:].endswith(b"\x00") else b""
        head = start + len(START_CODE)
        if len(data) < head + 2:
            return frames, data[start:]
        length, lcs = data[head], data[head + 1]
        if (length, lcs) == (0x00, 0xFF):
            frames.append(Frame(FrameKind.ACK))
            pos = _after_postamble(data, head + 2)
            continue
        if (length, lcs) == (0xFF, 0x00):
            frames.append(Frame(FrameKind.NACK))
            pos = _after_postamble(data, head + 2)
            continue
        if (length, lcs) == (0xFF, 0xFF):
            frames.append(Frame(FrameKind.CORRUPT, reason="extended frame (not supported)"))
            pos = head
            continue
        if (length + lcs) & 0xFF or length == 0:
            frames.append(Frame(FrameKind.CORRUPT, reason="bad length checksum (LCS)"))
            pos = head
            continue
        end = head + 2 + length  # index of DCS
        if len(data) < end + 1:
            return frames, data[start:]
        body = data[head + 2 : end]
        if checksum(body) != data[end]:
            frames.append(Frame(FrameKind.CORRUPT, reason="bad data checksum (DCS)"))
            pos = head
            continue
        pos = _after_postamble(data, end + 1)
        if body == bytes([ERROR_TFI]):
            frames.append(Frame(FrameKind.ERROR))
        else:
            frames.append(Frame(FrameKind.INFORMATION, body[0], body[1:]))


def _after_postamble(data: bytes, pos: int) -> int:
    # The postamble carries no information; skip it when it is there, never wait for it.
    return pos + 1 if data[pos : pos + 1] == b"\x00" else pos
