"""``gatectl selftest``: a technician's check of every part of a gate, one result a check.

Checks, in order: ``camera``, ``serial``, ``nfc`` (the readers), ``relay``, ``leds``,
``buzzer`` (the turnstile's outputs), ``database``, ``clock`` and ``upstream``. Each gives a
:class:`CheckResult`: a status (``pass``, ``fail``, ``skipped``, ``refused``), one line for
the technician that says what to do on a failure, and figures.

- A part the configuration does not have is ``skipped``.
- While gated runs on the same state directory (:func:`gate.runlock.running_pid`) it holds
  the devices: their checks are ``refused`` with what gated last reported about them
  (``health.json``), and only ``database``, ``clock`` and ``upstream`` run.
- The outputs need a person to see or hear them. Interactively, each is pulsed and the
  person is asked; with ``unconfirmed`` (``--yes``) they are pulsed and pass when the pins
  followed, marked ``"confirmed": false``; with neither (a script) they are ``skipped`` and
  not touched, so a selftest never waits for an answer nobody can give.

Devices are reached through the drivers, loaded by name (``gate/`` imports no concrete
driver module).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.registry import load
from gate.clock import MAX_OFFSET_SECONDS, clock_state
from gate.config import GateConfig
from gate.errors import GateError, KeyFileError
from gate.runlock import running_pid
from gate.state import HEALTH_FILE, SYNC_FILE
from gate.store import DB_FILE_NAME
from gate.ticket import PREFIX, parse_ticket

log = logging.getLogger(__name__)

CHECKS = ("camera", "serial", "nfc", "relay", "leds", "buzzer", "database", "clock", "upstream")
PASS, FAIL, SKIPPED, REFUSED = "pass", "fail", "skipped", "refused"
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 4

#: device checks: the device's name in gated's health.json, and what gated holds
DEVICES = {
    "camera": ("camera", "the camera"),
    "serial": ("serial", "the serial scanner"),
    "nfc": ("nfc", "the NFC reader"),
    "relay": ("gpio", "the turnstile's GPIO pins"),
    "leds": ("gpio", "the turnstile's GPIO pins"),
    "buzzer": ("gpio", "the turnstile's GPIO pins"),
}
NEEDS_CONFIRMATION = "needs confirmation: run interactively, or with --yes"
#: how long the relay is held open, and each lamp lit, in a test
RELAY_SECONDS = 0.5
LAMP_SECONDS = 0.6
#: a version no trust bundle reaches: the collector answers 204 after checking the signature
NEWEST_VERSION = (1 << 63) - 1
#: a selftest waits less for the collector than the sync agent does
UPSTREAM_TIMEOUT = (3.0, 5.0)


@dataclass
class CheckResult:
    """One check's outcome; ``figures`` are merged into its JSON object."""

    name: str
    status: str
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, **self.figures}


@dataclass
class Options:
    """How the checks run.

    ``seconds``: the window in which the camera and the scanner wait for a code.
    ``confirm``: asks a person a yes/no question (may raise KeyboardInterrupt); None when
    nobody can be asked. ``unconfirmed``: pulse the outputs without asking (``--yes``).
    ``say``: instructions for the technician. ``pin_factory``: a gpiozero pin factory to use
    instead of the one ``[gpio] pin_factory`` names.
    """

    seconds: float = 5.0
    confirm: Callable[[str], bool] | None = None
    unconfirmed: bool = False
    say: Callable[[str], None] = lambda message: None
    pin_factory: Any = None


@dataclass
class Report:
    gate_id: str
    gated_pid: int | None
    results: list[CheckResult]

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def exit_code(self) -> int:
        """1 if any check failed, else 4 if a device check was refused, else 0."""
        if self.count(FAIL):
            return EXIT_FAILED
        return EXIT_REFUSED if self.count(REFUSED) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id,
            "gated_pid": self.gated_pid,
            "checks": [result.to_json() for result in self.results],
            "summary": {status: self.count(status) for status in (PASS, FAIL, SKIPPED, REFUSED)},
            "exit_code": self.exit_code,
        }


