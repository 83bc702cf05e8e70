"""gatectl selftest against real fakes: a generated video with real QR codes, pty pairs for the
serial scanner and a simulated PN532, gpiozero's MockFactory, and a real collector.

Every test parses the command's --json output. Most run gatectl as a subprocess (stdin is then
a pipe, not a terminal: nobody can confirm anything); the GPIO tests that look at the pins
themselves run it in this process with CliRunner, gpiozero's own default factory set to a
MockFactory.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from collector_fixtures import free_port, running_collector
from conftest import ProvisionedGate, write_gate_config
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from helpers_cli import BIN

from drivers.camera.fake import generate_video
from drivers.camera.metrics import BLURRED, TOO_BRIGHT, TOO_DARK
from drivers.nfc.sim import SimulatedPN532
from gate.cli import cli
from gate.runlock import RunLock
from gate.ticket import Claims, mint_ticket
from keys.keyfile import KeyPair
from sync.identity import provision

RELAY, GREEN, RED, BUZZER, EMERGENCY = 17, 22, 23, 24, 25
GPIO = (
    f'[gpio]\npin_factory = "{{factory}}"\nrelay_pin = {RELAY}\ngreen_pin = {GREEN}\n'
    f"red_pin = {RED}\nbuzzer_pin = {BUZZER}\n"
)


def ticket_text() -> str:
    issuer = KeyPair.generate()
    claims = Claims(cti=os.urandom(16), product="single", exp=int(time.time()) + 86400)
    return mint_ticket(claims, issuer.signing_key)


TICKET = ticket_text()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("videos")
    made = {"ticket": work / "ticket.avi", "empty": work / "empty.avi"}
    generate_video(made["ticket"], [(TICKET, 3.0, {"noise": 3.0})], fps=10)
    generate_video(made["empty"], [(None, 2.0, {"noise": 3.0})], fps=10)
    corrupt = work / "corrupt.avi"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + os.urandom(20000))
    made["corrupt"] = corrupt
    return made


def configure(gate: ProvisionedGate, sections: str = "", require_ntp: bool = False) -> None:
    """Rewrite the gate's configuration: [gate] as provisioned, then ``sections``."""
    keys = "" if require_ntp else "require_ntp = false\n"
    write_gate_config(gate.config, gate.root, extra=keys + sections)


