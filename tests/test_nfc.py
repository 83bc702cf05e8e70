"""The PN532 reader: frames and NDEF decoding as pure functions, then the reader end to end
against the simulated PN532 on a real pty (no mocks of our own code)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest
import serial

from drivers.base import Health, HealthState, Presentation
from drivers.nfc.frames import (
    ACK_FRAME,
    ERROR_FRAME,
    NACK_FRAME,
    PN532_TO_HOST,
    Frame,
    FrameKind,
    build_frame,
    checksum,
    parse_frames,
)
from drivers.nfc.ndef import (
    MAX_NDEF_LENGTH,
    NdefError,
    data_area_size,
    decode_text,
    find_ndef_message,
    first_text,
    ndef_tlv,
    parse_records,
    text_message,
)
from drivers.nfc.pn532 import PN532Reader
from drivers.nfc.sim import DEFAULT_UID, SimulatedPN532, ntag215_image, text_data_area
from gate.errors import DriverInitError
from gate.revocations import MemoryRevocations
from gate.ticket import Claims, mint_ticket
from gate.trust import TrustStore
from gate.validator import Policy, Reason, Validator

OTHER_UID = bytes.fromhex("04112233445566")
CMD_LIST, CMD_EXCHANGE = 0x4A, 0x40

# -- frames -----------------------------------------------------------------------------------


def test_build_frame_matches_the_manuals_byte_sequences():
    assert build_frame(b"\x02") == bytes.fromhex("0000ff02fed4022a00")  # GetFirmwareVersion
    assert build_frame(b"\x14\x01\x14\x01") == bytes.fromhex("0000ff05fbd414011401 0200")
    assert build_frame(b"\x4a\x01\x00") == bytes.fromhex("0000ff04fcd44a0100e100")
    answer = build_frame(b"\x03\x32\x01\x06\x07", tfi=PN532_TO_HOST)
    assert answer == bytes.fromhex("0000ff06fad50332010607e800")


def test_build_frame_checksums_hold_for_every_length():
    for size in range(0, 254):
        frame = build_frame(bytes(range(size)))
        length, lcs = frame[3], frame[4]
        assert length == size + 1 and (length + lcs) % 256 == 0
        assert sum(frame[5:-1]) % 256 == 0  # TFI + data + DCS
        assert frame[-1] == 0
    with pytest.raises(ValueError):
        build_frame(bytes(255))


def test_parse_ack_nack_and_error_frames():
    frames, rest = parse_frames(ACK_FRAME + NACK_FRAME + ERROR_FRAME)
    assert [f.kind for f in frames] == [FrameKind.ACK, FrameKind.NACK, FrameKind.ERROR]
    assert rest == b""
    assert bytes.fromhex("0000ff01ff7f8100") == ERROR_FRAME


def test_parse_information_frame():
    frames, rest = parse_frames(build_frame(b"\x4b\x00", tfi=PN532_TO_HOST))
    assert frames == [Frame(FrameKind.INFORMATION, PN532_TO_HOST, b"\x4b\x00")]
    assert rest == b""


def test_bad_checksums_are_reported_and_parsing_resyncs():
    good = build_frame(b"\x41\x00hello", tfi=PN532_TO_HOST)
    bad_lcs = bytearray(good)
    bad_lcs[4] ^= 1
    bad_dcs = bytearray(good)
    bad_dcs[-2] ^= 1
    frames, rest = parse_frames(bytes(bad_lcs) + bytes(bad_dcs) + good)
    kinds = [f.kind for f in frames]
    assert kinds == [FrameKind.CORRUPT, FrameKind.CORRUPT, FrameKind.INFORMATION]
    assert "LCS" in frames[0].reason and "DCS" in frames[1].reason
    assert frames[2].data == b"\x41\x00hello" and rest == b""


def test_garbage_is_dropped_before_a_frame():
    garbage = bytes.fromhex("1337 55 55 00 00 ff 42 42 00 00 ff 03 fd d5")
    frames, rest = parse_frames(garbage + ACK_FRAME + build_frame(b"\x15", tfi=PN532_TO_HOST))
    assert [f.kind for f in frames if f.kind is not FrameKind.CORRUPT] == [
        FrameKind.ACK,
        FrameKind.INFORMATION,
    ]
    assert frames[-1].data == b"\x15" and rest == b""
    assert parse_frames(b"\x13\x37\x42") == ([], b"")


def test_a_truncated_frame_waits_for_the_rest_at_every_split():
    stream = b"\x99" + ACK_FRAME + build_frame(b"\x41\x00" + bytes(16), tfi=PN532_TO_HOST)
    whole, _ = parse_frames(stream)
    for split in range(len(stream) + 1):
        first, rest = parse_frames(stream[:split])
        second, rest = parse_frames(rest + stream[split:])
        assert first + second == whole
        assert rest in (b"", b"\x00")  # a lone trailing 00 may start the next frame
    frame = build_frame(b"\x41\x00abc", tfi=PN532_TO_HOST)
    frames, rest = parse_frames(frame[:-3])
    assert frames == [] and rest == frame[1:-3]  # kept from its start code
    assert parse_frames(rest + frame[-3:])[0][0].data == b"\x41\x00abc"


def test_extended_and_empty_frames_are_refused():
    extended = bytes.fromhex("0000ffffff0002fed54b") + bytes([checksum(b"\xd5\x4b")]) + b"\x00"
    frames, _ = parse_frames(extended)
    assert frames[0].kind is FrameKind.CORRUPT and "extended" in frames[0].reason
    frames, _ = parse_frames(bytes.fromhex("0000ff000000"))  # LEN 0, LCS 0: not an ACK
    assert frames[0].kind is FrameKind.CORRUPT


# -- NDEF -------------------------------------------------------------------------------------


def memory_with(data_area: bytes) -> tuple[bytes, int]:
    image = ntag215_image(data_area)
    return image, 16 + data_area_size(image[12:16])


def test_text_record_bytes_and_short_tlv():
    message = text_message("hi")
    assert message == bytes.fromhex("d1 01 05 54 02 65 6e 68 69")
    assert ndef_tlv(message) == bytes.fromhex("03 09") + message
    memory, end = memory_with(text_data_area("hi"))
    assert memory[12:16] == bytes.fromhex("e1103e00")
    assert find_ndef_message(memory, end) == message
    assert first_text(message) == "hi"
    assert decode_text(parse_records(message)[0].payload) == ("en", "hi")


def test_long_tlv_and_long_record_hold_a_1000_character_text():
    text = "GT1:" + "A" * 996
    message = text_message(text)
    assert message[0] == 0xC1  # MB ME, not SR: a four-byte payload length
    tlv = ndef_tlv(message)
    assert tlv[:2] == b"\x03\xff" and int.from_bytes(tlv[2:4], "big") == len(message)
    memory = bytes(16) + tlv + b"\xfe"
    assert first_text(find_ndef_message(memory, 16 + 2000)) == text


def test_null_lock_and_memory_control_tlvs_are_handled():
    message = text_message("GT1:ABC")
    # Addresses 16-27: NULL; Lock Control: 16 lock bits (2 bytes) at 4-byte page 7, byte 2
    # (address 30); Memory Control: 3 bytes at page 9, byte 0 (address 36); NULL.
    head = bytes.fromhex("00  01 03 72 10 42  02 03 90 03 42  00")
    assert len(head) == 12
    tlv = ndef_tlv(message) + b"\xfe"  # from address 28, around the reserved bytes
    data_area = head + tlv[:2] + b"\xee" * 2 + tlv[2:6] + b"\xee" * 3 + tlv[6:]
    memory = bytes(16) + data_area
    assert find_ndef_message(memory, 16 + 496) == message
    # Without the control TLVs the reserved bytes would be read as part of the message.
    plain = bytes(16) + bytes(12) + data_area[12:]
    assert find_ndef_message(plain, 16 + 496) != message


def test_incomplete_memory_asks_for_more():
    memory, end = memory_with(text_data_area("GT1:" + "B" * 200))
    assert find_ndef_message(memory[:40], end) is None
    assert find_ndef_message(memory[:16], end) is None
    assert first_text(find_ndef_message(memory, end)) == "GT1:" + "B" * 200


@pytest.mark.parametrize(
    ("data_area", "error"),
    [
        (b"\x03\xff" + (MAX_NDEF_LENGTH + 1).to_bytes(2, "big"), "exceeds"),
        (b"\x00\x00\xfe\x03\x05", "terminator"),
        (b"\x03\x00\xfe", "empty"),
        (b"\x00" * 496, "no NDEF message"),
    ],
)
def test_bad_tlvs_are_refused(data_area, error):
    memory = bytes(16) + data_area
    with pytest.raises(NdefError, match=error):
        find_ndef_message(memory, 16 + 496)


def test_capability_container_is_checked():
    assert data_area_size(bytes.fromhex("e1103e00")) == 496
    for cc in ("00103e00", "e1203e00", "e1103e80"):
        with pytest.raises(NdefError):
            data_area_size(bytes.fromhex(cc))


def test_non_text_records_are_ignored():
    uri = bytes.fromhex("91 01 08 55 04") + b"a.b/cde"  # MB SR, well-known 'U'
    mime = bytes.fromhex("12 0a 03") + b"text/plainabc"  # SR, TNF media type, no MB
    text = text_message("GT1:XYZ")
    last_text = bytes([text[0] & ~0x80]) + text[1:]  # ME only
    assert first_text(uri + mime + last_text) == "GT1:XYZ"
    assert first_text(bytes([uri[0] | 0x40]) + uri[1:]) is None


def test_utf16_text_records_decode():
    payload = bytes([0x80 | 2]) + b"de" + "GT1:Ä".encode("utf-16-be")
    assert decode_text(payload) == ("de", "GT1:Ä")
    payload = bytes([0x80 | 2]) + b"de" + "GT1:Ä".encode("utf-16")  # with BOM
    assert decode_text(payload) == ("de", "GT1:Ä")


@pytest.mark.parametrize(
    "message",
    [
        bytes.fromhex("d1 01 20 54 02 65 6e"),  # payload longer than the message
        bytes.fromhex("d1 01"),  # header cut short
        bytes.fromhex("91 01 01 54 00"),  # no ME and nothing after
        bytes.fromhex("51 01 01 54 00"),  # first record without MB
        bytes.fromhex("d1 01 03 54 05 65 6e"),  # language code longer than the payload
        bytes.fromhex("d1 01 03 54 00 ff fe"),  # not UTF-8
    ],
)
def test_malformed_records_are_refused(message):
    with pytest.raises(NdefError):
        first_text(message)


# -- the reader against the simulated PN532 ----------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class RunningReader:
    """A PN532Reader running in its own thread against a simulator, collecting deliveries."""

    def __init__(self, device: str) -> None:
        self.reader = PN532Reader(device, poll_interval=0.01, command_timeout=0.15)
        self.reader.backoff_initial = 0.05
        self.reader.backoff_max = 0.2
        self.delivered: list[Presentation] = []
        self.changes: list[Health] = []
        self.reader.health.listeners.append(lambda _name, health: self.changes.append(health))
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.reader.run, args=(self.delivered.append, self.stop)
        )
        self.thread.start()
        assert wait_for(lambda: self.health is HealthState.OK), self.reader.health.get()

    @property
    def failures(self) -> list[str]:
        return [h.reason for h in self.changes if h.state is HealthState.FAILED]

    @property
    def health(self) -> HealthState:
        return self.reader.health.get().state

    def texts(self) -> list[str]:
        return [p.text for p in self.delivered]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def wait_polls(sim: SimulatedPN532, count: int) -> None:
    """Let the reader poll ``count`` more times (it answers every poll, so this is bounded)."""
    target = sim.commands.get(CMD_LIST, 0) + count
    assert sim.wait_until(lambda: sim.commands.get(CMD_LIST, 0) >= target)


@pytest.fixture(scope="module")
def issuer() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


@pytest.fixture(scope="module")
def ticket(issuer) -> str:
    return mint_ticket(Claims(cti=b"nfc-test-01", exp=2_000_000_000, product="single"), issuer)


@pytest.fixture(scope="module")
def other_ticket(issuer) -> str:
    return mint_ticket(Claims(cti=b"nfc-test-02", exp=2_000_000_000, product="single"), issuer)


@pytest.fixture
def sim(tmp_path: Path):
    with SimulatedPN532(tmp_path / "pn532") as simulator:
        yield simulator


@pytest.fixture
def running(sim):
    running = RunningReader(sim.device)
    yield running
    running.close()


def test_a_tag_is_delivered_once_while_present_and_again_after_replacing(
    sim, running, ticket, issuer
):
    before = time.monotonic()
    sim.place_tag(ticket)
    assert wait_for(lambda: len(running.delivered) == 1)
    presentation = running.delivered[0]
    assert presentation.text == ticket and presentation.source == "nfc"
    assert before <= presentation.arrived <= time.monotonic()
    assert running.reader.firmware == (0x32, 0x01, 0x06, 0x07)

    wait_polls(sim, 10)  # the tag stays in the field
    assert running.texts() == [ticket]

    sim.remove_tag()
    wait_polls(sim, 2)
    sim.place_tag(ticket)
    assert wait_for(lambda: len(running.delivered) == 2)
    wait_polls(sim, 3)
    assert running.texts() == [ticket, ticket]

    validator = Validator(
        TrustStore.from_public_keys([bytes(issuer.verify_key)]),
        MemoryRevocations(),
        None,
        Policy(),
    )
    assert validator.decide(presentation.text).reason is Reason.OK
    assert running.failures == []


def inject(sim: SimulatedPN532, fault: str) -> None:
    {
        "corrupt one answer": lambda: sim.corrupt_responses(1),
        "corrupt many answers": lambda: sim.corrupt_responses(7),
        "bad LCS": lambda: sim.bad_lcs(4),
        "bad DCS": lambda: sim.bad_dcs(4),
        "garbage": lambda: (sim.inject_garbage(), sim.inject_garbage(b"\x00\xff\x13" * 5)),
        "error frames": lambda: sim.error_frames(3),
        "dropped answers": lambda: sim.drop_responses(2),
    }[fault]()


FAULTS = [
    "corrupt one answer",
    "corrupt many answers",
    "bad LCS",
    "bad DCS",
    "garbage",
    "error frames",
    "dropped answers",
]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", [CMD_LIST, CMD_EXCHANGE], ids=["poll", "read"])
def test_line_faults_never_crash_or_present_partial_text(
    sim, running, ticket, other_ticket, fault, command
):
    sim.fault_commands = {command}
    inject(sim, fault)
    sim.place_tag(ticket)
    assert sim.wait_until(lambda: not sim.faults_pending)
    assert wait_for(lambda: len(running.delivered) >= 1)
    wait_polls(sim, 5)
    assert running.texts() == [ticket]  # whole, and once, despite the faults
    assert running.failures == []

    sim.remove_tag()
    wait_polls(sim, 2)
    sim.place_tag(other_ticket, uid=OTHER_UID)
    assert wait_for(lambda: len(running.delivered) == 2)
    assert running.texts() == [ticket, other_ticket]


def test_one_corrupt_answer_is_asked_for_again_with_a_nack(sim, running, ticket):
    pages_needed = -(-(16 + len(ndef_tlv(text_message(ticket)))) // 16)
    sim.fault_commands = {CMD_EXCHANGE}
    sim.corrupt_responses(1)
    sim.place_tag(ticket)
    assert wait_for(lambda: len(running.delivered) == 1)
    assert sim.nacks == 1
    assert sim.commands[CMD_EXCHANGE] == pages_needed  # no READ was repeated
    assert running.texts() == [ticket]


def test_the_simulator_answers_only_after_the_wake_up(sim):
    get_firmware = bytes.fromhex("0000ff02fed4022a00")
    with serial.serial_for_url(sim.device, timeout=0.2) as port:
        port.write(get_firmware)
        assert port.read(6) == b""  # asleep: not even an ACK
        port.write(b"\x55\x55" + bytes(14) + get_firmware)
        assert port.read(6) == ACK_FRAME
        assert port.read(13) == bytes.fromhex("0000ff06fad50332010607e800")
        port.write(NACK_FRAME)  # "send that again"
        assert port.read(13) == bytes.fromhex("0000ff06fad50332010607e800")
        port.write(build_frame(b"\x7e"))  # not a PN532 command
        assert port.read(14) == ACK_FRAME + ERROR_FRAME


def test_a_tag_pulled_away_mid_read_presents_nothing(sim, running, ticket, other_ticket):
    sim.remove_tag_after_reads(3)
    sim.place_tag(ticket)
    assert sim.wait_until(lambda: not sim.tag_present)
    assert sim.page_reads == 3
    wait_polls(sim, 5)
    assert running.delivered == []

    sim.place_tag(other_ticket, uid=OTHER_UID)
    assert wait_for(lambda: len(running.delivered) == 1)
    assert running.texts() == [other_ticket]


def test_pulled_away_and_put_back_is_read_once(sim, running, ticket):
    sim.remove_tag_after_reads(5)
    sim.place_tag(ticket)
    assert sim.wait_until(lambda: not sim.tag_present)
    sim.place_tag(ticket)
    assert wait_for(lambda: len(running.delivered) == 1)
    wait_polls(sim, 5)
    assert running.texts() == [ticket]


@pytest.mark.parametrize(
    "data_area",
    [
        b"\x03\xff\x05\x00" + bytes(60),  # longer than MAX_NDEF_LENGTH
        b"\xfe",  # no NDEF message at all
        ndef_tlv(bytes.fromhex("d1 01 03 55 04 61 62")) + b"\xfe",  # a URI record only
        ndef_tlv(bytes.fromhex("d1 01 20 54 02 65 6e")) + b"\xfe",  # a truncated record
    ],
    ids=["overlong", "empty", "uri", "truncated"],
)
def test_unreadable_tags_warn_once_and_present_nothing(sim, running, ticket, data_area, caplog):
    caplog.set_level(logging.WARNING, logger="drivers.nfc.pn532")
    sim.place_tag(data_area=data_area)
    wait_polls(sim, 10)
    assert running.delivered == []
    warnings = [r for r in caplog.records if DEFAULT_UID.hex() in r.getMessage()]
    assert len(warnings) == 1  # not once per poll

    sim.place_tag(ticket, uid=OTHER_UID)
    assert wait_for(lambda: len(running.delivered) == 1)
    assert running.texts() == [ticket]


def test_a_silent_pn532_fails_health_and_the_reader_reconnects(sim, running, ticket):
    sim.drop_responses(3)  # three unanswered commands in a row: the chip counts as gone
    assert wait_for(lambda: running.failures)
    assert "stopped answering (3 commands without a reply)" in running.failures[0]
    assert wait_for(lambda: running.health is HealthState.OK)
    sim.place_tag(ticket)
    assert wait_for(lambda: len(running.delivered) == 1)


def test_a_vanished_simulator_fails_health_and_a_new_one_is_picked_up(
    tmp_path, ticket, other_ticket
):
    path = tmp_path / "pn532"
    first = SimulatedPN532(path)
    running = RunningReader(first.device)
    try:
        first.place_tag(ticket)
        assert wait_for(lambda: running.texts() == [ticket])
        first.close()
        assert wait_for(lambda: running.health is HealthState.FAILED)
        assert not path.exists()
        with SimulatedPN532(path) as second:
            assert wait_for(lambda: running.health is HealthState.OK)
            second.place_tag(other_ticket, uid=OTHER_UID)
            assert wait_for(lambda: len(running.delivered) == 2)
            assert running.texts() == [ticket, other_ticket]
    finally:
        running.close()
        first.close()


def test_open_reports_a_missing_or_silent_device(tmp_path):
    reader = PN532Reader(str(tmp_path / "nothing"), command_timeout=0.05)
    with pytest.raises(DriverInitError, match="cannot open"):
        reader._open()
    reader.close()
    with SimulatedPN532() as sim:
        sim.drop_responses(10)
        reader = PN532Reader(sim.device, command_timeout=0.05)
        with pytest.raises(DriverInitError, match="no PN532 answering"):
            reader._open()
        reader.close()
        reader.close()  # idempotent
