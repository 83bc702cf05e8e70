"""What the collector does with an uploaded batch, given what it already holds for the gate.

The rules (docs/collector.md, "The chain"):

- a record with a seq the collector already holds and the same hash is a resend: it is
  acknowledged again and not stored twice;
- the same seq with a different hash is a **fork**: the gate's history is not the one the
  collector holds. Nothing is overwritten; the batch is refused from that record on;
- the first record after the held ones must be ``last_seq + 1``, else the batch is a **gap**
  and the answer is ``409 {"acked_seq": last_seq}`` so the gate can resend from there;
- every new record must link to the held chain (``prev_hash`` equal to the hash of the record
  before it) and its hash must be what :func:`gate.scanlog.record_hash` gives; the first that
  does not **breaks** the chain: the records before it are stored, it and the rest are refused.

``acked_seq`` always means "the collector holds your records up to here, exactly as you
have them", so a gate never lets go of a record the collector does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OK = "ok"


@dataclass
class BatchOutcome:
    """The plan for one batch: what to store and what to answer."""

    acked_seq: int
    new_records: list[Mapping[str, Any]] = field(default_factory=list)
    problem: str | None = None  # "fork at seq N: ..." or "broken at seq N: ..."
    gap: bool = False

    @property
    def chain(self) -> str:
        return self.problem or OK

    @property
    def last_hash(self) -> bytes | None:
        return self.new_records[-1]["hash"] if self.new_records else None


def plan_batch(
    records: Sequence[Mapping[str, Any]],
    last_seq: int,
    last_hash: bytes,
    held_hashes: Mapping[int, bytes],
    content_ok: Sequence[bool],
) -> BatchOutcome:
    """Decide a batch of consecutive records against the held chain.

    ``held_hashes`` maps the held seqs the batch overlaps to their stored hashes;
    ``content_ok[i]`` tells whether record i's hash matches its own content and prev_hash
    (computed outside the database transaction).
    """
    if not records:
        return BatchOutcome(acked_seq=last_seq)
    first = records[0]["seq"]
    if first > last_seq + 1:
        return BatchOutcome(acked_seq=last_seq, gap=True)
    outcome = BatchOutcome(acked_seq=last_seq)
    prev_hash = last_hash
    for record, intact in zip(records, content_ok, strict=True):
        seq = record["seq"]
        if seq <= last_seq:
            held = held_hashes.get(seq)
            if held != record["hash"]:
                outcome.acked_seq = seq - 1
                outcome.problem = (
                    f"fork at seq {seq}: the gate sent hash {record['hash'].hex()[:16]}... but "
                    f"the collector holds {held.hex()[:16] if held else 'nothing'}... for it"
                )
                return outcome
            outcome.acked_seq = seq
            continue
        if record["prev_hash"] != prev_hash:
            outcome.problem = (
                f"broken at seq {seq}: prev_hash does not match the hash of record {seq - 1}"
            )
            return outcome
        if not intact:
            outcome.problem = f"broken at seq {seq}: hash does not match the record's content"
            return outcome
        outcome.new_records.append(record)
        outcome.acked_seq = seq
        prev_hash = record["hash"]
    return outcome