def failed(name: str, problem: str, fix: str, figures: dict[str, Any] | None = None):
    """A failed check: what is wrong (shortened to one line if need be), then what to do."""
    return CheckResult(name, FAIL, f"{escaped(problem, 200)}; {fix}", figures or {})


def escaped(text: str, most: int = 80) -> str:
    """``text`` on one line, control characters escaped, at most ``most`` characters."""
    shown = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
    return shown if len(shown) <= most else shown[: most - 3] + "..."


# The runner ----------------------------------------------------------------------------------


def run_selftest(
    config: GateConfig, names: list[str] | tuple[str, ...] = CHECKS, options: Options | None = None
) -> Report:
    """Run the checks ``names`` (in :data:`CHECKS` order) and return the report."""
    options = options or Options()
    pid = running_pid(config.state_dir)
    results = [_run_check(name, config, options, pid) for name in CHECKS if name in names]
    return Report(config.gate_id, pid, results)


def _run_check(name: str, config: GateConfig, options: Options, pid: int | None) -> CheckResult:
    missing = _missing_configuration(name, config)
    if missing:
        return CheckResult(name, SKIPPED, f"not configured: {missing}")
    if name in DEVICES and pid is not None:
        return _refused(name, config, pid)
    try:
        return CHECK_FUNCTIONS[name](config, options)
    except GateError as err:
        return CheckResult(name, FAIL, escaped(str(err), 300))
    except Exception as err:  # one broken check must not hide the others' results
        log.debug("selftest %s failed unexpectedly", name, exc_info=True)
        return CheckResult(
            name, FAIL, escaped(f"unexpected error: {type(err).__name__}: {err}", 300)
        )


def _missing_configuration(name: str, config: GateConfig) -> str | None:
    gpio = config.gpio
    if name in ("camera", "serial", "nfc", "upstream"):
        section = "sync" if name == "upstream" else name
        if getattr(config, section) is None:
            return f"no [{section}] section (or enabled = false)"
    elif name in ("relay", "leds", "buzzer") and gpio is None:
        return "no [gpio] section"
    elif name == "leds" and gpio.green_pin is None and gpio.red_pin is None:
        return "no green_pin or red_pin in [gpio]"
    elif name == "buzzer" and gpio.buzzer_pin is None:
        return "no buzzer_pin in [gpio]"
    return None


def gated_device_health(state_dir: Path, device: str) -> dict[str, Any] | None:
    """What gated last reported about ``device`` in ``health.json`` ({state, reason}), if
    anything."""
    try:
        health = json.loads((Path(state_dir) / HEALTH_FILE).read_text())
    except (OSError, ValueError):
        return None
    devices = health.get("devices") if isinstance(health, dict) else None
    reported = devices.get(device) if isinstance(devices, dict) else None
    return reported if isinstance(reported, dict) else None


def busy_detail(pid: int, what: str, reported: dict[str, Any] | None, doing: str = "") -> str:
    """Why a device is left alone while gated runs, and what to do, on one line."""
    who = f"gated (pid {pid})" if pid else "gated"
    text = f"{who} is using {what}{doing}; stop it first: systemctl stop gated"
    if reported and reported.get("state"):
        reason = f": {reported['reason']}" if reported.get("reason") else ""
        text += f" (gated reports it {reported['state']}{reason})"
    return escaped(text, 300)


def _refused(name: str, config: GateConfig, pid: int) -> CheckResult:
    device, what = DEVICES[name]
    reported = gated_device_health(config.state_dir, device)
    return CheckResult(
        name, REFUSED, busy_detail(pid, what, reported), {"gated_pid": pid, "health": reported}
    )


# The readers ---------------------------------------------------------------------------------


