"""The gate's TOML configuration, parsed once at start-up into typed, validated settings.

Every error names the file, the key and what is accepted. Defaults live here and nowhere else.

    [gate]
    id = "north-01"                 # this gate's id, as it appears in logs
    zone = "A"                      # the fare zone this gate stands in
    state_dir = "/var/lib/gate"     # database, held trust bundle, device key
    root_public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
                                    # ^ the office root key (64 hex digits or base64)
    clock_skew = 30                 # seconds of clock error tolerated on nbf/exp
    require_ntp = true              # status/selftest report a clock no NTP client keeps
                                    # synchronised; false where it is set another way

    [antipassback]
    group = "north-hall"            # gates sharing one anti-passback group (default: the gate id)
    window = 600                    # seconds a pass is refused after entering (0: off)

    [log]
    retention_days = 30             # synced scan log records older than this are pruned
    disk_budget_mb = 512            # over budget: synced records go first, oldest first;
                                    # unsynced records are never dropped, an alarm is raised

    [camera]                        # absent or enabled = false: no camera
    enabled = true                  # false: keep the section, but off
    source = "/dev/video0"          # device index, /dev/videoN, a video file or a URL
    width = 640                     # optional capture size and rate
    height = 480
    fps = 30
    decoder = "zxing"               # zxing | pyzbar | zxing+pyzbar (pyzbar when zxing finds none)
    dedup_window = 2.0              # seconds: one decision per code held in view

    [serial]                        # a line-based 2D barcode scanner
    enabled = true                  # false: keep the section, but off
    url = "/dev/ttyACM0"            # anything serial.serial_for_url opens
    baudrate = 9600
    terminator = "CR"               # CR | LF | CRLF; only the terminator is trimmed
    prefix = ""                     # stripped when the scanner adds them
    suffix = ""
    max_line = 1024                 # longer lines are dropped with a warning

    [nfc]                           # a PN532 reader on a UART (HSU)
    enabled = true                  # false: keep the section, but off
    url = "/dev/ttyS0"
    baudrate = 115200

    [sync]                          # absent or enabled = false: offline only
    enabled = true                  # false: keep the section, but off
    collector_url = "https://collector.example:8470"
    interval = 5.0                  # seconds between sync cycles when all is well
    batch_size = 500                # scan records per upload (at most 1000)
    connect_timeout = 3.0
    read_timeout = 10.0
    ca_file = ""                    # a PEM CA bundle for the collector's certificate
    backoff_cap = 60.0              # longest wait between retries after failures

    [gpio]                          # absent: no turnstile (decisions are logged only)
    pin_factory = "default"         # default | lgpio (Pi 5) | rpigpio | pigpio | native | mock
    relay_pin = 17                  # BCM numbers
    relay_active_high = true
    relay_mode = "hold"             # hold: open until passage or timeout; pulse: one pulse
    pulse_seconds = 0.5
    passage_timeout = 8.0           # no passage by then: relock and annul the admission
    passage_pin = 27
    passage_active_high = true      # the sensor's active level
    green_pin = 22
    red_pin = 23
    buzzer_pin = 24
    emergency_pin = 25              # fire/emergency input: holds the gate open while active
    emergency_active_high = false   # false: a normally-closed alarm contact that opens on alarm
    emergency_pull = "down"         # up | down | none; default: towards the active level, so a
                                    # cut wire opens the gate (see docs/hardware.md)
    passage_pull = "down"           # default: towards the inactive level
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError
from gate.trust import parse_public_key

DEFAULT_CONFIG_PATH = Path("/etc/gate/gate.toml")
CONFIG_ENV = "GATE_CONFIG"
DEFAULT_CLOCK_SKEW = 30
DEFAULT_PASSBACK_WINDOW = 600
MAX_SECONDS = 7 * 24 * 3600

SECTIONS = {
    "gate": {"id", "zone", "state_dir", "root_public_key", "clock_skew", "require_ntp"},
    "antipassback": {"group", "window"},
    "log": {"retention_days", "disk_budget_mb"},
    "camera": {"enabled", "source", "width", "height", "fps", "decoder", "dedup_window"},
    "serial": {
        "enabled",
        "url",
        "baudrate",
        "terminator",
        "prefix",
        "suffix",
        "max_line",
    },
    "nfc": {"enabled", "url", "baudrate"},
    "sync": {
        "enabled",
        "collector_url",
        "interval",
        "batch_size",
        "connect_timeout",
        "read_timeout",
        "ca_file",
        "backoff_cap",
    },
    "gpio": {
        "pin_factory",
        "relay_pin",
        "relay_active_high",
        "relay_mode",
        "pulse_seconds",
        "passage_timeout",
        "passage_pin",
        "passage_active_high",
        "passage_pull",
        "emergency_pull",
        "green_pin",
        "red_pin",
        "buzzer_pin",
        "emergency_pin",
        "emergency_active_high",
    },
}
DECODERS = ("zxing", "pyzbar", "zxing+pyzbar")
TERMINATORS = ("CR", "LF", "CRLF")
PIN_FACTORIES = ("default", "lgpio", "rpigpio", "pigpio", "native", "mock")
RELAY_MODES = ("hold", "pulse")
PULLS = ("up", "down", "none")


@dataclass(frozen=True)
class CameraConfig:
    source: str | int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    decoder: str = "zxing"
    dedup_window: float = 2.0


@dataclass(frozen=True)
class SerialConfig:
    url: str
    baudrate: int = 9600
    terminator: str = "CR"
    prefix: str = ""
    suffix: str = ""
    max_line: int = 1024


@dataclass(frozen=True)
class NfcConfig:
    url: str
    baudrate: int = 115200


@dataclass(frozen=True)
class SyncConfig:
    collector_url: str
    interval: float = 5.0
    batch_size: int = 500
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    ca_file: Path | None = None
    backoff_cap: float = 60.0


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = "default"
    relay_pin: int = 17
    relay_active_high: bool = True
    relay_mode: str = "hold"
    pulse_seconds: float = 0.5
    passage_timeout: float = 8.0
    passage_pin: int | None = None
    passage_active_high: bool = True
    green_pin: int | None = None
    red_pin: int | None = None
    buzzer_pin: int | None = None
    emergency_pin: int | None = None
    emergency_active_high: bool = False
    passage_pull: str | None = None
    emergency_pull: str | None = None


@dataclass(frozen=True)
class GateConfig:
    """Validated gate settings."""

    path: Path
    gate_id: str
    zone: str
    state_dir: Path
    root_public_key: bytes
    clock_skew: int = DEFAULT_CLOCK_SKEW
    require_ntp: bool = True
    passback_group: str = ""
    passback_window: int = DEFAULT_PASSBACK_WINDOW
    log_retention_days: float = 30.0
    log_disk_budget_mb: float = 512.0
    camera: CameraConfig | None = None
    serial: SerialConfig | None = None
    nfc: NfcConfig | None = None
    gpio: GpioConfig | None = None
    sync: SyncConfig | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "gate_id": self.gate_id,
            "zone": self.zone,
            "state_dir": str(self.state_dir),
            "root_public_key": self.root_public_key.hex(),
            "clock_skew": self.clock_skew,
            "require_ntp": self.require_ntp,
            "passback_group": self.passback_group,
            "passback_window": self.passback_window,
        }


def example() -> str:
    """The annotated example configuration in this module's docstring, every key in it."""
    lines = __doc__.split("\n\n", 2)[2].rstrip().splitlines()
    return "\n".join(line[4:] for line in lines) + "\n"


