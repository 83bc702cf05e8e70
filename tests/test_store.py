"""The gate database: revocation imports that never stall decisions, counts, and crashes
in the middle of an import."""

from __future__ import annotations

import threading
import time

import pytest

from gate.errors import StoreError
from gate.store import GateStore


def entries(count: int, salt: int = 0) -> list[tuple[bytes, bytes]]:
    return [(salt.to_bytes(8, "big"), n.to_bytes(16, "big")) for n in range(count)]


def tables(store: GateStore) -> dict[str, int]:
    conn = store._conn
    return {
        name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        for name in ("revoked_ticket", "revoked_key")
    }


def test_full_import_replaces_and_counts(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        store.replace_revocations(1, 100, entries(250), [b"k" * 32], chunk=40)
        state = store.revocation_state()
        assert (state.version, state.issued_at, state.tickets, state.keys) == (1, 100, 250, 1)
        assert store.revoked_by(*entries(250)[17], b"x" * 32) == "ticket"
        assert store.revoked_by(b"\0" * 8, b"\xff" * 16, b"k" * 32) == "key"
        store.replace_revocations(2, 200, entries(30, salt=1), [], expect_version=1, chunk=7)
        assert store.revocation_state().tickets == 30
        assert not store.is_revoked(*entries(250)[17], b"x" * 32)
        assert store.is_revoked(*entries(30, salt=1)[29], b"x" * 32)
        # Old generations are gone from disk, not just hidden.
        assert tables(store) == {"revoked_ticket": 30, "revoked_key": 0}


def test_delta_counts_adds_and_removals(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        store.replace_revocations(1, None, entries(10), [b"a" * 32])
        store.replace_revocations(
            2,
            None,
            entries(3, salt=5) + entries(1),  # one new, one already there
            [b"b" * 32],
            base=1,
            remove_tickets=[*entries(4)[2:], (b"z" * 8, b"z" * 16)],  # one absent
            remove_keys=[b"a" * 32],
            expect_version=1,
        )
        state = store.revocation_state()
        assert (state.version, state.tickets, state.keys) == (2, 10 + 3 - 2, 1)
        assert tables(store) == {"revoked_ticket": 11, "revoked_key": 1}


def test_decisions_go_on_while_a_large_list_is_staged(tmp_path):
    """A second connection (the daemon) reads and writes while the import runs, and keeps
    seeing the old list until the new one is complete."""
    path = tmp_path / "gate.db"
    with GateStore(path) as importer, GateStore(path) as daemon:
        importer.replace_revocations(1, None, entries(5), [])
        observed = []

        def staged_rows():
            for n, entry in enumerate(entries(20_000, salt=9)):
                if n in (5_000, 15_000):
                    started = time.perf_counter()
                    old = daemon.is_revoked(*entries(5)[0], b"x" * 32)
                    new = daemon.is_revoked(*entries(20_000, salt=9)[0], b"x" * 32)
                    with daemon.usage_transaction() as tx:
                        tx.record_admission(
                            b"t" * 8, n.to_bytes(8, "big"), 1, "single", 1.0, "g", "g"
                        )
                    observed.append((old, new, time.perf_counter() - started))
                yield entry

        worker = threading.Thread(
            target=importer.replace_revocations,
            args=(2, None, staged_rows(), []),
            kwargs={"expect_version": 1, "chunk": 1_000},
        )
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert [(old, new) for old, new, _ in observed] == [(True, False), (True, False)]
        assert all(elapsed < 1.0 for _, _, elapsed in observed)
        assert daemon.is_revoked(*entries(20_000, salt=9)[0], b"x" * 32)
        assert not daemon.is_revoked(*entries(5)[0], b"x" * 32)
        assert daemon.revocation_state().tickets == 20_000


def test_an_import_that_fails_midway_leaves_the_old_list_and_no_leftovers(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        store.replace_revocations(1, None, entries(50), [])

        def broken():
            yield from entries(500, salt=3)
            raise OSError("USB stick pulled out")

        with pytest.raises(OSError):
            store.replace_revocations(2, None, broken(), [], expect_version=1, chunk=100)
        assert store.revocation_state().version == 1
        assert store.is_revoked(*entries(50)[49], b"x" * 32)
        assert not store.is_revoked(*entries(500, salt=3)[0], b"x" * 32)
        assert tables(store)["revoked_ticket"] == 50
        store.replace_revocations(2, None, entries(7, salt=4), [], expect_version=1)
        assert tables(store)["revoked_ticket"] == 7


def test_import_refuses_when_the_held_version_moved(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        store.replace_revocations(3, None, entries(5), [])
        with pytest.raises(StoreError, match="changed during import"):
            store.replace_revocations(4, None, entries(5, salt=1), [], expect_version=2)
        assert store.revocation_state().version == 3
        assert tables(store)["revoked_ticket"] == 5


def test_wal_is_truncated_after_a_full_import(tmp_path):
    path = tmp_path / "gate.db"
    with GateStore(path) as store:
        store.replace_revocations(1, None, entries(60_000), [], chunk=5_000)
        wal = path.with_name("gate.db-wal")
        assert wal.stat().st_size < 1024 * 1024
