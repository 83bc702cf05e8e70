"""The scan log's hash chain: what the gate writes and what the collector checks.

Every record carries its per-gate sequence number and ``prev_hash``, the hash of the record
before it (32 zero bytes for the first). Its own hash is SHA-256 over ``prev_hash`` and the
deterministic CBOR encoding of its fields, so removing, reordering or altering any record
breaks every hash after it, and the office can prove the log it holds is the gate's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import cbor2

GENESIS = bytes(32)
#: the fields covered by the hash, in the order they are listed in docs
CHAINED_FIELDS = (
    "seq",
    "at",
    "kind",
    "source",
    "decision",
    "reason",
    "detail",
    "kid",
    "cti",
    "admission_seq",
    "latency_ms",
    "data",
)
#: a record as it travels to the collector (docs/sync-protocol.md): the chained fields and links
WIRE_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The deterministic CBOR bytes of a record's chained fields (absent fields are null)."""
    return cbor2.dumps({name: record.get(name) for name in CHAINED_FIELDS}, canonical=True)


def record_hash(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    """SHA-256 over the previous record's hash and this record's canonical bytes."""
    return hashlib.sha256(prev_hash + canonical(record)).digest()


def verify_chain(
    records: list[Mapping[str, Any]], prev_hash: bytes = GENESIS, prev_seq: int = 0
) -> str | None:
    """Check consecutive records; None when intact, else what is wrong and where."""
    for record in records:
        seq = record.get("seq")
        if seq != prev_seq + 1:
            return f"gap: record {prev_seq + 1} expected, got {seq}"
        if record.get("prev_hash") != prev_hash:
            return f"record {seq}: prev_hash does not match record {prev_seq}"
        if record.get("hash") != record_hash(prev_hash, record):
            return f"record {seq}: hash does not match its content"
        prev_hash, prev_seq = record["hash"], seq
    return None