def reference_markdown() -> str:
    """docs/configuration.md, generated from the schema (``python -m gate.config``)."""
    parts = [
        "# Configuration",
        "",
        "<!-- generated by `python -m gate.config > docs/configuration.md`; do not edit -->",
        "",
        f"One TOML file: `--config PATH`, else `${CONFIG_ENV}`, else `{DEFAULT_CONFIG_PATH}`.",
        "It is checked before gated starts (`gated --check-config`); an error names the file,",
        "the key and what is accepted. Unknown sections and keys are errors, so a typo never",
        "passes silently. Relative paths are relative to the configuration file.",
        "",
        "## Sections and keys",
        "",
        "| section | keys |",
        "|---|---|",
    ]
    for section, keys in SECTIONS.items():
        parts.append(f"| `[{section}]` | {', '.join(f'`{key}`' for key in sorted(keys))} |")
    parts += [
        "",
        "Accepted values: `camera.decoder` "
        + " \\| ".join(DECODERS)
        + "; `serial.terminator` "
        + " \\| ".join(TERMINATORS)
        + "; `gpio.pin_factory` "
        + " \\| ".join(PIN_FACTORIES)
        + "; `gpio.relay_mode` "
        + " \\| ".join(RELAY_MODES)
        + "; `gpio.*_pull` "
        + " \\| ".join(PULLS)
        + ".",
        "",
        "## Annotated example (every key, with its default where it has one)",
        "",
        "```toml",
        example().rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


class _Reader:
    def __init__(self, path: Path, data: dict) -> None:
        self.path = path
        self.data = data

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def get(self, section: str, name: str, kind: type, default: Any = None, required=False):
        key = f"{section}.{name}"
        table = self.data.get(section, {})
        if name not in table:
            if required:
                raise self.fail(key, f"missing; it is required ({_describe(kind)})")
            return default
        value = table[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {_describe(kind)}, got {value!r}")
        return value

    def number(self, section: str, name: str, default: float | None, low: float, high: float):
        key = f"{section}.{name}"
        value = self.data.get(section, {}).get(name, default)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(key, f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be {low:g} to {high:g}, not {value}")
        return value

    def choice(self, section: str, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(section, name, str, default)
        if value not in choices:
            raise self.fail(f"{section}.{name}", f"{value!r} is not one of {', '.join(choices)}")
        return value

    def pin(self, section: str, name: str, default: int | None = None) -> int | None:
        value = self.get(section, name, int, default)
        if value is not None and not 0 <= value <= 53:
            raise self.fail(f"{section}.{name}", f"a BCM GPIO number 0 to 53, not {value}")
        return value

    def enabled(self, section: str) -> bool:
        return section in self.data and self.get(section, "enabled", bool, True)

    def seconds(self, section: str, name: str, default: int) -> int:
        value = self.get(section, name, int, default)
        if not 0 <= value <= MAX_SECONDS:
            raise self.fail(f"{section}.{name}", f"must be 0 to {MAX_SECONDS} seconds, not {value}")
        return value


def _describe(kind: type) -> str:
    return {str: "a string", int: "a whole number", bool: "true or false"}.get(kind, kind.__name__)


def load_config(path: Path | str | None = None) -> GateConfig:
    """Read and validate a gate configuration file; raise :class:`ConfigError` on any fault."""
    path = Path(path) if path is not None else default_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"{path}: no such configuration file (set --config or ${CONFIG_ENV})"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_config(data, path)


def parse_config(data: dict, path: Path) -> GateConfig:
    """Validate already-parsed TOML data."""
    reader = _Reader(path, data)
    for section, table in data.items():
        if section not in SECTIONS:
            raise reader.fail(section, f"unknown section; accepted: {', '.join(sorted(SECTIONS))}")
        if not isinstance(table, dict):
            raise reader.fail(section, "must be a table ([section])")
        for name in table:
            if name not in SECTIONS[section]:
                accepted = ", ".join(sorted(SECTIONS[section]))
                raise reader.fail(f"{section}.{name}", f"unknown key; accepted: {accepted}")
    gate_id = reader.get("gate", "id", str, required=True)
    zone = reader.get("gate", "zone", str, required=True)
    for key, value in (("gate.id", gate_id), ("gate.zone", zone)):
        if not value.strip() or len(value) > 64:
            raise reader.fail(key, "must be 1 to 64 characters")
    state_dir = reader.get("gate", "state_dir", str, required=True)
    if not state_dir:
        raise reader.fail("gate.state_dir", "must be a directory path")
    root_text = reader.get("gate", "root_public_key", str, required=True)
    try:
        root_public_key = parse_public_key(root_text)
    except ValueError as err:
        raise reader.fail("gate.root_public_key", str(err)) from err
    group = reader.get("antipassback", "group", str, gate_id)
    if not group.strip():
        raise reader.fail("antipassback.group", "must not be empty")
    devices = _devices(reader)
    state_path = Path(state_dir)
    if not state_path.is_absolute():
        state_path = (path.parent / state_path).resolve()
    return GateConfig(
        path=path,
        gate_id=gate_id,
        zone=zone,
        state_dir=state_path,
        root_public_key=root_public_key,
        clock_skew=reader.seconds("gate", "clock_skew", DEFAULT_CLOCK_SKEW),
        require_ntp=reader.get("gate", "require_ntp", bool, True),
        passback_group=group,
        passback_window=reader.seconds("antipassback", "window", DEFAULT_PASSBACK_WINDOW),
        log_retention_days=reader.number("log", "retention_days", 30.0, 0, 3650),
        log_disk_budget_mb=reader.number("log", "disk_budget_mb", 512.0, 1, 1_000_000),
        **devices,
    )


def _pull(reader: _Reader, name: str) -> str | None:
    if name not in reader.data.get("gpio", {}):
        return None
    return reader.choice("gpio", name, "none", PULLS)


def _devices(reader: _Reader) -> dict[str, Any]:
    """The [camera], [serial], [nfc] and [gpio] sections; a reader section that is absent or
    has ``enabled = false`` is off."""
    devices: dict[str, Any] = {}
    if reader.enabled("camera"):
        source = reader.data["camera"].get("source")
        if isinstance(source, bool) or not isinstance(source, int | str) or source == "":
            raise reader.fail(
                "camera.source", "required: a device index, /dev/videoN, a file or a URL"
            )
        devices["camera"] = CameraConfig(
            source=source,
            width=reader.get("camera", "width", int),
            height=reader.get("camera", "height", int),
            fps=reader.number("camera", "fps", None, 1, 240),
            decoder=reader.choice("camera", "decoder", "zxing", DECODERS),
            dedup_window=reader.number("camera", "dedup_window", 2.0, 0, 60),
        )
    if reader.enabled("serial"):
        devices["serial"] = SerialConfig(
            url=reader.get("serial", "url", str, required=True),
            baudrate=reader.get("serial", "baudrate", int, 9600),
            terminator=reader.choice("serial", "terminator", "CR", TERMINATORS),
            prefix=reader.get("serial", "prefix", str, ""),
            suffix=reader.get("serial", "suffix", str, ""),
            max_line=int(reader.number("serial", "max_line", 1024, 16, 65536)),
        )
    if reader.enabled("nfc"):
        devices["nfc"] = NfcConfig(
            url=reader.get("nfc", "url", str, required=True),
            baudrate=reader.get("nfc", "baudrate", int, 115200),
        )
    if reader.enabled("sync"):
        url = reader.get("sync", "collector_url", str, required=True)
        if not url.startswith(("http://", "https://")):
            raise reader.fail(
                "sync.collector_url", f"must be an http:// or https:// URL, not {url!r}"
            )
        ca_file = reader.get("sync", "ca_file", str, "")
        devices["sync"] = SyncConfig(
            collector_url=url.rstrip("/"),
            interval=reader.number("sync", "interval", 5.0, 0.5, 3600),
            batch_size=int(reader.number("sync", "batch_size", 500, 1, 1000)),
            connect_timeout=reader.number("sync", "connect_timeout", 3.0, 0.1, 60),
            read_timeout=reader.number("sync", "read_timeout", 10.0, 0.5, 300),
            ca_file=(reader.path.parent / ca_file).resolve() if ca_file else None,
            backoff_cap=reader.number("sync", "backoff_cap", 60.0, 1, 3600),
        )
    if "gpio" in reader.data:
        devices["gpio"] = GpioConfig(
            pin_factory=reader.choice("gpio", "pin_factory", "default", PIN_FACTORIES),
            relay_pin=reader.pin("gpio", "relay_pin", 17),
            relay_active_high=reader.get("gpio", "relay_active_high", bool, True),
            relay_mode=reader.choice("gpio", "relay_mode", "hold", RELAY_MODES),
            pulse_seconds=reader.number("gpio", "pulse_seconds", 0.5, 0.05, 10),
            passage_timeout=reader.number("gpio", "passage_timeout", 8.0, 0.5, 120),
            passage_pin=reader.pin("gpio", "passage_pin"),
            passage_active_high=reader.get("gpio", "passage_active_high", bool, True),
            green_pin=reader.pin("gpio", "green_pin"),
            red_pin=reader.pin("gpio", "red_pin"),
            buzzer_pin=reader.pin("gpio", "buzzer_pin"),
            emergency_pin=reader.pin("gpio", "emergency_pin"),
            emergency_active_high=reader.get("gpio", "emergency_active_high", bool, False),
            passage_pull=_pull(reader, "passage_pull"),
            emergency_pull=_pull(reader, "emergency_pull"),
        )
    return devices


if __name__ == "__main__":
    print(reference_markdown(), end="")