def check_camera(config: GateConfig, options: Options) -> CheckResult:
    """Frame rate, sharpness, brightness, and a QR code (a test card) decoded in the window."""
    camera = config.camera
    assert camera is not None
    options.say(
        f"camera: hold a QR code (a printed ticket) in front of the camera now "
        f"({options.seconds:g} s)"
    )
    try:
        sample = load("drivers.camera.metrics:sample_camera")(
            camera.source,
            seconds=options.seconds,
            decoder=camera.decoder,
            width=camera.width,
            height=camera.height,
            fps=camera.fps,
        )
    except GateError as err:
        return failed(
            "camera",
            str(err),
            "check the camera's cable and [camera] source",
            {"source": str(camera.source)},
        )
    metrics = sample.metrics
    figures: dict[str, Any] = {
        "source": str(camera.source),
        "frames": sample.frames,
        "fps": round(sample.fps, 1),
        "sharpness": metrics.sharpness,
        "brightness": metrics.brightness,
        "exposure": metrics.exposure,
        "text": sample.codes[0] if sample.codes else None,
        "gt1": None,
    }
    notes = _picture_notes(metrics)
    seen = (
        f"{sample.fps:.1f} fps, sharpness {metrics.sharpness:g}, brightness {metrics.brightness:g}"
    )
    if not sample.codes:
        return CheckResult(
            "camera",
            FAIL,
            f"no QR code seen in {options.seconds:g} s ({seen}{notes}): hold a printed ticket "
            "15 to 30 cm in front of the camera during the test",
            figures,
        )
    text = sample.codes[0]
    kind, figures["gt1"] = _code_kind(text)
    return CheckResult(
        "camera", PASS, f"decoded {kind} '{escaped(text, 60)}' ({seen}{notes})", figures
    )


def _picture_notes(metrics) -> str:
    notes = []
    if metrics.exposure == "too dark":
        notes.append("too dark: add light, or check the lens cover and exposure")
    elif metrics.exposure == "too bright":
        notes.append("too bright: shade the camera from direct light")
    if metrics.blurred:
        notes.append("blurred: clean the lens or refocus")
    return "".join(f"; {note}" for note in notes)


def _code_kind(text: str) -> tuple[str, bool]:
    """How to describe a decoded text, and whether it is a well-formed GT1 ticket."""
    if not text.startswith(PREFIX):
        return "a QR code that is not a GT1 ticket", False
    try:
        ticket = parse_ticket(text)
    except GateError as err:
        return f"a malformed GT1 ticket ({err})", False
    return f"a GT1 ticket (kid {ticket.kid.hex()})", True


def check_serial(config: GateConfig, options: Options) -> CheckResult:
    """The port opens; bytes and complete lines seen while the technician scans a code."""
    serial = config.serial
    assert serial is not None
    options.say(f"serial: scan a code with the scanner now ({options.seconds:g} s)")
    try:
        heard = load("drivers.serial.probe:listen")(
            serial.url,
            baudrate=serial.baudrate,
            terminator=serial.terminator,
            max_line=serial.max_line,
            seconds=options.seconds,
        )
    except GateError as err:
        return CheckResult(
            "serial",
            FAIL,
            f"{err}; check the cable and [serial] url",
            {"url": serial.url},
        )
    first = heard.lines[0].decode("ascii", "backslashreplace") if heard.lines else None
    figures = {"url": serial.url, "bytes": heard.bytes, "lines": len(heard.lines), "text": first}
    if first is not None:
        return CheckResult(
            "serial",
            PASS,
            f"opened {serial.url}; {heard.bytes} byte(s), first line '{escaped(first, 60)}'",
            figures,
        )
    if heard.bytes:
        return CheckResult(
            "serial",
            FAIL,
            f"opened {serial.url}; {heard.bytes} byte(s) but no line ending in "
            f"{serial.terminator}: set the scanner to send {serial.terminator} after each code, "
            "or [serial] terminator to what it sends",
            figures,
        )
    return CheckResult(
        "serial",
        PASS,
        f"opened {serial.url}; no bytes seen: scan a code during the test to check the scanner",
        figures,
    )


def check_nfc(config: GateConfig, options: Options) -> CheckResult:
    """The PN532 answers GetFirmwareVersion through the gate's own reader start-up."""
    nfc = config.nfc
    assert nfc is not None
    try:
        firmware = load("drivers.nfc.probe:firmware_version")(nfc.url, baudrate=nfc.baudrate)
    except GateError as err:
        return failed(
            "nfc",
            str(err),
            "check the wiring (TX to RX), the PN532's HSU/UART mode switches and [nfc] url "
            "and baudrate",
            {"url": nfc.url},
        )
    ic, version, revision, support = firmware[:4]
    return CheckResult(
        "nfc",
        PASS,
        f"PN532 firmware {version}.{revision} on {nfc.url}",
        {"url": nfc.url, "ic": ic, "firmware": f"{version}.{revision}", "support": support},
    )


