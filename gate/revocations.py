"""Revocation lists: which tickets (by issuer kid and ticket id) and which whole issuer keys a
gate must refuse.

A list is an office-signed document (see :mod:`gate.signed`). A *full* list replaces what the
gate holds and must be newer. A *delta* names the version it applies on (``base``) and must
match the gate's version exactly, so a gate never skips a delta or applies one twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gate.errors import RollbackError, SignedDocumentError
from gate.signed import REVOCATION_LIST, open_document
from gate.store import GateStore
from gate.ticket import CTI_MAX, CTI_MIN, KID_SIZE

PUBLIC_KEY_SIZE = 32


class RevocationCheck(Protocol):
    """What the validator asks of a revocation list."""

    def revoked_by(self, kid: bytes, cti: bytes, public_key: bytes) -> str | None:
        """``"ticket"`` or ``"key"`` when revoked by ticket id or whole issuer key, else None."""


class MemoryRevocations:
    """A revocation list held in memory, for dry runs (``gatectl check --revoked``).

    Ticket entries are (kid, cti) pairs; a kid of None matches that ticket id from any issuer.
    """

    def __init__(
        self, tickets: Iterable[tuple[bytes | None, bytes]] = (), keys: Iterable[bytes] = ()
    ) -> None:
        self.tickets = set(tickets)
        self.keys = set(keys)

    def revoked_by(self, kid: bytes, cti: bytes, public_key: bytes) -> str | None:
        if (kid, cti) in self.tickets or (None, cti) in self.tickets:
            return "ticket"
        return "key" if public_key in self.keys else None

    def is_revoked(self, kid: bytes, cti: bytes, public_key: bytes) -> bool:
        return self.revoked_by(kid, cti, public_key) is not None


@dataclass(frozen=True)
class RevocationList:
    """A verified revocation list document."""

    version: int
    base: int | None
    issued_at: int | None
    tickets: list[tuple[bytes, bytes]]
    keys: list[bytes]
    remove_tickets: list[tuple[bytes, bytes]]
    remove_keys: list[bytes]

    @property
    def is_delta(self) -> bool:
        return self.base is not None

    @classmethod
    def from_document(cls, data: bytes, root_public_key: bytes) -> RevocationList:
        """Verify the office signature and check every entry."""
        body = open_document(data, root_public_key, REVOCATION_LIST)
        base = body.get("base")
        if base is not None and (not isinstance(base, int) or isinstance(base, bool)):
            raise SignedDocumentError("revocation list refused: base must be a version number")
        if base is not None and base >= body["version"]:
            raise SignedDocumentError("revocation list refused: a delta's base must be older")
        if base is None and (body.get("remove_tickets") or body.get("remove_keys")):
            raise SignedDocumentError("revocation list refused: a full list cannot remove entries")
        issued_at = body.get("issued_at")
        if issued_at is not None and (
            not isinstance(issued_at, int) or isinstance(issued_at, bool)
        ):
            raise SignedDocumentError("revocation list refused: issued_at must be Unix seconds")
        return cls(
            version=body["version"],
            base=base,
            issued_at=issued_at,
            tickets=_ticket_entries(body, "tickets"),
            keys=_key_entries(body, "keys"),
            remove_tickets=_ticket_entries(body, "remove_tickets"),
            remove_keys=_key_entries(body, "remove_keys"),
        )

    def apply_to(self, store: GateStore) -> None:
        """Make this list part of the gate's state, or raise :class:`RollbackError`."""
        held = store.revocation_state().version
        if self.is_delta:
            if held != self.base:
                have = f"version {held}" if held is not None else "no list"
                raise RollbackError(
                    f"revocation delta {self.base}->{self.version} refused: it applies on "
                    f"version {self.base} but the gate holds {have}; import the full list or "
                    "the missing deltas first. The held list stays in force"
                )
        elif held is not None and self.version <= held:
            raise RollbackError(
                f"revocation list refused: version {self.version} is not newer than the held "
                f"version {held} (rollback protection); the held list stays in force"
            )
        store.replace_revocations(
            self.version,
            self.issued_at,
            self.tickets,
            self.keys,
            base=self.base,
            remove_tickets=self.remove_tickets,
            remove_keys=self.remove_keys,
            expect_version=held,
        )


def _entries(body: Mapping, name: str) -> list[Any]:
    entries = body.get(name, [])
    if not isinstance(entries, list | tuple):
        raise SignedDocumentError(f"revocation list refused: {name} is not a list")
    return list(entries)


def _ticket_entries(body: Mapping, name: str) -> list[tuple[bytes, bytes]]:
    result = []
    for entry in _entries(body, name):
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 2
            or not isinstance(entry[0], bytes)
            or not isinstance(entry[1], bytes)
            or len(entry[0]) != KID_SIZE
            or not CTI_MIN <= len(entry[1]) <= CTI_MAX
        ):
            raise SignedDocumentError(
                f"revocation list refused: an entry of {name} is not [kid (8 bytes), "
                f"ticket id ({CTI_MIN}-{CTI_MAX} bytes)]"
            )
        result.append((entry[0], entry[1]))
    return result


def _key_entries(body: Mapping, name: str) -> list[bytes]:
    result = []
    for entry in _entries(body, name):
        if not isinstance(entry, bytes) or len(entry) != PUBLIC_KEY_SIZE:
            raise SignedDocumentError(
                f"revocation list refused: an entry of {name} is not a 32-byte public key"
            )
        result.append(entry)
    return result
