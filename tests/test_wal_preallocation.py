"""The WAL that GateStore preallocates at open (for steady commit times from the first
admission) loses no admission."""

from __future__ import annotations

import shutil

from gate.store import WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, GateStore


def test_the_wal_is_preallocated_at_open(tmp_path):
    path = tmp_path / "gate.db"
    with GateStore(path) as store:
        frames = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        page_size = store._conn.execute("PRAGMA page_size").fetchone()[0]
        wal = path.with_name("gate.db-wal")
        assert wal.stat().st_size >= WAL_HEADER_SIZE + frames * (WAL_FRAME_HEADER_SIZE + page_size)


def test_admissions_in_a_preallocated_wal_survive_a_crash(tmp_path):
    path = tmp_path / "gate.db"
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with GateStore(path) as store, GateStore(path) as other:
        for n in range(25):
            with store.usage_transaction() as tx:
                tx.record_admission(b"k" * 8, n.to_bytes(16, "big"), 1, "single", 1.0, "g", "g")
        # A second connection opening meanwhile leaves the WAL and its frames alone.
        assert other.admission_count() == 25
        # The files as a power cut would leave them: committed frames, then the zeros.
        for suffix in ("", "-wal"):
            shutil.copyfile(path.with_name(path.name + suffix), crashed / f"gate.db{suffix}")
    with GateStore(crashed / "gate.db") as recovered:
        assert recovered.admission_count() == 25
        with recovered.usage_snapshot() as view:
            assert view.usage(b"k" * 8, (24).to_bytes(16, "big"), "g").standing == 1