# The turnstile -------------------------------------------------------------------------------


def _turnstile(config: GateConfig, options: Options, **pins: Any):
    """A turnstile with the relay, the emergency input (so a fire alarm keeps the gate open
    during a test as at any other time) and ``pins``."""
    from gate.daemon import build_turnstile

    gpio = config.gpio
    assert gpio is not None
    if options.pin_factory is None and gpio.pin_factory != "default":
        options.pin_factory = load("drivers.gpio.pins:make_pin_factory")(gpio.pin_factory)
    parts = {"green_pin": None, "red_pin": None, "buzzer_pin": None, "passage_pin": None}
    return build_turnstile(
        config,
        options.pin_factory,
        accept_beep=False,
        feedback_seconds=LAMP_SECONDS,
        **{**parts, **pins},
    )


def _confirmed(
    name: str, options: Options, question: str, done: str, fix: str, figures: dict
) -> CheckResult:
    """The result of a pulse once a person said whether they saw or heard it."""
    if options.confirm is None:
        figures["confirmed"] = False
        return CheckResult(name, PASS, f"{done}; not confirmed by a person (--yes)", figures)
    figures["confirmed"] = answer = bool(options.confirm(question))
    if answer:
        return CheckResult(name, PASS, f"{done}; confirmed", figures)
    return CheckResult(name, FAIL, f"{done}, but not seen or heard: {fix}", figures)


def _can_pulse(options: Options) -> bool:
    return options.confirm is not None or options.unconfirmed


def check_relay(config: GateConfig, options: Options) -> CheckResult:
    """Open the relay for a moment and lock it again; the pin's level is read back."""
    gpio = config.gpio
    assert gpio is not None
    if not _can_pulse(options):
        return CheckResult("relay", SKIPPED, NEEDS_CONFIRMATION)
    hold = gpio.pulse_seconds if gpio.relay_mode == "pulse" else RELAY_SECONDS
    options.say(f"relay: opening the lock relay (pin {gpio.relay_pin}) for {hold:g} s")
    with _turnstile(config, options) as turnstile:
        if turnstile.emergency_active:
            return CheckResult(
                "relay",
                FAIL,
                f"the emergency input (pin {gpio.emergency_pin}) is active: the relay is held "
                "open for fire egress; clear the alarm contact or check its wiring, then test "
                "again",
                {"relay_pin": gpio.relay_pin, "emergency": True},
            )
        before = turnstile.relay_state()
        turnstile.unlock()
        time.sleep(min(0.1, hold / 2))
        during = turnstile.relay_state()
        time.sleep(max(hold - 0.1, 0.05))
        turnstile.lock()
        after = turnstile.relay_state()
    figures: dict[str, Any] = {
        "relay_pin": gpio.relay_pin,
        "mode": gpio.relay_mode,
        "levels": [before.level, during.level, after.level],
        "locked_after": after.state == "locked" and not after.energised,
    }
    if before.energised or not during.energised or after.energised:
        return CheckResult(
            "relay",
            FAIL,
            f"relay pin {gpio.relay_pin} did not follow (levels {', '.join(figures['levels'])}): "
            "check the pin factory and relay_pin in [gpio]",
            figures,
        )
    return _confirmed(
        "relay",
        options,
        "Did the relay click (open, then lock again)?",
        f"relay pin {gpio.relay_pin} pulsed ({before.level}, {during.level}, then "
        f"{after.level}: locked)",
        "check the relay's supply and wiring, and relay_pin / relay_active_high in [gpio]",
        figures,
    )


