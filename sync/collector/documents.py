"""Documents the office publishes through the collector: revocation lists and trust bundles.

The collector checks each one exactly as a gate would, against the office root public key,
before it keeps it: a gate must never be offered a document it would refuse. The bytes are
stored and served as signed; the collector never re-signs or re-encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.errors import SignedDocumentError
from gate.revocations import RevocationList
from gate.signed import KINDS, REVOCATION_LIST, TRUST_BUNDLE
from gate.trust import TrustStore

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedDocument:
    """What the collector needs to know about a verified document to store and serve it."""

    kind: str
    version: int
    base: int | None
    issued_at: int | None
    entries: int

    def describe(self) -> str:
        name = KINDS[self.kind]
        if self.base is not None:
            return f"{name} delta {self.base}->{self.version}"
        return f"{name} version {self.version}"


def verify_document(kind: str, data: bytes, root_public_key: bytes | None) -> VerifiedDocument:
    """Open a signed document of ``kind`` with the office root key, or raise
    :class:`gate.errors.SignedDocumentError` saying why a gate would refuse it."""
    if root_public_key is None:
        raise SignedDocumentError(
            "this collector was started without --root-public-key, so it cannot check "
            "documents; restart it with the office root public key"
        )
    if kind == REVOCATION_LIST:
        revocations = RevocationList.from_document(data, root_public_key)
        entries = (
            len(revocations.tickets)
            + len(revocations.keys)
            + len(revocations.remove_tickets)
            + len(revocations.remove_keys)
        )
        return VerifiedDocument(
            kind, revocations.version, revocations.base, revocations.issued_at, entries
        )
    if kind == TRUST_BUNDLE:
        store = TrustStore.from_bundle(data, root_public_key)
        return VerifiedDocument(kind, store.version, None, store.issued_at, len(store))
    raise ValueError(f"unknown document kind {kind!r}")
