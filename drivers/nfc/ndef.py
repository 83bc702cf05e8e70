"""NDEF on NFC Forum Type 2 tags (NTAG21x): capability container, TLVs, Text records.

A Type 2 tag's memory is read from address 0 (page 0). Pages 0-2 hold the UID and lock
bytes, page 3 the capability container (``E1 10 size 00``: magic, version 1.0, data area
size / 8, read/write access), and the data area starts at page 4 as a sequence of TLVs:

- ``00`` NULL (one byte, skipped),
- ``01`` Lock Control and ``02`` Memory Control: describe reserved bytes inside the data
  area, which are skipped while reading what follows,
- ``03`` NDEF Message: length in one byte, or ``FF`` and two bytes big-endian,
- ``FD`` proprietary and unknown types: skipped by their length,
- ``FE`` Terminator.

Records follow the NDEF 1.0 layout (MB ME CF SR IL TNF header); a Text record is TNF 0x01,
type ``T``, and a payload of a status byte (bit 7: UTF-16, bits 0-5: language code length),
the language code and the text. Every length is checked against the bytes actually there and
against :data:`MAX_NDEF_LENGTH`, so a hostile tag cannot make the reader loop or allocate.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The longest NDEF message accepted; a GT1 text is at most 1,000 characters.
MAX_NDEF_LENGTH = 1024
#: Address of page 4, where the data area of a Type 2 tag begins.
DATA_AREA_START = 16
CC_MAGIC = 0xE1

TLV_NULL, TLV_LOCK_CONTROL, TLV_MEMORY_CONTROL, TLV_NDEF = 0x00, 0x01, 0x02, 0x03
TLV_PROPRIETARY, TLV_TERMINATOR = 0xFD, 0xFE

TNF_WELL_KNOWN = 0x01
TNF_UNCHANGED = 0x06  # the middle and last chunks of a chunked record
FLAG_MB, FLAG_ME, FLAG_CF, FLAG_SR, FLAG_IL = 0x80, 0x40, 0x20, 0x10, 0x08
TEXT_UTF16 = 0x80
TEXT_LANGUAGE_LENGTH = 0x3F


class NdefError(ValueError):
    """The tag's memory does not hold a readable NDEF message."""


def data_area_size(capability_container: bytes) -> int:
    """Bytes in the data area, from the 4-byte capability container at page 3."""
    if len(capability_container) != 4:
        raise NdefError("capability container must be 4 bytes")
    magic, version, size, access = capability_container
    if magic != CC_MAGIC:
        raise NdefError(f"no NDEF capability container (magic {magic:02x}, expected e1)")
    if version >> 4 != 1:
        raise NdefError(f"unsupported Type 2 tag mapping version {version >> 4}.{version & 15}")
    if access >> 4 != 0:
        raise NdefError("the NDEF data area is not readable")
    return size * 8


class _NeedMore(Exception):
    pass


