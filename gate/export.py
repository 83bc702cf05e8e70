"""The scan log of an offline gate, carried to the office on a USB stick.

A gate with ``[sync]`` has its records acknowledged by the collector, and only then prunes
them. A gate without it has no one to acknowledge anything, so it would keep every record
until its disk budget alarm. ``gatectl export DIR`` is the offline path: it writes every
record not yet exported, with its hash chain, to one CSV file, makes the file durable, and
only then marks those records as handed over (the same mark the collector's acknowledgement
sets), so that retention may prune them like synced ones.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from gate.errors import GateError
from gate.scanlog import WIRE_FIELDS
from gate.state import GateState

ACKED_SEQ = "acked_seq"  # the sync agent's name for it; one mark for both ways out
BATCH = 10_000
HEX_FIELDS = frozenset({"kid", "cti", "prev_hash", "hash"})


def export_log(state: GateState, directory: Path) -> dict[str, Any]:
    """Write the records after the last export to ``directory``; what was written.

    Raises GateError for a gate that syncs (its collector acknowledges records) and when the
    file cannot be written; nothing is marked exported then.
    """
    config = state.config
    if config.sync is not None:
        raise GateError(
            f"{config.path}: this gate syncs with {config.sync.collector_url}; its collector "
            "acknowledges records (use gatectl scans --csv for a copy)"
        )
    directory = Path(directory)
    if not directory.is_dir():
        raise GateError(f"{directory}: no such directory (is the USB stick mounted?)")
    store = state.store
    acked = store.sync_value(ACKED_SEQ, 0)
    first_after = acked if isinstance(acked, int) and acked >= 0 else 0
    newest = store.query_log(after_seq=first_after, limit=1, newest_first=True)
    if not newest:
        return {"file": None, "records": 0, "first_seq": None, "last_seq": first_after}
    last_seq = newest[0]["seq"]
    name = f"{config.gate_id}-scans-{first_after + 1:09d}-{last_seq:09d}.csv"
    path = directory / name
    partial = directory / f".{name}.partial"
    count = 0
    try:
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["gate_id", *WIRE_FIELDS])
            writer.writeheader()
            after = first_after
            while after < last_seq:
                batch = store.log_records(after, BATCH)
                batch = [record for record in batch if record["seq"] <= last_seq]
                if not batch:
                    break
                for record in batch:
                    writer.writerow({"gate_id": config.gate_id, **_printable(record)})
                count += len(batch)
                after = batch[-1]["seq"]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        _fsync_directory(directory)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise GateError(f"{path}: cannot write the export: {err}") from err
    store.set_sync_value(ACKED_SEQ, last_seq)
    return {"file": str(path), "records": count, "first_seq": first_after + 1, "last_seq": last_seq}


def _printable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.hex() if name in HEX_FIELDS and isinstance(value, bytes) else value
        for name, value in record.items()
    }


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
