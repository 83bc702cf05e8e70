"""The scan log's hash chain: every record links to the one before it."""

from __future__ import annotations

import sqlite3

from gate.scanlog import GENESIS, record_hash, verify_chain
from gate.store import GateStore


def fill(store: GateStore, count: int) -> None:
    for n in range(count):
        store.append_log(
            {
                "at": 1_780_000_000 + n / 10,
                "kind": "decision",
                "source": "serial",
                "decision": "accept" if n % 2 else "reject",
                "reason": "ok" if n % 2 else "malformed",
                "detail": f"record {n}",
                "kid": bytes(8),
                "cti": n.to_bytes(16, "big"),
                "latency_ms": 1.25,
                "data": {"product": "single"},
            }
        )


def test_records_chain_from_genesis(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        fill(store, 50)
        records = store.log_records(0, 100)
    assert [r["seq"] for r in records] == list(range(1, 51))
    assert records[0]["prev_hash"] == GENESIS
    assert verify_chain(records) is None
    assert verify_chain(records[10:], records[9]["hash"], 10) is None


def test_any_removal_change_or_reorder_is_detected(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        fill(store, 10)
        records = store.log_records(0, 100)
    removed = records[:4] + records[5:]
    assert "gap" in verify_chain(removed)
    altered = [dict(r) for r in records]
    altered[6]["reason"] = "ok"
    assert "record 7: hash" in verify_chain(altered)
    swapped = [*records[:2], records[3], records[2], *records[4:]]
    assert verify_chain(swapped) is not None
    rehashed = [dict(r) for r in records]  # a forger recomputing one hash breaks the next link
    rehashed[6]["reason"] = "ok"
    rehashed[6]["hash"] = record_hash(rehashed[6]["prev_hash"], rehashed[6])
    assert "record 8: prev_hash" in verify_chain(rehashed)


def test_chain_survives_reopening_and_a_killed_writer(tmp_path):
    path = tmp_path / "gate.db"
    with GateStore(path) as store:
        fill(store, 3)
    with GateStore(path) as store:
        fill(store, 3)
        assert verify_chain(store.log_records(0, 100)) is None
    # the database rejects a second record with the same sequence number
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO scan_log (seq, at, kind) VALUES (3, 0, 'forged')")
        raise AssertionError("duplicate seq accepted")
    except sqlite3.IntegrityError:
        pass
    finally:
        conn.close()