def check_leds(config: GateConfig, options: Options) -> CheckResult:
    """Light the green lamp, then the red one."""
    gpio = config.gpio
    assert gpio is not None
    if not _can_pulse(options):
        return CheckResult("leds", SKIPPED, NEEDS_CONFIRMATION)
    lamps = [
        (colour, pin)
        for colour, pin in (("green", gpio.green_pin), ("red", gpio.red_pin))
        if pin is not None
    ]
    shown = " then ".join(f"{colour} (pin {pin})" for colour, pin in lamps)
    options.say(f"leds: lighting {shown}")
    with _turnstile(config, options, green_pin=gpio.green_pin, red_pin=gpio.red_pin) as turnstile:
        if gpio.green_pin is not None:
            turnstile.signal_accept()  # green only: no accept beep in a test turnstile
            time.sleep(LAMP_SECONDS + 0.1)
        if gpio.red_pin is not None:
            turnstile.signal_reject("selftest")  # red only: no buzzer in this turnstile
            time.sleep(LAMP_SECONDS + 0.1)
    question = " and then ".join(f"the {colour} lamp" for colour, _ in lamps)
    return _confirmed(
        "leds",
        options,
        f"Did {question} light?",
        f"lit {shown}",
        "check the lamps' wiring and supply, and green_pin / red_pin in [gpio]",
        {"pins": {colour: pin for colour, pin in lamps}},
    )


def check_buzzer(config: GateConfig, options: Options) -> CheckResult:
    """Sound the buzzer's reject pattern (two short beeps)."""
    gpio = config.gpio
    assert gpio is not None
    if not _can_pulse(options):
        return CheckResult("buzzer", SKIPPED, NEEDS_CONFIRMATION)
    options.say(f"buzzer: two short beeps (pin {gpio.buzzer_pin})")
    beeps = load("drivers.gpio.turnstile:DEFAULT_REJECT_BEEPS")
    with _turnstile(config, options, buzzer_pin=gpio.buzzer_pin) as turnstile:
        turnstile.signal_reject("selftest")
        time.sleep(beeps.duration + 0.1)
    return _confirmed(
        "buzzer",
        options,
        "Did the buzzer beep twice?",
        f"sounded the buzzer (pin {gpio.buzzer_pin})",
        "check the buzzer's wiring and buzzer_pin in [gpio] (an active buzzer is expected)",
        {"buzzer_pin": gpio.buzzer_pin},
    )


# State, clock, upstream ----------------------------------------------------------------------


def check_database(config: GateConfig, options: Options) -> CheckResult:
    """``PRAGMA integrity_check`` on a read-only connection: safe while gated writes."""
    path = config.state_dir / DB_FILE_NAME
    figures: dict[str, Any] = {"path": str(path)}
    if not path.is_file():
        return CheckResult(
            "database",
            FAIL,
            f"no database at {path}: check [gate] state_dir; gated or gatectl import makes it",
            figures,
        )
    figures["size_bytes"] = path.stat().st_size
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check(20)")]
        finally:
            connection.close()
    except sqlite3.Error as err:
        problems = [f"cannot read it: {err}"]
    if problems == ["ok"]:
        return CheckResult(
            "database", PASS, f"{path}: integrity ok ({figures['size_bytes']} bytes)", figures
        )
    # integrity_check's first row may be a heading ("*** in database main ***") and lines
    lines = [line for text in problems for line in text.splitlines() if line.strip("* ")]
    lines = [line for line in lines if not line.startswith("*** ")] or problems
    figures["problems"] = lines
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return failed(
        "database",
        f"{path} is damaged: {escaped(lines[0], 100)}{more}",
        "stop gated, copy the file away for the office, and restore the state directory from "
        "a backup (or provision the gate again)",
        figures,
    )


