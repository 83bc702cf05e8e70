"""The gate's SQLite state: revocations and usage records. All SQLite access goes through here.

Durability: the connection runs in WAL mode with ``synchronous=FULL``, so every commit, and in
particular the admission written before an accept is returned, is on disk when ``COMMIT``
returns.

Revocations: revoked tickets sit in a WITHOUT ROWID B-tree keyed by (generation, kid, cti), so
a lookup is logarithmic in the size of the list. A full list is staged under a new generation
in short transactions while the gate keeps deciding against the old one, then made current in
one small transaction, and the old generation is deleted in short transactions afterwards: a
gate holds the old list or the new one, never half of either, and a ten-million-entry import
never holds the write lock for more than a fraction of a second. A delta is one transaction
on the current generation.

Usage: one WITHOUT ROWID row per admission keyed by (kid, cti, seq), so counting a ticket's
admissions and recording a new one touch a single B-tree.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlite_utils

from gate.errors import StoreError
from gate.scanlog import CHAINED_FIELDS, GENESIS, record_hash

DB_FILE_NAME = "gate.db"
WAL_SIZE_LIMIT = 16 * 1024 * 1024
WAL_HEADER_SIZE, WAL_FRAME_HEADER_SIZE = 32, 24  # the WAL file format's fixed parts


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE revoked_ticket (generation INTEGER NOT NULL, kid BLOB NOT NULL, "
        "cti BLOB NOT NULL, PRIMARY KEY (generation, kid, cti)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE revoked_key (generation INTEGER NOT NULL, public_key BLOB NOT NULL, "
        "PRIMARY KEY (generation, public_key)) WITHOUT ROWID"
    )
    db["revocation_state"].create(
        {
            "id": int,
            "version": int,
            "issued_at": int,
            "imported_at": float,
            "generation": int,
            "tickets": int,
            "keys": int,
        },
        pk="id",
    )
    db.execute(
        "CREATE TABLE admission (kid BLOB NOT NULL, cti BLOB NOT NULL, seq INTEGER NOT NULL, "
        "product TEXT NOT NULL, at REAL NOT NULL, gate_id TEXT NOT NULL, "
        "gate_group TEXT NOT NULL, annulled_at REAL, annul_reason TEXT, "
        "PRIMARY KEY (kid, cti, seq)) WITHOUT ROWID"
    )


def _m002_scan_log(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE scan_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
        "kind TEXT NOT NULL, source TEXT, decision TEXT, reason TEXT, detail TEXT, "
        "kid BLOB, cti BLOB, admission_seq INTEGER, latency_ms REAL, data TEXT)"
    )


def _m003_scan_log_chain(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE scan_log ADD COLUMN prev_hash BLOB")
    db.execute("ALTER TABLE scan_log ADD COLUMN hash BLOB")
    db.execute("CREATE TABLE sync_state (name TEXT PRIMARY KEY, value) WITHOUT ROWID")
    prev = GENESIS
    names = ("seq", *LOG_FIELDS)
    rows = db.execute(f"SELECT {', '.join(names)} FROM scan_log ORDER BY seq").fetchall()
    for row in rows:
        record = dict(zip(names, row, strict=True))
        digest = record_hash(prev, record)
        db.execute(
            "UPDATE scan_log SET prev_hash = ?, hash = ? WHERE seq = ?",
            (prev, digest, record["seq"]),
        )
        prev = digest


# Named migrations, applied in order and recorded in the `migrations` table.
MIGRATIONS = (
    ("001_initial", _m001_initial),
    ("002_scan_log", _m002_scan_log),
    ("003_scan_log_chain", _m003_scan_log_chain),
)

#: the columns a scan log record is written with (its sequence number is assigned here)
LOG_FIELDS = tuple(name for name in CHAINED_FIELDS if name != "seq")


def preallocate_wal(conn: sqlite3.Connection, wal: Path) -> None:
    """Grow the WAL file, with written zeros, to the size it reaches between checkpoints.

    Call it inside a write transaction on ``conn`` (``BEGIN IMMEDIATE``): that holds the WAL
    write lock, so no other connection appends to or truncates the file meanwhile.

    Every admission's COMMIT fdatasyncs the WAL (synchronous=FULL). While the file is still
    growing, that fdatasync must also put the new file size in the filesystem's journal (on
    ext4 a journal commit and a second flush): about 0.1 ms more per admission than
    overwriting blocks that are already allocated and written (fallocate is not enough: its
    blocks are "unwritten" and the first write to each is a metadata change again). SQLite
    grows a new WAL only until the first checkpoint (``wal_autocheckpoint`` frames), then
    writes it again from the start; so a gate reaches this size anyway after its first
    thousand commits, and doing it at open takes that cost off those decisions (one 4 MB
    write and fsync, no more disk than before). Zeros past the last frame are no frames: a
    frame counts only if its salt and checksum match the header, and SQLite leaves stale
    frames there itself after every checkpoint. A checkpoint with TRUNCATE (after a
    revocation import) gives the space back; the WAL then grows again as it used to. Failing
    to grow it (a full disk) is not an error: only the speed depends on it.
    """
    frames = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    frame_size = WAL_FRAME_HEADER_SIZE + page_size
    target = min(WAL_HEADER_SIZE + frames * frame_size, WAL_SIZE_LIMIT)
    try:
        with open(wal, "r+b") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size >= target:
                return
            try:
                os.pwrite(handle.fileno(), bytes(target - size), size)
                os.fsync(handle.fileno())
            except OSError:
                os.ftruncate(handle.fileno(), size)
                raise
    except OSError:
        return


@dataclass(frozen=True)
class RevocationState:
    """What the gate knows about its revocation list."""

    version: int | None
    issued_at: int | None
    imported_at: float | None
    tickets: int
    keys: int


@dataclass(frozen=True)
class TicketUsage:
    """A ticket's admissions so far, as recorded at this gate."""

    recorded: int  # every admission ever written, annulled ones included
    standing: int  # admissions that were not annulled
    last_in_group: float | None  # latest standing admission in the asked anti-passback group


