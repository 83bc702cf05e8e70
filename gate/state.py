"""A provisioned gate's state: its configuration, database and held trust bundle, wired into
a validator. ``gated`` and ``gatectl`` both start here."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate import installed_version
from gate.clock import clock_state
from gate.config import GateConfig
from gate.errors import GateError
from gate.revocations import RevocationCheck, RevocationList
from gate.runlock import running_pid
from gate.signed import REVOCATION_LIST, TRUST_BUNDLE, document_kind
from gate.store import GateStore
from gate.trust import HeldBundle
from gate.validator import Policy, Validator

HEALTH_FILE = "health.json"  # gated rewrites it every second
SYNC_FILE = "sync.json"  # the sync agent's last state


def policy_for(config: GateConfig, zone: str | None = None) -> Policy:
    return Policy(
        gate_id=config.gate_id,
        zone=zone if zone is not None else config.zone,
        passback_group=config.passback_group,
        passback_window=config.passback_window,
        clock_skew=config.clock_skew,
    )


@dataclass(frozen=True)
class ImportResult:
    kind: str
    version: int
    summary: str


class GateState:
    """The state directory of one gate."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.store = GateStore.in_state_dir(config.state_dir)
        self.bundle = HeldBundle(config.state_dir, config.root_public_key)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> GateState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def validator(
        self, zone: str | None = None, revocations: RevocationCheck | None = None
    ) -> Validator:
        """The gate's validator; ``zone`` and ``revocations`` override for dry runs."""
        return Validator(
            self.bundle.store,
            revocations if revocations is not None else self.store,
            self.store,
            policy_for(self.config, zone),
        )

    def import_document(self, path: Path) -> ImportResult:
        """Import a signed trust bundle or revocation list from a file (a USB stick)."""
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise GateError(f"{path}: cannot read: {err}") from err
        kind = document_kind(data)
        if kind == TRUST_BUNDLE:
            store = self.bundle.install(data)
            return ImportResult(
                "trust bundle", store.version, f"version {store.version}, {len(store)} key(s)"
            )
        assert kind == REVOCATION_LIST
        revocations = RevocationList.from_document(data, self.config.root_public_key)
        revocations.apply_to(self.store)
        what = (
            f"delta {revocations.base}->{revocations.version}"
            if revocations.is_delta
            else f"full list version {revocations.version}"
        )
        added = len(revocations.tickets) + len(revocations.keys)
        removed = len(revocations.remove_tickets) + len(revocations.remove_keys)
        return ImportResult(
            "revocation list", revocations.version, f"{what}, {added} added, {removed} removed"
        )

    def daemon_health(self, now: float) -> dict[str, Any] | None:
        """What gated last wrote to health.json, with its age and whether it still runs; None
        if it never ran here. A file that is not what gated writes gives an "error" entry."""
        health = self._json_file(HEALTH_FILE)
        if health is None:
            return None
        devices = health.get("devices")
        health["devices"] = {
            str(name): device
            for name, device in (devices.items() if isinstance(devices, dict) else ())
            if isinstance(device, dict)
        }
        at = _number(health, "at")
        health["age_seconds"] = None if at is None else round(now - at, 1)
        pid = running_pid(self.config.state_dir)
        health["running"] = pid is not None
        started = _number(health, "started_at")
        if pid is not None and started is not None:
            health["uptime_seconds"] = round(now - started, 1)
        return health

    def _json_file(self, name: str) -> dict[str, Any] | None:
        """A JSON object gated writes into the state directory; None if absent."""
        try:
            value = json.loads((self.config.state_dir / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            return {"error": f"{name}: {err}"}
        return value if isinstance(value, dict) else {"error": f"{name}: not a JSON object"}

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Versions and ages of the held documents, counts, and where the state lives."""
        now = time.time() if now is None else now
        trust = self.bundle.store()
        revocations = self.store.revocation_state()

        def age(moment: float | None) -> float | None:
            return None if moment is None else round(now - moment, 1)

        bundle_mtime = self.bundle.path.stat().st_mtime if self.bundle.path.exists() else None
        daemon = self.daemon_health(now)
        sync = self._json_file(SYNC_FILE)
        info = {
            "version": installed_version(),
            "gate": self.config.to_json(),
            "paths": {
                "config": str(self.config.path),
                "state_dir": str(self.config.state_dir),
                "database": str(self.store.path),
                "trust_bundle": str(self.bundle.path),
            },
            "trust_bundle": {
                "version": trust.version,
                "issued_at": trust.issued_at,
                "age_seconds": age(trust.issued_at),
                "imported_at": bundle_mtime,
                "keys": [key.to_json() for key in trust.keys],
                "error": self.bundle.error,
            },
            "revocations": {
                "version": revocations.version,
                "issued_at": revocations.issued_at,
                "age_seconds": age(revocations.issued_at),
                "imported_at": revocations.imported_at,
                "tickets": revocations.tickets,
                "keys": revocations.keys,
            },
            "admissions": self.store.admission_count(),
            "scan_log": self._scan_log(),
            "daemon": daemon,
            "sync": sync,
            "clock": clock_state(
                sync if isinstance(sync, dict) else None, now, require_ntp=self.config.require_ntp
            ),
            "disk": self._disk(),
        }
        info["problems"] = problems(info, self.config)
        return info

    def _scan_log(self) -> dict[str, Any]:
        """How far the log is handed over (acknowledged by the collector, or exported)."""
        acked = self.store.sync_value("acked_seq", 0)
        acked = acked if isinstance(acked, int) and acked >= 0 else 0
        newest = self.store.recent_log(1)
        last = newest[0]["seq"] if newest else 0
        return {
            "last_seq": last,
            "handed_over_seq": acked,
            "not_handed_over": self.store.unsynced_count(acked),
        }

    def _disk(self) -> dict[str, Any]:
        """Free space where the state lives, and what the database takes of it."""
        database = self.store.path
        size = sum(
            path.stat().st_size
            for path in (database, database.with_name(database.name + "-wal"))
            if path.exists()
        )
        try:
            fs = os.statvfs(self.config.state_dir)
        except OSError as err:
            return {"error": str(err), "database_bytes": size}
        return {
            "free_bytes": fs.f_bavail * fs.f_frsize,
            "total_bytes": fs.f_blocks * fs.f_frsize,
            "database_bytes": size,
            "log_budget_bytes": int(self.config.log_disk_budget_mb * 1e6),  # MB, as the daemon
        }


def _number(values: dict[str, Any], name: str) -> float | None:
    value = values.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


# Thresholds for what ``gatectl status`` calls a problem.
STALE_HEALTH_SECONDS = 10  # gated rewrites health.json every second
STALE_REVOCATIONS_SECONDS = 7 * 86400
LOW_DISK_BYTES = 64 * 1024 * 1024
SYNC_FAILURES_SHOWN = 3  # consecutive failed sync rounds before status calls it a problem


def problems(info: dict[str, Any], config: GateConfig) -> list[str]:
    """What ``status`` found wrong, one sentence each, most urgent first; see
    docs/operations.md for each message and its fix."""
    found: list[str] = []
    daemon = info["daemon"]
    if daemon is None:
        found.append("gated has never run with this state directory")
    elif not daemon.get("running"):
        found.append("gated is not running")
    elif daemon.get("age_seconds") is None or daemon["age_seconds"] > STALE_HEALTH_SECONDS:
        found.append("gated runs but has not reported for a while: its decision loop is stuck")
    if daemon and daemon.get("running"):
        if daemon.get("emergency"):
            found.append("the emergency input holds the gate open")
        for name, device in (daemon.get("devices") or {}).items():
            if isinstance(device, dict) and device.get("state") != "ok":
                found.append(f"{name} {device.get('state')}: {device.get('reason') or '-'}")
    bundle, revocations = info["trust_bundle"], info["revocations"]
    if bundle["error"]:
        found.append(f"trust bundle: {bundle['error']}")
    elif bundle["version"] is None:
        found.append("no trust bundle: every ticket is rejected as unknown_key")
    if revocations["version"] is None:
        found.append("no revocation list imported yet")
    elif (revocations["age_seconds"] or 0) > STALE_REVOCATIONS_SECONDS:
        days = revocations["age_seconds"] // 86400
        found.append(f"revocation list is stale: issued {days:.0f} days ago")
    sync = info["sync"]
    if config.sync is not None:
        if not isinstance(sync, dict):
            found.append("sync has not run yet")
        elif sync.get("error"):
            found.append(f"sync status unreadable: {sync['error']}")
        elif (_number(sync, "consecutive_failures") or 0) >= SYNC_FAILURES_SHOWN:
            found.append(f"upstream sync failing: {sync.get('last_error')}")
    clock = info["clock"]
    if not clock["ok"]:
        found.append(f"clock: {clock['problem']}")
    disk = info["disk"]
    if "error" in disk:
        found.append(f"disk: {disk['error']}")
    elif disk["free_bytes"] < LOW_DISK_BYTES:
        found.append(f"disk almost full: {disk['free_bytes'] // 2**20} MiB free")
    return found
