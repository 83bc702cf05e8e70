"""The collector's database: SQLite by default, PostgreSQL by URL. All SQL lives here.

One interface, :class:`CollectorStore`, two backends chosen by :func:`open_store`:

- ``sqlite:///path/collector.db`` or a plain path: SQLite in WAL mode with
  ``synchronous=FULL``, because an acknowledged batch must survive a power cut (the gate may
  rely on the ack). One connection, serialised by a lock; writes take ``BEGIN IMMEDIATE``.
- ``postgresql://...`` (or ``postgres://``): psycopg 3, one connection per store, with
  PostgreSQL's default durable commits. Ingest transactions take an advisory lock so that the
  scans' ``received_id`` grows in commit order and an office cursor never skips a row that a
  slower transaction commits later.

Both run the same named migrations (recorded in ``migrations``, as ``gate/store.py`` does) and
the same statements, written with ``?`` placeholders and translated for psycopg. A database
error is raised as :class:`gate.errors.StoreError`.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from gate.errors import RollbackError, StoreError
from gate.scanlog import GENESIS
from sync.collector.chain import OK, BatchOutcome, plan_batch
from sync.collector.records import WIRE_FIELDS, content_matches_hash

NONCE_PURGE_INTERVAL = 60.0
INGEST_LOCK_KEY = 0x6761746573636E73  # pg_advisory_xact_lock key: "gatescns"

SCAN_COLUMNS = ("gate_id", *WIRE_FIELDS, "received_id", "received_at")
GATE_COLUMNS = (
    "gate_id",
    "public_key",
    "enrolled_at",
    "last_seen",
    "last_seq",
    "last_hash",
    "backlog",
    "reported_seq",
    "clock_offset",
    "chain_status",
    "health",
)
DOCUMENT_COLUMNS = ("kind", "version", "base", "issued_at", "data", "published_at")


@dataclass(frozen=True)
class Dialect:
    """The few words in which SQLite and PostgreSQL differ."""

    name: str
    blob: str
    real: str
    integer: str

    def ddl(self, template: str) -> str:
        return template.format(blob=self.blob, real=self.real, int=self.integer)


SQLITE = Dialect("sqlite", blob="BLOB", real="REAL", integer="INTEGER")
POSTGRES = Dialect("postgresql", blob="BYTEA", real="DOUBLE PRECISION", integer="BIGINT")


# Named migrations, applied in order and recorded in `migrations`. Never edit one that has
# shipped: add the next.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "001_initial",
        (
            "CREATE TABLE gates (gate_id TEXT PRIMARY KEY, public_key {blob} NOT NULL, "
            "enrolled_at {real} NOT NULL, last_seen {real}, last_seq {int} NOT NULL DEFAULT 0, "
            "last_hash {blob} NOT NULL, backlog {int}, reported_seq {int}, clock_offset {real}, "
            "chain_status TEXT NOT NULL DEFAULT 'ok', health TEXT)",
            "CREATE TABLE scans (gate_id TEXT NOT NULL, seq {int} NOT NULL, at {real} NOT NULL, "
            "kind TEXT NOT NULL, source TEXT, decision TEXT, reason TEXT, detail TEXT, "
            "kid {blob}, cti {blob}, admission_seq {int}, latency_ms {real}, data TEXT, "
            "prev_hash {blob} NOT NULL, hash {blob} NOT NULL, received_id {int} NOT NULL, "
            "received_at {real} NOT NULL, PRIMARY KEY (gate_id, seq))",
            "CREATE UNIQUE INDEX scans_received ON scans (received_id)",
            "CREATE INDEX scans_gate_received ON scans (gate_id, received_id)",
            "CREATE TABLE nonces (gate_id TEXT NOT NULL, nonce TEXT NOT NULL, "
            "expires_at {int} NOT NULL, PRIMARY KEY (gate_id, nonce))",
            "CREATE INDEX nonces_expiry ON nonces (expires_at)",
            "CREATE TABLE documents (kind TEXT NOT NULL, version {int} NOT NULL, base {int}, "
            "issued_at {int}, data {blob} NOT NULL, published_at {real} NOT NULL, "
            "PRIMARY KEY (kind, version))",
            "CREATE INDEX documents_base ON documents (kind, base)",
        ),
    ),
)


class AlreadyEnrolled(StoreError):
    """The gate id is enrolled with another public key."""


class UnknownGate(StoreError):
    """No gate is enrolled under that id."""


@dataclass(frozen=True)
class StoredDocument:
    """A published trust bundle or revocation list, as signed by the office."""

    kind: str
    version: int
    base: int | None
    issued_at: int | None
    data: bytes
    published_at: float


class CollectorStore(ABC):
    """The collector's state: enrolled gates, their scans, nonces and published documents."""

    dialect: Dialect
    url: str

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._next_purge = 0.0
        self._sql_cache: dict[str, str] = {}

    # Backend hooks -------------------------------------------------------------------------

    @abstractmethod
    def _begin(self, write: bool) -> Any:
        """Open a transaction; return a connection-like object with ``execute``."""
        ...

    @abstractmethod
    def _commit(self, conn: Any) -> None: ...

    @abstractmethod
    def _rollback(self, conn: Any) -> None: ...

    @abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]: ...

    def _sql(self, text: str) -> str:
        return text

    @abstractmethod
    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> CollectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[_Session]:
        with self._lock:
            try:
                conn = self._begin(write)
                try:
                    yield _Session(self, conn)
                except BaseException:
                    self._rollback(conn)
                    raise
                self._commit(conn)
            except self._errors() as err:
                raise StoreError(
                    f"collector database ({self.dialect.name}): {_one_line(err)}"
                ) from err

    def _migrate(self) -> None:
        with self._transaction() as db:
            if self.dialect is POSTGRES:
                db.execute("SELECT pg_advisory_xact_lock(?)", (INGEST_LOCK_KEY,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, "
                + self.dialect.ddl("applied_at {real} NOT NULL)")
            )
            done = {row[0] for row in db.execute("SELECT name FROM migrations").fetchall()}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                for statement in statements:
                    db.execute(self.dialect.ddl(statement))
                db.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
                )

    def migrations(self) -> list[str]:
        """The names of the applied migrations, in order."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT name FROM migrations ORDER BY name").fetchall()
        return [row[0] for row in rows]

    # Gates ---------------------------------------------------------------------------------

    def enrol(
        self, gate_id: str, public_key: bytes, *, replace: bool = False, now: float | None = None
    ) -> str:
        """Enrol a gate's public key: ``"enrolled"``, ``"unchanged"`` or ``"replaced"``.

        Raises :class:`AlreadyEnrolled` when the gate holds another key and ``replace`` is
        false. Replacing the key keeps the gate's scans and chain position.
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            inserted = db.execute(
                "INSERT INTO gates (gate_id, public_key, enrolled_at, last_seq, last_hash, "
                "chain_status) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING",
                (gate_id, public_key, now, GENESIS, OK),
            ).rowcount
            if inserted == 1:
                return "enrolled"
            held = db.execute(
                "SELECT public_key FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
            if bytes(held[0]) == public_key:
                return "unchanged"
            if not replace:
                raise AlreadyEnrolled(
                    f"gate {gate_id!r} is enrolled with another public key; "
                    "replace it explicitly (?replace=1, --replace)"
                )
            db.execute(
                "UPDATE gates SET public_key = ?, enrolled_at = ? WHERE gate_id = ?",
                (public_key, now, gate_id),
            )
            return "replaced"

    def public_key_of(self, gate_id: str) -> bytes | None:
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT public_key FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def gates(self) -> list[dict[str, Any]]:
        """Every enrolled gate with what the collector knows of it, by gate id."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                f"SELECT {', '.join(GATE_COLUMNS)} FROM gates ORDER BY gate_id"
            ).fetchall()
        return [_gate_row(row) for row in rows]

    def gate(self, gate_id: str) -> dict[str, Any] | None:
        with self._transaction(write=False) as db:
            row = db.execute(
                f"SELECT {', '.join(GATE_COLUMNS)} FROM gates WHERE gate_id = ?", (gate_id,)
            ).fetchone()
        return _gate_row(row) if row else None

    def remember_nonce(self, gate_id: str, nonce: str, expires_at: int, now: float) -> bool:
        """Record a request's nonce (False if already seen) and mark the gate as seen.

        Expired nonces are purged now and then: a request that old is refused as stale anyway.
        """
        with self._transaction() as db:
            if now >= self._next_purge:
                db.execute("DELETE FROM nonces WHERE expires_at < ?", (int(now),))
                self._next_purge = now + NONCE_PURGE_INTERVAL
            fresh = db.execute(
                "INSERT INTO nonces (gate_id, nonce, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (gate_id, nonce, expires_at),
            ).rowcount
            if fresh == 1:
                db.execute("UPDATE gates SET last_seen = ? WHERE gate_id = ?", (now, gate_id))
        return fresh == 1

    def record_health(
        self,
        gate_id: str,
        *,
        backlog: int | None,
        reported_seq: int | None,
        clock_offset: float | None,
        health: str,
        now: float,
    ) -> None:
        """Store what a gate reported about itself."""
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE gates SET backlog = ?, reported_seq = ?, clock_offset = ?, health = ?, "
                "last_seen = ? WHERE gate_id = ?",
                (backlog, reported_seq, clock_offset, health, now, gate_id),
            ).rowcount
        if updated != 1:
            raise UnknownGate(f"gate {gate_id!r} is not enrolled")

    # Scans ---------------------------------------------------------------------------------

    def ingest(
        self, gate_id: str, records: Sequence[Mapping[str, Any]], now: float | None = None
    ) -> BatchOutcome:
        """Store a batch of consecutive records idempotently, checking the chain (chain.py).

        Every insert of the batch and the gate's new position commit in one transaction.
        """
        now = time.time() if now is None else now
        content_ok = [content_matches_hash(record) for record in records]
        with self._transaction() as db:
            if self.dialect is POSTGRES:
                db.execute("SELECT pg_advisory_xact_lock(?)", (INGEST_LOCK_KEY,))
            row = db.execute(
                "SELECT last_seq, last_hash, chain_status FROM gates WHERE gate_id = ?",
                (gate_id,),
            ).fetchone()
            if row is None:
                raise UnknownGate(f"gate {gate_id!r} is not enrolled")
            last_seq, last_hash, status = row[0], bytes(row[1]), row[2]
            held: dict[int, bytes] = {}
            if records and records[0]["seq"] <= last_seq:
                held = {
                    seq: bytes(digest)
                    for seq, digest in db.execute(
                        "SELECT seq, hash FROM scans WHERE gate_id = ? AND seq BETWEEN ? AND ?",
                        (gate_id, records[0]["seq"], min(records[-1]["seq"], last_seq)),
                    ).fetchall()
                }
            outcome = plan_batch(records, last_seq, last_hash, held, content_ok)
            if outcome.new_records:
                start = db.execute("SELECT COALESCE(MAX(received_id), 0) FROM scans").fetchone()[0]
                rows = [
                    (gate_id, *(record[name] for name in WIRE_FIELDS), start + number, now)
                    for number, record in enumerate(outcome.new_records, 1)
                ]
                db.executemany(
                    f"INSERT INTO scans ({', '.join(SCAN_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(SCAN_COLUMNS))})",
                    rows,
                )
                db.execute(
                    "UPDATE gates SET last_seq = ?, last_hash = ? WHERE gate_id = ?",
                    (outcome.acked_seq, outcome.last_hash, gate_id),
                )
            if outcome.problem and status == OK:
                # The first problem stays on record: it is where an investigation starts.
                db.execute(
                    "UPDATE gates SET chain_status = ? WHERE gate_id = ?",
                    (outcome.problem, gate_id),
                )
        return outcome

    def scans(
        self,
        *,
        after: int = 0,
        gate_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        decision: str | None = None,
        reason: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Scans in the order the collector received them, after ``received_id`` ``after``.

        ``since`` and ``until`` bound the record time ``at`` (since <= at < until).
        """
        where, params = ["received_id > ?"], [after]
        for clause, value in (
            ("gate_id = ?", gate_id),
            ("at >= ?", since),
            ("at < ?", until),
            ("decision = ?", decision),
            ("reason = ?", reason),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        with self._transaction(write=False) as db:
            rows = db.execute(
                f"SELECT {', '.join(SCAN_COLUMNS)} FROM scans WHERE {' AND '.join(where)} "
                "ORDER BY received_id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [dict(zip(SCAN_COLUMNS, row, strict=True)) for row in rows]

    def gate_records(self, gate_id: str, after_seq: int = 0, limit: int = 1000) -> list[dict]:
        """A gate's stored records by seq, for checking the held chain."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                f"SELECT {', '.join(SCAN_COLUMNS)} FROM scans WHERE gate_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (gate_id, after_seq, limit),
            ).fetchall()
        return [dict(zip(SCAN_COLUMNS, row, strict=True)) for row in rows]

    # Documents -----------------------------------------------------------------------------

    def publish(
        self,
        kind: str,
        version: int,
        base: int | None,
        issued_at: int | None,
        data: bytes,
        now: float | None = None,
    ) -> None:
        """Keep a verified document; it must be newer than every stored one of its kind.

        Raises :class:`gate.errors.RollbackError` otherwise.
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            if self.dialect is POSTGRES:
                db.execute("SELECT pg_advisory_xact_lock(?)", (INGEST_LOCK_KEY + 1,))
            newest = db.execute(
                "SELECT MAX(version) FROM documents WHERE kind = ?", (kind,)
            ).fetchone()[0]
            if newest is not None and version <= newest:
                raise RollbackError(
                    f"version {version} is not newer than the newest published one "
                    f"({newest}); publish a higher version"
                )
            db.execute(
                f"INSERT INTO documents ({', '.join(DOCUMENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, version, base, issued_at, data, now),
            )

    def next_revocations(self, kind: str, since: int) -> StoredDocument | None:
        """For a gate holding version ``since`` (0: none): the newest delta on it, else the
        newest full list newer than it, else None."""
        with self._transaction(write=False) as db:
            row = None
            if since > 0:
                row = db.execute(
                    f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM documents "
                    "WHERE kind = ? AND base = ? ORDER BY version DESC LIMIT 1",
                    (kind, since),
                ).fetchone()
            if row is None:
                row = db.execute(
                    f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM documents "
                    "WHERE kind = ? AND base IS NULL AND version > ? ORDER BY version DESC LIMIT 1",
                    (kind, since),
                ).fetchone()
        return _document(row) if row else None

    def newest_document(self, kind: str, newer_than: int = 0) -> StoredDocument | None:
        """The newest document of ``kind`` if its version is above ``newer_than``."""
        with self._transaction(write=False) as db:
            row = db.execute(
                f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM documents "
                "WHERE kind = ? AND version > ? ORDER BY version DESC LIMIT 1",
                (kind, newer_than),
            ).fetchone()
        return _document(row) if row else None

    def documents(self, kind: str) -> list[dict[str, Any]]:
        """What is published of ``kind``, without the document bytes."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT version, base, issued_at, published_at, LENGTH(data) FROM documents "
                "WHERE kind = ? ORDER BY version",
                (kind,),
            ).fetchall()
        names = ("version", "base", "issued_at", "published_at", "size")
        return [dict(zip(names, row, strict=True)) for row in rows]


class _Session:
    """One transaction's statements, with the backend's placeholders."""

    def __init__(self, store: CollectorStore, conn: Any) -> None:
        self._store = store
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._store._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._store._executemany(self._conn, self._store._sql(sql), rows)


def _gate_row(row: Sequence[Any]) -> dict[str, Any]:
    gate = dict(zip(GATE_COLUMNS, row, strict=True))
    gate["public_key"] = bytes(gate["public_key"]).hex()
    gate["last_hash"] = bytes(gate["last_hash"]).hex()
    return gate


def _document(row: Sequence[Any]) -> StoredDocument:
    kind, version, base, issued_at, data, published_at = row
    return StoredDocument(kind, version, base, issued_at, bytes(data), published_at)


class SqliteStore(CollectorStore):
    """The collector's state in one SQLite file (WAL, synchronous=FULL)."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged batch is on disk when the ack leaves; gates rely on it.
            self._conn.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"cannot open the collector database {self.path}: {err}") from err
        self._migrate()

    def _begin(self, write: bool) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        return self._conn

    def _commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _executemany(self, conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence]) -> None:
        conn.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresStore(CollectorStore):
    """The collector's state in a PostgreSQL database (psycopg 3)."""

    dialect = POSTGRES

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        super().__init__()
        import psycopg  # only needed for this backend

        self._psycopg = psycopg
        self.url = url
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        self._migrate()

    def _connect(self) -> Any:
        try:
            conn = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=self._connect_timeout
            )
            # An acknowledged batch must survive a server crash, whatever the server's default.
            conn.execute("SET synchronous_commit TO on")
            return conn
        except self._psycopg.Error as err:
            raise StoreError(
                f"cannot connect to the collector database {masked_url(self.url)}: {_one_line(err)}"
            ) from err

    def _begin(self, write: bool) -> Any:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        try:
            self._conn.execute("BEGIN")
        except self._psycopg.OperationalError:
            # The server restarted since the last request: one fresh connection, one retry.
            self._conn.close()
            self._conn = self._connect()
            self._conn.execute("BEGIN")
        return self._conn

    def _commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def _rollback(self, conn: Any) -> None:
        if not conn.closed and not conn.broken:
            conn.execute("ROLLBACK")

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)

    def _sql(self, text: str) -> str:
        cached = self._sql_cache.get(text)
        if cached is None:
            cached = self._sql_cache[text] = text.replace("?", "%s")
        return cached

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _one_line(err: BaseException) -> str:
    """Database drivers' messages span lines; our errors are one line."""
    return " ".join(str(err).split())


def masked_url(url: str) -> str:
    """A database URL fit to print: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@", 1)
    return re.sub(r"(password=)[^&]*", r"\1***", url)


def open_store(url: str) -> CollectorStore:
    """Open (and migrate) the database named by ``url``.

    ``postgresql://`` / ``postgres://`` URLs go to PostgreSQL; ``sqlite:///path`` or a plain
    path to SQLite.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    if scheme == "sqlite":
        # SQLAlchemy's reading: sqlite:///relative.db, sqlite:////absolute/path.db
        path = unquote(url[len("sqlite://") :]).removeprefix("/")
        if not path:
            raise StoreError(f"{url}: no database file named; write sqlite:///path/to/file.db")
        return SqliteStore(Path(path))
    if scheme:
        raise StoreError(f"{url}: unsupported database URL; use sqlite:///path or postgresql://...")
    return SqliteStore(Path(url))