class _DataArea:
    """Reads the data area in order, skipping reserved ranges announced by control TLVs."""

    def __init__(self, memory: bytes, end: int) -> None:
        self.memory = memory
        self.end = end
        self.pos = DATA_AREA_START
        self.reserved: list[range] = []

    def take(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            skip = next((area for area in self.reserved if self.pos in area), None)
            if skip is not None:
                self.pos = skip.stop
                continue
            if self.pos >= self.end:
                raise NdefError("the data area ends inside a TLV, or holds no NDEF message")
            if self.pos >= len(self.memory):
                raise _NeedMore
            out.append(self.memory[self.pos])
            self.pos += 1
        return bytes(out)

    def length(self) -> int:
        first = self.take(1)[0]
        return int.from_bytes(self.take(2), "big") if first == 0xFF else first

    def reserve(self, kind: int, value: bytes) -> None:
        if len(value) != 3:
            return  # malformed control TLV: nothing reliable to skip
        page, offset = value[0] >> 4, value[0] & 0x0F
        page_size = 1 << (value[2] & 0x0F)
        address = page * page_size + offset
        size = value[1] or 256  # 0 means 256 (lock bits, or bytes)
        if kind == TLV_LOCK_CONTROL:
            size = (size + 7) // 8
        self.reserved.append(range(address, address + size))


def find_ndef_message(
    memory: bytes, area_end: int, max_length: int = MAX_NDEF_LENGTH
) -> bytes | None:
    """The value of the first NDEF TLV in a Type 2 tag's memory read from address 0.

    ``area_end`` is the address just past the data area (``16 + data_area_size``). Returns
    None when ``memory`` stops before the message does (read more pages and call again);
    raises :class:`NdefError` when there is no usable message.
    """
    area = _DataArea(memory, area_end)
    try:
        while True:
            kind = area.take(1)[0]
            if kind == TLV_NULL:
                continue
            if kind == TLV_TERMINATOR:
                raise NdefError("no NDEF message before the terminator TLV")
            length = area.length()
            if kind == TLV_NDEF:
                if length == 0:
                    raise NdefError("the NDEF message is empty")
                if length > max_length:
                    raise NdefError(f"NDEF message of {length} bytes exceeds {max_length}")
                return area.take(length)
            value = area.take(length)
            if kind in (TLV_LOCK_CONTROL, TLV_MEMORY_CONTROL):
                area.reserve(kind, value)
    except _NeedMore:
        return None


@dataclass(frozen=True)
class NdefRecord:
    tnf: int
    type: bytes
    id: bytes
    payload: bytes
    chunked: bool = False


def parse_records(message: bytes) -> list[NdefRecord]:
    """The records of an NDEF message, up to the one flagged ME."""
    records: list[NdefRecord] = []
    pos = 0
    while True:
        if pos >= len(message):
            raise NdefError("NDEF message ends before its last record (no ME flag)")
        header = message[pos]
        if not records and not header & FLAG_MB:
            raise NdefError("the first NDEF record lacks the MB flag")
        pos += 1
        fixed = 1 + (1 if header & FLAG_SR else 4) + (1 if header & FLAG_IL else 0)
        if pos + fixed > len(message):
            raise NdefError("NDEF record header is truncated")
        type_length = message[pos]
        pos += 1
        size = 1 if header & FLAG_SR else 4
        payload_length = int.from_bytes(message[pos : pos + size], "big")
        pos += size
        id_length = 0
        if header & FLAG_IL:
            id_length = message[pos]
            pos += 1
        end = pos + type_length + id_length + payload_length
        if end > len(message):
            raise NdefError("NDEF record is longer than the message")
        record_type = message[pos : pos + type_length]
        record_id = message[pos + type_length : pos + type_length + id_length]
        payload = message[pos + type_length + id_length : end]
        records.append(
            NdefRecord(header & 0x07, record_type, record_id, payload, bool(header & FLAG_CF))
        )
        pos = end
        if header & FLAG_ME:
            return records


def decode_text(payload: bytes) -> tuple[str, str]:
    """(language, text) of a Text record payload."""
    if not payload:
        raise NdefError("empty Text record")
    status = payload[0]
    language_end = 1 + (status & TEXT_LANGUAGE_LENGTH)
    if language_end > len(payload):
        raise NdefError("Text record language code is longer than its payload")
    try:
        language = payload[1:language_end].decode("ascii")
        raw = payload[language_end:]
        if status & TEXT_UTF16:
            has_bom = raw[:2] in (b"\xfe\xff", b"\xff\xfe")
            text = raw.decode("utf-16" if has_bom else "utf-16-be")
        else:
            text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NdefError(f"Text record is not valid text: {err.reason}") from err
    return language, text


def first_text(message: bytes) -> str | None:
    """The text of the first complete Text record in the message; other records are ignored.

    Chunked records are ignored too: a ticket always fits in one record.
    """
    for record in parse_records(message):
        if record.chunked or record.tnf == TNF_UNCHANGED:
            continue
        if record.tnf == TNF_WELL_KNOWN and record.type == b"T":
            return decode_text(record.payload)[1]
    return None


def text_message(text: str, language: str = "en") -> bytes:
    """A one-record NDEF message holding a UTF-8 Text record."""
    code = language.encode("ascii")
    if len(code) > TEXT_LANGUAGE_LENGTH:
        raise ValueError("language code too long")
    payload = bytes([len(code)]) + code + text.encode("utf-8")
    if len(payload) < 256:
        header = bytes([FLAG_MB | FLAG_ME | FLAG_SR | TNF_WELL_KNOWN, 1, len(payload)])
    else:
        header = bytes([FLAG_MB | FLAG_ME | TNF_WELL_KNOWN, 1]) + len(payload).to_bytes(4, "big")
    return header + b"T" + payload


def ndef_tlv(message: bytes) -> bytes:
    """The NDEF Message TLV for ``message`` (one- or three-byte length)."""
    if len(message) < 0xFF:
        return bytes([TLV_NDEF, len(message)]) + message
    if len(message) > 0xFFFE:
        raise ValueError("NDEF message too long for a TLV")
    return bytes([TLV_NDEF, 0xFF]) + len(message).to_bytes(2, "big") + message