def selftest(gate: ProvisionedGate, *args: str, stdin=None) -> tuple[int, dict, str]:
    """Run gatectl selftest --json as a subprocess: exit code, report, stderr."""
    result = subprocess.run(
        [str(BIN / "gatectl"), "--config", str(gate.config), "selftest", "--json", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def in_process(gate: ProvisionedGate, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["--config", str(gate.config), "selftest", "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def checks(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


# -- camera ----------------------------------------------------------------------------------


def test_camera_measures_the_picture_and_decodes_a_ticket_held_in_view(gate, videos):
    configure(gate, f'[camera]\nsource = "{videos["ticket"]}"\n')
    code, report, stderr = selftest(gate, "--only", "camera", "--seconds", "2")
    camera = checks(report)["camera"]
    assert code == 0, camera
    assert camera["status"] == "pass"
    assert camera["text"] == TICKET
    assert camera["gt1"] is True
    assert "a GT1 ticket" in camera["detail"]
    assert 6 <= camera["fps"] <= 14  # the file plays at its 10 fps, as a camera would
    assert camera["sharpness"] > BLURRED
    assert TOO_DARK < camera["brightness"] < TOO_BRIGHT
    assert camera["exposure"] == "ok"
    assert "hold a QR code" in stderr  # the technician is told what to do
    assert report["summary"] == {"pass": 1, "fail": 0, "skipped": 0, "refused": 0}


def test_camera_without_a_code_in_view_fails(gate, videos):
    configure(gate, f'[camera]\nsource = "{videos["empty"]}"\n')
    code, report, _ = selftest(gate, "--only", "camera", "--seconds", "1")
    camera = checks(report)["camera"]
    assert code == 1
    assert camera["status"] == "fail"
    assert "no QR code seen" in camera["detail"]
    assert camera["text"] is None
    assert camera["frames"] > 0


@pytest.mark.parametrize("which", ["missing", "corrupt"])
def test_a_missing_or_corrupt_video_fails_the_camera_check(gate, videos, tmp_path, which):
    source = tmp_path / "nothing.avi" if which == "missing" else videos["corrupt"]
    configure(gate, f'[camera]\nsource = "{source}"\n')
    code, report, _ = selftest(gate, "--only", "camera", "--seconds", "1")
    camera = checks(report)["camera"]
    assert code == 1
    assert camera["status"] == "fail"
    assert str(source) in camera["detail"]
    assert "[camera] source" in camera["detail"]


# -- serial ----------------------------------------------------------------------------------


@contextlib.contextmanager
def scanner_pty(data: bytes | None) -> Iterator[str]:
    """A pty pair whose master side sends ``data`` every 0.1 s; yields the slave's path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    stop = threading.Event()

    def scan() -> None:
        while data and not stop.wait(0.1):
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)


def test_serial_counts_the_bytes_and_lines_a_scanner_sends(gate):
    with scanner_pty(b"GT1:SCANNED\r") as path:
        configure(gate, f'[serial]\nurl = "{path}"\nterminator = "CR"\n')
        code, report, stderr = selftest(gate, "--only", "serial", "--seconds", "3")
    serial = checks(report)["serial"]
    assert code == 0, serial
    assert serial["status"] == "pass"
    assert serial["bytes"] >= len(b"GT1:SCANNED\r")
    assert serial["lines"] == 1  # it stops listening at the first complete line
    assert serial["text"] == "GT1:SCANNED"
    assert "scan a code" in stderr


def test_serial_with_no_bytes_passes_with_a_note(gate):
    with scanner_pty(None) as path:
        configure(gate, f'[serial]\nurl = "{path}"\n')
        code, report, _ = selftest(gate, "--only", "serial", "--seconds", "0.5")
    serial = checks(report)["serial"]
    assert code == 0
    assert serial["status"] == "pass"
    assert serial["bytes"] == 0
    assert "no bytes seen: scan a code during the test" in serial["detail"]


def test_serial_bytes_without_the_configured_terminator_fail(gate):
    with scanner_pty(b"GT1:SCANNED\n") as path:
        configure(gate, f'[serial]\nurl = "{path}"\nterminator = "CR"\n')
        code, report, _ = selftest(gate, "--only", "serial", "--seconds", "0.8")
    serial = checks(report)["serial"]
    assert code == 1
    assert serial["status"] == "fail"
    assert serial["bytes"] > 0 and serial["lines"] == 0
    assert "terminator" in serial["detail"]


def test_a_missing_serial_port_fails(gate, tmp_path):
    configure(gate, f'[serial]\nurl = "{tmp_path / "ttyACM9"}"\n')
    code, report, _ = selftest(gate, "--only", "serial", "--seconds", "0.5")
    serial = checks(report)["serial"]
    assert code == 1
    assert serial["status"] == "fail"
    assert "no such device (is the scanner plugged in?)" in serial["detail"]


# -- NFC -------------------------------------------------------------------------------------


def test_nfc_reports_the_pn532_firmware(gate):
    with SimulatedPN532() as pn532:
        configure(gate, f'[nfc]\nurl = "{pn532.device}"\n')
        code, report, _ = selftest(gate, "--only", "nfc")
        assert pn532.commands.get(0x02) == 1  # GetFirmwareVersion, asked once
    nfc = checks(report)["nfc"]
    assert code == 0, nfc
    assert nfc["status"] == "pass"
    assert nfc["firmware"] == "1.6"
    assert nfc["ic"] == 0x32


@contextlib.contextmanager
def garbage_pn532() -> Iterator[str]:
    """A pty whose other side answers every command with bytes that are no PN532 frame."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(master, 4096)
                    os.write(master, b"\x13\x37\xde\xad\xbe\xef\x00\xff" * 4)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)


def test_a_pn532_answering_garbage_or_missing_fails(gate, tmp_path):
    with garbage_pn532() as path:
        configure(gate, f'[nfc]\nurl = "{path}"\n')
        code, report, _ = selftest(gate, "--only", "nfc")
    nfc = checks(report)["nfc"]
    assert code == 1
    assert nfc["status"] == "fail"
    assert "no PN532 answering" in nfc["detail"]
    assert "[nfc] url" in nfc["detail"]

    configure(gate, f'[nfc]\nurl = "{tmp_path / "ttyS9"}"\n')
    code, report, _ = selftest(gate, "--only", "nfc")
    assert code == 1
    assert checks(report)["nfc"]["status"] == "fail"
    assert "cannot open" in checks(report)["nfc"]["detail"]


# -- relay, lamps, buzzer --------------------------------------------------------------------


@pytest.fixture
def pins(monkeypatch) -> Iterator[MockFactory]:
    """gpiozero's default pin factory, made a MockFactory for this test."""
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    yield factory
    factory.reset()


def rises(factory: MockFactory, pin: int) -> int:
    states = [entry.state for entry in factory.pin(pin).states]
    return sum(1 for before, after in itertools.pairwise(states) if after and not before)


def test_with_yes_the_relay_opens_and_ends_locked_and_lamps_and_buzzer_pulse(gate, pins):
    configure(gate, GPIO.format(factory="default"))
    outputs = ("--only", "relay", "--only", "leds", "--only", "buzzer")
    code, report = in_process(gate, *outputs, "--yes")
    assert code == 0, report
    relay, leds, buzzer = (checks(report)[name] for name in ("relay", "leds", "buzzer"))
    assert relay["status"] == leds["status"] == buzzer["status"] == "pass"
    assert relay["confirmed"] is False and "not confirmed" in relay["detail"]
    assert relay["levels"] == ["low", "high", "low"]
    assert relay["locked_after"] is True
    # The pins themselves: the relay went high once and ended low (locked).
    assert rises(pins, RELAY) == 1
    assert pins.pin(RELAY).state is False
    for pin in (GREEN, RED, BUZZER):
        assert rises(pins, pin) >= 1, pin
        assert pins.pin(pin).state is False, pin


def test_without_a_terminal_or_yes_the_outputs_are_skipped_and_untouched(gate, pins):
    configure(gate, GPIO.format(factory="default"))
    code, report = in_process(gate, "--only", "relay", "--only", "leds", "--only", "buzzer")
    assert code == 0
    for name in ("relay", "leds", "buzzer"):
        assert checks(report)[name]["status"] == "skipped"
        assert "needs confirmation" in checks(report)[name]["detail"]
    assert all(rises(pins, pin) == 0 for pin in (RELAY, GREEN, RED, BUZZER))


def test_an_active_emergency_input_fails_the_relay_and_keeps_it_open(gate, pins):
    # Active-low with a pull-down: the idle mock pin reads as an open alarm contact.
    configure(gate, GPIO.format(factory="default") + f"emergency_pin = {EMERGENCY}\n")
    code, report = in_process(gate, "--only", "relay", "--yes")
    relay = checks(report)["relay"]
    assert code == 1
    assert relay["status"] == "fail"
    assert "emergency input" in relay["detail"]
    assert pins.pin(RELAY).state is True  # fire egress: the selftest does not lock it


def test_the_mock_pin_factory_from_the_configuration(gate):
    configure(gate, GPIO.format(factory="mock") + 'relay_mode = "pulse"\npulse_seconds = 0.2\n')
    code, report, _ = selftest(gate, "--only", "relay", "--yes")
    relay = checks(report)["relay"]
    assert code == 0, relay
    assert relay["mode"] == "pulse"
    assert relay["levels"] == ["low", "high", "low"]
    assert relay["locked_after"] is True


def test_interactively_a_no_fails_the_check(gate):
    configure(gate, GPIO.format(factory="mock"))
    master, slave = os.openpty()
    try:
        os.write(master, b"n\ny\ny\n")  # relay: no; lamps: yes; buzzer: yes
        code, report, stderr = selftest(gate, "--skip", "clock", stdin=slave)
    finally:
        os.close(master)
        os.close(slave)
    found = checks(report)
    assert code == 1
    assert "Did the relay click" in stderr
    assert found["relay"]["status"] == "fail" and found["relay"]["confirmed"] is False
    assert "check the relay's supply and wiring" in found["relay"]["detail"]
    assert found["leds"]["status"] == "pass" and found["leds"]["confirmed"] is True
    assert found["buzzer"]["status"] == "pass"
    assert found["database"]["status"] == "pass"
    assert found["camera"]["status"] == "skipped"  # not configured


# -- database, clock -------------------------------------------------------------------------


def test_the_database_check_passes_on_a_sound_database(gate):
    configure(gate)
    code, report, _ = selftest(gate, "--only", "database")
    database = checks(report)["database"]
    assert code == 0
    assert database["status"] == "pass"
    assert "integrity ok" in database["detail"]


@pytest.mark.parametrize("damage", ["pages", "garbage", "missing"])
def test_a_damaged_or_missing_database_fails(gate, damage):
    configure(gate)
    path = gate.dir / "state" / "gate.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if damage == "pages":
        data = bytearray(path.read_bytes())
        data[4096 + 8 : 4096 + 1024] = os.urandom(1016)  # the second page's cells
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(os.urandom(8192))
    else:
        path.unlink()
    code, report, _ = selftest(gate, "--only", "database")
    database = checks(report)["database"]
    assert code == 1
    assert database["status"] == "fail"
    assert str(path) in database["detail"]
    assert "backup" in database["detail"] or "state_dir" in database["detail"]


def test_the_clock_fails_when_far_off_the_collector(gate):
    configure(gate)
    code, report, _ = selftest(gate, "--only", "clock")
    assert code == 0 and checks(report)["clock"]["status"] == "pass"
    (gate.dir / "state" / "sync.json").write_text(json.dumps({"clock_offset": 125.0}))
    code, report, _ = selftest(gate, "--only", "clock")
    clock = checks(report)["clock"]
    assert code == 1
    assert clock["status"] == "fail"
    assert clock["collector_offset"] == 125.0
    assert "off the collector's clock" in clock["detail"]


# -- upstream --------------------------------------------------------------------------------


def test_upstream_enrolled_refused_and_unreachable(gate, tmp_path):
    configure(gate, f'[sync]\ncollector_url = "http://127.0.0.1:{free_port()}"\n')
    code, report, _ = selftest(gate, "--only", "upstream")
    upstream = checks(report)["upstream"]
    assert code == 1
    assert upstream["reason"] == "not_provisioned"
    assert "gatectl provision" in upstream["detail"]

    device, _ = provision(gate.dir / "state")
    code, report, _ = selftest(gate, "--only", "upstream")
    upstream = checks(report)["upstream"]
    assert code == 1
    assert upstream["reason"] == "unreachable"
    assert upstream["detail"].startswith("unreachable:")

    with running_collector(tmp_path, mode="thread") as collector:
        configure(gate, f'[sync]\ncollector_url = "{collector.url}"\n')
        code, report, _ = selftest(gate, "--only", "upstream")
        upstream = checks(report)["upstream"]
        assert code == 1
        assert upstream["reason"] == "refused"
        assert f"gate-office enrol test-gate {device.public_key.hex()}" in upstream["detail"]

        collector.enrol("test-gate", device.public_key)
        code, report, _ = selftest(gate, "--only", "upstream")
        upstream = checks(report)["upstream"]
        assert code == 0, upstream
        assert upstream["status"] == "pass"
        assert upstream["http_status"] == 204

        collector.enrol("test-gate", KeyPair.generate().public_key, replace=True)
        code, report, _ = selftest(gate, "--only", "upstream")
        upstream = checks(report)["upstream"]
        assert code == 1 and upstream["reason"] == "refused"
        assert "--replace" in upstream["detail"]


# -- gated running ---------------------------------------------------------------------------


def test_while_gated_runs_device_checks_are_refused_and_the_rest_run(gate, videos):
    configure(
        gate,
        f'[camera]\nsource = "{videos["ticket"]}"\n[serial]\nurl = "/dev/ttyACM0"\n'
        + GPIO.format(factory="mock"),
    )
    state = gate.dir / "state"
    (state / "health.json").write_text(
        json.dumps(
            {
                "gate": "degraded",
                "devices": {
                    "camera": {"state": "ok", "reason": ""},
                    "serial": {"state": "failed", "reason": "serial: cannot open /dev/ttyACM0"},
                },
            }
        )
    )
    with RunLock(state):
        code, report, _ = selftest(gate, "--yes")
        found = checks(report)
        assert code == 4
        assert report["gated_pid"] == os.getpid()
        for name in ("camera", "serial", "relay", "leds", "buzzer"):
            assert found[name]["status"] == "refused", name
            assert f"gated (pid {os.getpid()})" in found[name]["detail"]
            assert "systemctl stop gated" in found[name]["detail"]
        using = f"gated (pid {os.getpid()}) is using the camera"
        assert found["camera"]["detail"].startswith(using)
        assert found["serial"]["health"]["state"] == "failed"
        assert "cannot open /dev/ttyACM0" in found["serial"]["detail"]
        assert found["nfc"]["status"] == "skipped"
        assert found["database"]["status"] == "pass"
        assert found["clock"]["status"] == "pass"

        # A failure among the checks that still run wins over the refusal.
        (state / "sync.json").write_text(json.dumps({"clock_offset": -400}))
        code, report, _ = selftest(gate)
        assert code == 1
        assert checks(report)["clock"]["status"] == "fail"


def test_human_output_has_one_aligned_line_a_check_and_a_summary(gate, tmp_path):
    configure(gate, f'[serial]\nurl = "{tmp_path / "missing"}"\n')
    result = subprocess.run(
        [str(BIN / "gatectl"), "--config", str(gate.config), "selftest", "--seconds", "0.5"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert [line[:19] for line in lines[:-1]] == [
        "camera    SKIPPED  ",
        "serial    FAIL     ",
        "nfc       SKIPPED  ",
        "relay     SKIPPED  ",
        "leds      SKIPPED  ",
        "buzzer    SKIPPED  ",
        "database  PASS     ",
        "clock     PASS     ",
        "upstream  SKIPPED  ",
    ]
    assert lines[-1] == "selftest FAILED: 9 check(s), 2 passed, 1 failed, 6 skipped"
    # The same report as JSON, for scripts.
    _, report, _ = selftest(gate, "--seconds", "0.5")
    assert [check["status"] for check in report["checks"]] == [
        line.split()[1].lower() for line in lines[:-1]
    ]
    assert report["exit_code"] == 1


def test_an_unknown_check_name_is_a_usage_error(gate):
    result = subprocess.run(
        [str(BIN / "gatectl"), "--config", str(gate.config), "selftest", "--only", "kettle"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "kettle" in result.stderr
