"""Scan log retention and the disk budget: synced records are pruned, unsynced never are,
and a budget the unsynced records alone exceed raises an alarm in the gate's health."""

from __future__ import annotations

import time

from gate.config import load_config
from gate.daemon import GateDaemon
from gate.state import GateState
from gate.store import GateStore


def record(n: int, at: float) -> dict:
    return {
        "at": at,
        "kind": "decision",
        "source": "serial",
        "decision": "reject",
        "reason": "malformed",
        "detail": "x" * 200,
        "cti": n.to_bytes(16, "big"),
    }


def test_only_acknowledged_records_past_the_retention_are_pruned(tmp_path):
    now = time.time()
    with GateStore(tmp_path / "gate.db") as store:
        for n in range(100):
            store.append_log(record(n, now - (100 - n) * 3600))  # one an hour, oldest first
        pruned = store.prune_log(older_than=now - 50.5 * 3600, keep_after_seq=30, chunk=7)
        assert pruned == 30  # the acknowledged ones (seq 1..30), all older than the cutoff
        left = [r["seq"] for r in store.log_records(0, 1000)]
        assert left == list(range(31, 101))
        # without an age limit (over budget), acknowledged ones go whatever their age
        assert store.prune_log(older_than=None, keep_after_seq=60) == 30
        assert store.log_records(0, 1000)[0]["seq"] == 61
        # never the unacknowledged ones
        assert store.prune_log(older_than=None, keep_after_seq=0) == 0
        store.append_log(record(999, now))  # the chain goes on after pruning
        assert store.log_records(100, 10)[0]["seq"] == 101


def test_the_disk_budget_raises_an_alarm_and_clears_once_synced(gate):
    config_text = gate.config.read_text() + "\n[log]\nretention_days = 30\ndisk_budget_mb = 1\n"
    gate.config.write_text(config_text)
    config = load_config(gate.config)
    with GateState(config) as state:
        filler = {"at": time.time(), "kind": "event", "source": "test", "detail": "y" * 2000}
        with state.store._transaction() as conn:
            for _ in range(900):  # ~2 MB of unsynced records
                conn.execute(
                    "INSERT INTO scan_log (at, kind, source, detail) VALUES (?, ?, ?, ?)",
                    (filler["at"], filler["kind"], filler["source"], filler["detail"]),
                )
        daemon = GateDaemon(state, [], None)
        daemon.keep_log_within_limits()
        health = daemon.health()
        assert health["gate"] == "degraded"
        assert "disk budget exceeded" in health["devices"]["store"]["reason"]
        assert "with 900 unsynced record(s)" in health["devices"]["store"]["reason"]
        assert "this gate has no [sync]" in health["devices"]["store"]["reason"]
        assert state.store.unsynced_count(0) == 900  # nothing unsynced was dropped
        # the collector acknowledges everything: pruning brings it back under budget
        state.store.set_sync_value("acked_seq", 900)
        state.store._checkpoint()
        daemon.keep_log_within_limits()
        state.store._checkpoint()
        daemon.keep_log_within_limits()
        assert daemon.health()["devices"]["store"]["state"] == "ok"
        assert state.store.unsynced_count(900) == 0