def check_clock(config: GateConfig, options: Options) -> CheckResult:
    """NTP synchronisation (adjtimex) and the offset from the collector's clock."""
    try:
        sync_status = json.loads((config.state_dir / SYNC_FILE).read_text())
    except (OSError, ValueError):
        sync_status = None
    state = clock_state(
        sync_status if isinstance(sync_status, dict) else None, require_ntp=config.require_ntp
    )
    figures = {
        key: state[key] for key in ("utc", "ntp_synchronized", "ntp_detail", "collector_offset")
    }
    offset = state["collector_offset"]
    measured = f", {offset:+.1f} s off the collector" if offset is not None else ""
    if state["ok"]:
        allowed = " (allowed: [gate] require_ntp = false)" if not config.require_ntp else ""
        return CheckResult(
            "clock", PASS, f"{state['utc']}; {state['ntp_detail']}{allowed}{measured}", figures
        )
    fixes = []
    if state["ntp_synchronized"] is False and config.require_ntp:
        fixes.append(
            "make an NTP client keep the clock (timedatectl set-ntp true; check with "
            "timedatectl timesync-status that it reaches a server)"
        )
    if offset is not None and abs(offset) > MAX_OFFSET_SECONDS:
        fixes.append("tickets are decided on this clock: fix NTP, then let the gate sync again")
    return CheckResult(
        "clock", FAIL, f"{state['utc']}: {state['problem']}: {'; '.join(fixes)}", figures
    )


def check_upstream(config: GateConfig, options: Options) -> CheckResult:
    """One signed request to the collector: reachable, and this gate's key accepted.

    The request asks for a trust bundle newer than any version can be: the collector checks
    the signature first, then answers 204 with no body.
    """
    sync = config.sync
    assert sync is not None
    from sync.client import CollectorClient, CollectorUnreachable
    from sync.identity import load_device_key

    figures: dict[str, Any] = {"collector": sync.collector_url}
    try:
        pair = load_device_key(config.state_dir)
    except KeyFileError as err:
        figures["reason"] = "not_provisioned"
        return failed(
            "upstream",
            str(err),
            f"then enrol it at the office: gate-office enrol {config.gate_id} <public key>",
            figures,
        )
    client = CollectorClient(
        sync.collector_url,
        config.gate_id,
        pair.signing_key,
        timeout=(
            min(sync.connect_timeout, UPSTREAM_TIMEOUT[0]),
            min(sync.read_timeout, UPSTREAM_TIMEOUT[1]),
        ),
        ca_file=sync.ca_file,
    )
    try:
        reply = client.request(
            "GET", f"/v1/gates/{config.gate_id}/trust-bundle", params={"since": NEWEST_VERSION}
        )
    except CollectorUnreachable as err:
        figures["reason"] = "unreachable"
        return failed(
            "upstream",
            f"unreachable: {sync.collector_url}: {err}",
            "check the network link, DNS, the firewall and [sync] collector_url",
            figures,
        )
    finally:
        client.close()
    figures["http_status"] = reply.status
    figures["round_trip_ms"] = round((reply.received_at - reply.sent_at) * 1000, 1)
    if reply.status in (200, 204):
        return CheckResult(
            "upstream",
            PASS,
            f"{sync.collector_url} reached, this gate's signature accepted "
            f"({figures['round_trip_ms']:g} ms)",
            figures,
        )
    error = _collector_error(reply.content)
    if reply.status not in (401, 403):
        figures["reason"] = "error"
        return failed(
            "upstream",
            f"the collector answered HTTP {reply.status}: {error}",
            "see the collector's log",
            figures,
        )
    figures["reason"] = "refused"
    enrol = f"gate-office enrol {config.gate_id} {pair.public_key.hex()}"
    if "stale" in error:
        fix = "this gate's clock is minutes off the collector's: fix the clock first"
    elif "bad signature" in error:
        fix = f"the collector holds another key for this gate; enrol this one: {enrol} --replace"
    else:
        fix = f"enrol this gate: {enrol}"
    return failed("upstream", f"refused by the collector: {error}", fix, figures)


def _collector_error(content: bytes) -> str:
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer["error"]
    return content[:200].decode("utf-8", "replace").strip() or "no reason given"


CHECK_FUNCTIONS: dict[str, Callable[[GateConfig, Options], CheckResult]] = {
    "camera": check_camera,
    "serial": check_serial,
    "nfc": check_nfc,
    "relay": check_relay,
    "leds": check_leds,
    "buzzer": check_buzzer,
    "database": check_database,
    "clock": check_clock,
    "upstream": check_upstream,
}
