"""The gate's TOML configuration, parsed once at start-up into typed, validated settings.

Every error names the file, the key and what is accepted. Defaults live here and nowhere else.

    [gate]
    id = "north-01"                 # this gate's id, as it appears in logs
    zone = "A"                      # the fare zone this gate stands in
    state_dir = "/var/lib/gated"    # database and held trust bundle
    root_public_key = "d75a98..."   # office root key (64 hex digits or base64)
    clock_skew = 30                 # seconds of clock error tolerated on nbf/exp

    [antipassback]
    group = "north-hall"            # gates sharing one anti-passback group (default: the gate id)
    window = 600                    # seconds a pass is refused after entering (0: off)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import ConfigError
from gate.trust import parse_public_key

DEFAULT_CONFIG_PATH = Path("/etc/gated/gated.toml")
CONFIG_ENV = "GATE_CONFIG"
DEFAULT_CLOCK_SKEW = 30
DEFAULT_PASSBACK_WINDOW = 600
MAX_SECONDS = 7 * 24 * 3600

SECTIONS = {
    "gate": {"id", "zone", "state_dir", "root_public_key", "clock_skew"},
    "antipassback": {"group", "window"},
}


@dataclass(frozen=True)
class GateConfig:
    """Validated gate settings."""

    path: Path
    gate_id: str
    zone: str
    state_dir: Path
    root_public_key: bytes
    clock_skew: int = DEFAULT_CLOCK_SKEW
    passback_group: str = ""
    passback_window: int = DEFAULT_PASSBACK_WINDOW

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "gate_id": self.gate_id,
            "zone": self.zone,
            "state_dir": str(self.state_dir),
            "root_public_key": self.root_public_key.hex(),
            "clock_skew": self.clock_skew,
            "passback_group": self.passback_group,
            "passback_window": self.passback_window,
        }


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

    def seconds(self, section: str, name: str, default: int) -> int:
        value = self.get(section, name, int, default)
        if not 0 <= value <= MAX_SECONDS:
            raise self.fail(f"{section}.{name}", f"must be 0 to {MAX_SECONDS} seconds, not {value}")
        return value


def _describe(kind: type) -> str:
    return {str: "a string", int: "a whole number"}.get(kind, kind.__name__)


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
        passback_group=group,
        passback_window=reader.seconds("antipassback", "window", DEFAULT_PASSBACK_WINDOW),
    )