class UsageView:
    """Reads of the usage records, inside a transaction opened by :class:`GateStore`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def usage(self, kid: bytes, cti: bytes, group: str) -> TicketUsage:
        """How often this ticket was admitted, and when last in anti-passback ``group``."""
        row = self._conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE annulled_at IS NULL), "
            "max(at) FILTER (WHERE annulled_at IS NULL AND gate_group = ?) "
            "FROM admission WHERE kid = ? AND cti = ?",
            (group, kid, cti),
        ).fetchone()
        return TicketUsage(row[0], row[1], row[2])


class UsageTransaction(UsageView):
    """Reads and the admission write of one decision, committed together."""

    def record_admission(
        self,
        kid: bytes,
        cti: bytes,
        seq: int,
        product: str,
        at: float,
        gate_id: str,
        group: str,
    ) -> int:
        """Write admission number ``seq`` (``TicketUsage.recorded + 1``) of this ticket."""
        self._conn.execute(
            "INSERT INTO admission (kid, cti, seq, product, at, gate_id, gate_group) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kid, cti, seq, product, at, gate_id, group),
        )
        return seq


class _Transaction:
    """One transaction on the store's connection, under its lock: ``with`` yields the
    connection (or ``view(connection)``), commits when the block ends, rolls back when it
    raises, and turns every sqlite3 error into a :class:`StoreError`.

    A class rather than a generator context manager: every admission enters one, and this
    costs a few microseconds less than two nested ``@contextmanager`` generators.
    """

    __slots__ = ("_begin", "_store", "_view")

    def __init__(self, store: GateStore, mode: str, view: Callable | None = None) -> None:
        self._store = store
        self._begin = f"BEGIN {mode}"
        self._view = view

    def __enter__(self) -> Any:
        store = self._store
        store._lock.acquire()
        try:
            store._conn.execute(self._begin)
        except BaseException as err:
            store._lock.release()
            if isinstance(err, sqlite3.Error):
                raise StoreError(f"gate database {store.path}: {err}") from err
            raise
        return store._conn if self._view is None else self._view(store._conn)

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        store = self._store
        try:
            store._conn.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.Error as err:
            if store._conn.in_transaction:  # a failed COMMIT (disk full): never leave it open
                with suppress(sqlite3.Error):
                    store._conn.execute("ROLLBACK")
            raise StoreError(f"gate database {store.path}: {err}") from err
        finally:
            store._lock.release()
        if isinstance(error, sqlite3.Error):
            raise StoreError(f"gate database {store.path}: {error}") from error


class GateStore:
    """The gate's database file, opened in WAL mode with FULL synchronous commits."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns. An accept depends on it.
            self._conn.execute("PRAGMA synchronous=FULL")
            # Let the WAL file shrink back after a large revocation import.
            self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._migrate()
            self._preallocate_wal()
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the gate database {self.path}: {err}") from err

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> GateStore:
        return cls(Path(state_dir) / DB_FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> GateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        db = sqlite_utils.Database(self._conn)
        with self._transaction():
            if "migrations" not in db.table_names():
                db["migrations"].create({"name": str, "applied_at": float}, pk="name")
            done = {row["name"] for row in db["migrations"].rows}
            for name, apply in MIGRATIONS:
                if name not in done:
                    apply(db)
                    db["migrations"].insert({"name": name, "applied_at": time.time()})

    def _preallocate_wal(self) -> None:
        with self._transaction() as conn:
            preallocate_wal(conn, self.path.with_name(self.path.name + "-wal"))

    def _transaction(self, mode: str = "IMMEDIATE") -> _Transaction:
        return _Transaction(self, mode)

    # Usage records ---------------------------------------------------------------------------

    def usage_transaction(self) -> _Transaction:
        """A write transaction for one decision: checks and the admission commit together.

        A context manager yielding a :class:`UsageTransaction`."""
        return _Transaction(self, "IMMEDIATE", UsageTransaction)

    def usage_snapshot(self) -> _Transaction:
        """A read-only view of the usage records, for dry runs (a context manager yielding a
        :class:`UsageView`)."""
        return _Transaction(self, "DEFERRED", UsageView)

    def annul_admission(self, kid: bytes, cti: bytes, seq: int, reason: str, at: float) -> bool:
        """Mark an admission as not having happened (nobody walked through); durable.

        The row stays, so the history shows the admission and why it was annulled. Returns
        False when there was no such standing admission.
        """
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE admission SET annulled_at = ?, annul_reason = ? "
                "WHERE kid = ? AND cti = ? AND seq = ? AND annulled_at IS NULL",
                (at, reason, kid, cti, seq),
            )
            return cursor.rowcount == 1

    # Scan log --------------------------------------------------------------------------------

    def append_log(self, record: dict[str, Any]) -> int:
        """Append one decision or event to the scan log, durably; returns its sequence number.

        ``record`` holds any of LOG_FIELDS; ``data`` may be a dict (stored as JSON).
        """
        unknown = set(record) - set(LOG_FIELDS)
        if unknown:
            raise ValueError(f"unknown scan log fields {sorted(unknown)}")
        values = dict(record)
        for real in ("at", "latency_ms"):  # REAL columns: hash what will be read back
            if values.get(real) is not None:
                values[real] = float(values[real])
        if isinstance(values.get("data"), dict):
            values["data"] = json.dumps(values["data"], sort_keys=True)
        with self._transaction() as conn:
            last = conn.execute(
                "SELECT seq, hash FROM scan_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            values["seq"] = seq
            values["prev_hash"] = prev
            values["hash"] = record_hash(prev, values)
            columns = ", ".join(values)
            conn.execute(
                f"INSERT INTO scan_log ({columns}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            return seq

    def log_records(self, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Scan log records with seq > ``after_seq``, oldest first, hashes included."""
        names = ("seq", *LOG_FIELDS, "prev_hash", "hash")
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {', '.join(names)} FROM scan_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def prune_log(self, *, older_than: float | None, keep_after_seq: int, chunk: int = 5000) -> int:
        """Delete scan log records the collector has acknowledged (seq <= ``keep_after_seq``)
        and, if ``older_than`` is given, only those logged before it; oldest first, a chunk per
        transaction. Unacknowledged records are never deleted. Returns how many went."""
        total = 0
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM scan_log WHERE seq IN (SELECT seq FROM scan_log WHERE seq <= ? "
                    "AND (? IS NULL OR at < ?) ORDER BY seq LIMIT ?)",
                    (keep_after_seq, older_than, older_than, chunk),
                ).rowcount
            total += deleted
            if deleted < chunk:
                return total

    def disk_usage(self) -> int:
        """Bytes in use: the database's pages less its free ones (SQLite reuses those), plus
        the WAL file."""
        with self._transaction("DEFERRED") as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        return (pages - free) * page_size + (wal.stat().st_size if wal.exists() else 0)

    def unsynced_count(self, acked_seq: int) -> int:
        with self._transaction("DEFERRED") as conn:
            return conn.execute(
                "SELECT count(*) FROM scan_log WHERE seq > ?", (acked_seq,)
            ).fetchone()[0]

    def sync_value(self, name: str, default: Any = None) -> Any:
        with self._transaction("DEFERRED") as conn:
            row = conn.execute("SELECT value FROM sync_state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def set_sync_value(self, name: str, value: Any) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sync_state (name, value) VALUES (?, ?)", (name, value)
            )

    def query_log(
        self,
        *,
        after_seq: int = 0,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Scan log records matching every filter given (times are Unix seconds, ``until``
        exclusive), oldest first unless ``newest_first``."""
        clauses, params = ["seq > ?"], [after_seq]
        for column, operator, value in (
            ("at", ">=", since),
            ("at", "<", until),
            ("kind", "=", kind),
            ("decision", "=", decision),
            ("reason", "=", reason),
        ):
            if value is not None:
                clauses.append(f"{column} {operator} ?")
                params.append(value)
        order = "DESC" if newest_first else "ASC"
        with self._transaction("DEFERRED") as conn:
            cursor = conn.execute(
                f"SELECT seq, {', '.join(LOG_FIELDS)} FROM scan_log "
                f"WHERE {' AND '.join(clauses)} ORDER BY seq {order} LIMIT ?",
                (*params, limit),
            )
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def recent_log(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest scan log records, newest first."""
        return self.query_log(limit=limit, newest_first=True)

    def admission_count(self) -> int:
        with self._transaction("DEFERRED") as conn:
            return conn.execute("SELECT count(*) FROM admission").fetchone()[0]

    # Revocations -----------------------------------------------------------------------------

    _REVOKED_BY = (
        "SELECT CASE "
        "WHEN EXISTS (SELECT 1 FROM revoked_ticket WHERE generation = "
        "(SELECT generation FROM revocation_state WHERE id = 1) AND kid = ? AND cti = ?) "
        "THEN 'ticket' "
        "WHEN EXISTS (SELECT 1 FROM revoked_key WHERE generation = "
        "(SELECT generation FROM revocation_state WHERE id = 1) AND public_key = ?) "
        "THEN 'key' END"
    )

    def revoked_by(self, kid: bytes, cti: bytes, public_key: bytes) -> str | None:
        """``"ticket"`` when (kid, cti) is revoked, ``"key"`` when the issuer key is, else None."""
        with self._lock:
            try:
                return self._conn.execute(self._REVOKED_BY, (kid, cti, public_key)).fetchone()[0]
            except sqlite3.Error as err:
                raise StoreError(f"gate database {self.path}: {err}") from err

    def is_revoked(self, kid: bytes, cti: bytes, public_key: bytes) -> bool:
        """True when the ticket (kid, cti) or the whole issuer key is revoked."""
        return self.revoked_by(kid, cti, public_key) is not None

    def revocation_state(self) -> RevocationState:
        with self._transaction("DEFERRED") as conn:
            row = conn.execute(
                "SELECT version, issued_at, imported_at, tickets, keys "
                "FROM revocation_state WHERE id = 1"
            ).fetchone()
        return RevocationState(*row) if row else RevocationState(None, None, None, 0, 0)

    def _current(self, conn: sqlite3.Connection) -> tuple[int | None, int]:
        row = conn.execute(
            "SELECT version, generation FROM revocation_state WHERE id = 1"
        ).fetchone()
        return (row[0], row[1]) if row else (None, 0)

    def _check_held(self, conn: sqlite3.Connection, expect_version: int | None) -> int:
        held, generation = self._current(conn)
        if held != expect_version:
            raise StoreError(
                f"revocation list changed during import (now version {held}); try again"
            )
        return generation

    def _delete_generations(self, keep: int, chunk: int) -> None:
        """Delete revocation rows of every generation but ``keep``, a chunk per transaction.

        Generations are found with min()/max() on the primary key, so a list of millions of
        current rows is never scanned.
        """
        for table, key in (("revoked_ticket", "kid, cti"), ("revoked_key", "public_key")):
            while True:
                with self._transaction("DEFERRED") as conn:
                    low, high = conn.execute(
                        f"SELECT min(generation), max(generation) FROM {table}"
                    ).fetchone()
                stale = next((g for g in (low, high) if g is not None and g != keep), None)
                if stale is None:
                    break
                with self._transaction() as conn:
                    conn.execute(
                        f"DELETE FROM {table} WHERE (generation, {key}) IN "
                        f"(SELECT generation, {key} FROM {table} WHERE generation = ? LIMIT ?)",
                        (stale, chunk),
                    )

    _STAGE_SQL: ClassVar[dict[str, str]] = {
        "revoked_ticket": "INSERT OR IGNORE INTO revoked_ticket (generation, kid, cti) "
        "VALUES (?, ?, ?)",
        "revoked_key": "INSERT OR IGNORE INTO revoked_key (generation, public_key) VALUES (?, ?)",
    }

    def _stage(self, table: str, rows: Iterable[tuple], generation: int, chunk: int) -> int:
        """Insert rows under ``generation``, a chunk per transaction; returns rows added."""
        total = 0
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, chunk)):
            with self._transaction() as conn:
                cursor = conn.executemany(
                    self._STAGE_SQL[table], ((generation, *row) for row in batch)
                )
                total += cursor.rowcount
        return total

    def replace_revocations(
        self,
        version: int,
        issued_at: int | None,
        tickets: Iterable[tuple[bytes, bytes]],
        keys: Iterable[bytes],
        *,
        base: int | None = None,
        remove_tickets: Iterable[tuple[bytes, bytes]] = (),
        remove_keys: Iterable[bytes] = (),
        expect_version: int | None = None,
        chunk: int = 50_000,
    ) -> None:
        """Apply a revocation list.

        With ``base`` None the list is full: it is staged under a new generation in
        transactions of ``chunk`` rows while the held list stays in force, then made current
        in one transaction. Otherwise it is a delta applied on the held list in one
        transaction. ``expect_version`` guards against another import having landed since the
        caller looked: it must still be the held version when the new list becomes current.
        """
        with self._import_lock():
            if base is not None:
                self._apply_delta(
                    version, issued_at, tickets, keys, remove_tickets, remove_keys, expect_version
                )
                return
            with self._transaction() as conn:
                current = self._check_held(conn, expect_version)
            self._delete_generations(keep=current, chunk=chunk)  # leftovers of a failed import
            staged = current + 1
            try:
                ticket_count = self._stage("revoked_ticket", tickets, staged, chunk)
                key_count = self._stage("revoked_key", ((k,) for k in keys), staged, chunk)
                with self._transaction() as conn:
                    self._check_held(conn, expect_version)
                    conn.execute(
                        "INSERT OR REPLACE INTO revocation_state (id, version, issued_at, "
                        "imported_at, generation, tickets, keys) VALUES (1, ?, ?, ?, ?, ?, ?)",
                        (version, issued_at, time.time(), staged, ticket_count, key_count),
                    )
            finally:
                with self._transaction() as conn:
                    _, current = self._current(conn)
                self._delete_generations(keep=current, chunk=chunk)
                self._checkpoint()

    def _apply_delta(
        self, version, issued_at, tickets, keys, remove_tickets, remove_keys, expect_version
    ) -> None:
        with self._transaction() as conn:
            generation = self._check_held(conn, expect_version)
            removed_tickets = conn.executemany(
                "DELETE FROM revoked_ticket WHERE generation = ? AND kid = ? AND cti = ?",
                ((generation, kid, cti) for kid, cti in remove_tickets),
            ).rowcount
            removed_keys = conn.executemany(
                "DELETE FROM revoked_key WHERE generation = ? AND public_key = ?",
                ((generation, key) for key in remove_keys),
            ).rowcount
            added_tickets = conn.executemany(
                "INSERT OR IGNORE INTO revoked_ticket (generation, kid, cti) VALUES (?, ?, ?)",
                ((generation, kid, cti) for kid, cti in tickets),
            ).rowcount
            added_keys = conn.executemany(
                "INSERT OR IGNORE INTO revoked_key (generation, public_key) VALUES (?, ?)",
                ((generation, key) for key in keys),
            ).rowcount
            conn.execute(
                "UPDATE revocation_state SET version = ?, issued_at = ?, imported_at = ?, "
                "tickets = tickets + ?, keys = keys + ? WHERE id = 1",
                (
                    version,
                    issued_at,
                    time.time(),
                    max(added_tickets, 0) - max(removed_tickets, 0),
                    max(added_keys, 0) - max(removed_keys, 0),
                ),
            )

    @contextmanager
    def _import_lock(self) -> Iterator[None]:
        """One revocation import at a time across processes (a lock file beside the database)."""
        with open(self.path.with_name(self.path.name + ".import-lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it after a large import."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as err:
                raise StoreError(f"gate database {self.path}: {err}") from err
