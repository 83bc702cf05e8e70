"""A provisioned gate's state: its configuration, database and held trust bundle, wired into
a validator. ``gated`` and ``gatectl`` both start here."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.config import GateConfig
from gate.errors import GateError
from gate.revocations import RevocationCheck, RevocationList
from gate.signed import REVOCATION_LIST, TRUST_BUNDLE, document_kind
from gate.store import GateStore
from gate.trust import HeldBundle
from gate.validator import Policy, Validator


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
        """What gated last wrote to health.json, with its age; None if it never ran here."""
        path = self.config.state_dir / "health.json"
        try:
            health = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            return {"gate": "unknown", "error": f"{path}: {err}"}
        if isinstance(health, dict) and isinstance(health.get("at"), int | float):
            health["age_seconds"] = round(now - health["at"], 1)
        return health

    def _json_file(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.config.state_dir / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            return {"error": f"{name}: {err}"}

    def status(self, now: float | None = None) -> dict[str, Any]:
        """Versions and ages of the held documents, counts, and where the state lives."""
        now = time.time() if now is None else now
        trust = self.bundle.store()
        revocations = self.store.revocation_state()

        def age(moment: float | None) -> float | None:
            return None if moment is None else round(now - moment, 1)

        bundle_mtime = self.bundle.path.stat().st_mtime if self.bundle.path.exists() else None
        return {
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
            "daemon": self.daemon_health(now),
            "sync": self._json_file("sync.json"),
        }
