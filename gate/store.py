"""The gate's SQLite state: revocations and usage records. All SQLite access goes through here.

Durability: the connection runs in WAL mode with ``synchronous=FULL``, so every commit, and in
particular the admission written before an accept is returned, is on disk when ``COMMIT``
returns. Revocation imports are one transaction each: a gate holds the old list or the new one,
never half of either. Revoked tickets sit in a WITHOUT ROWID B-tree keyed by (kid, cti), so a
lookup is logarithmic in the size of the list.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from gate.errors import StoreError

DB_FILE_NAME = "gate.db"


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE revoked_ticket (kid BLOB NOT NULL, cti BLOB NOT NULL, "
        "PRIMARY KEY (kid, cti)) WITHOUT ROWID"
    )
    db.execute("CREATE TABLE revoked_key (public_key BLOB PRIMARY KEY) WITHOUT ROWID")
    db["revocation_state"].create(
        {"id": int, "version": int, "issued_at": int, "imported_at": float}, pk="id"
    )
    db["admission"].create(
        {
            "id": int,
            "kid": bytes,
            "cti": bytes,
            "product": str,
            "at": float,
            "gate_id": str,
            "gate_group": str,
            "annulled_at": float,
            "annul_reason": str,
        },
        pk="id",
        not_null={"kid", "cti", "product", "at", "gate_id", "gate_group"},
    )
    db["admission"].create_index(["kid", "cti", "at"], index_name="admission_ticket")


# Named migrations, applied in order and recorded in the `migrations` table.
MIGRATIONS = (("001_initial", _m001_initial),)


@dataclass(frozen=True)
class RevocationState:
    """What the gate knows about its revocation list."""

    version: int | None
    issued_at: int | None
    imported_at: float | None
    tickets: int
    keys: int


class UsageView:
    """Reads of the usage records, inside a transaction opened by :class:`GateStore`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def admissions(self, kid: bytes, cti: bytes) -> int:
        """How many admissions of this ticket stand (annulled ones do not count)."""
        row = self._conn.execute(
            "SELECT count(*) FROM admission WHERE kid = ? AND cti = ? AND annulled_at IS NULL",
            (kid, cti),
        ).fetchone()
        return row[0]

    def last_admission(self, kid: bytes, cti: bytes, group: str) -> float | None:
        """Time of this ticket's latest standing admission in an anti-passback group."""
        row = self._conn.execute(
            "SELECT max(at) FROM admission WHERE kid = ? AND cti = ? AND gate_group = ? "
            "AND annulled_at IS NULL",
            (kid, cti, group),
        ).fetchone()
        return row[0]


class UsageTransaction(UsageView):
    """Reads and the admission write of one decision, committed together."""

    def record_admission(
        self, kid: bytes, cti: bytes, product: str, at: float, gate_id: str, group: str
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO admission (kid, cti, product, at, gate_id, gate_group) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (kid, cti, product, at, gate_id, group),
        )
        return cursor.lastrowid


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
            self._migrate()
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

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute(f"BEGIN {mode}")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise StoreError(f"gate database {self.path}: {err}") from err

    # Usage records ---------------------------------------------------------------------------

    @contextmanager
    def usage_transaction(self) -> Iterator[UsageTransaction]:
        """A write transaction for one decision: checks and the admission commit together."""
        with self._transaction("IMMEDIATE") as conn:
            yield UsageTransaction(conn)

    @contextmanager
    def usage_snapshot(self) -> Iterator[UsageView]:
        """A read-only view of the usage records, for dry runs."""
        with self._transaction("DEFERRED") as conn:
            yield UsageView(conn)

    def admission_count(self) -> int:
        with self._transaction("DEFERRED") as conn:
            return conn.execute("SELECT count(*) FROM admission").fetchone()[0]

    # Revocations -----------------------------------------------------------------------------

    def revoked_by(self, kid: bytes, cti: bytes, public_key: bytes) -> str | None:
        """``"ticket"`` when (kid, cti) is revoked, ``"key"`` when the issuer key is, else None."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT CASE "
                    "WHEN EXISTS (SELECT 1 FROM revoked_ticket WHERE kid = ? AND cti = ?) "
                    "THEN 'ticket' "
                    "WHEN EXISTS (SELECT 1 FROM revoked_key WHERE public_key = ?) THEN 'key' END",
                    (kid, cti, public_key),
                ).fetchone()
            except sqlite3.Error as err:
                raise StoreError(f"gate database {self.path}: {err}") from err
        return row[0]

    def is_revoked(self, kid: bytes, cti: bytes, public_key: bytes) -> bool:
        """True when the ticket (kid, cti) or the whole issuer key is revoked."""
        return self.revoked_by(kid, cti, public_key) is not None

    def revocation_state(self) -> RevocationState:
        with self._transaction("DEFERRED") as conn:
            row = conn.execute(
                "SELECT version, issued_at, imported_at FROM revocation_state WHERE id = 1"
            ).fetchone() or (None, None, None)
            tickets = conn.execute("SELECT count(*) FROM revoked_ticket").fetchone()[0]
            keys = conn.execute("SELECT count(*) FROM revoked_key").fetchone()[0]
        return RevocationState(row[0], row[1], row[2], tickets, keys)

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
    ) -> None:
        """Apply a revocation list in one transaction.

        With ``base`` None the list is full and replaces everything held; otherwise it is a
        delta applied on top of the held list. ``expect_version`` guards against another
        import having landed since the caller looked (it must still be the held version).
        """
        with self._transaction("IMMEDIATE") as conn:
            row = conn.execute("SELECT version FROM revocation_state WHERE id = 1").fetchone()
            held = row[0] if row else None
            if held != expect_version:
                raise StoreError(
                    f"revocation list changed during import (now version {held}); try again"
                )
            if base is None:
                conn.execute("DELETE FROM revoked_ticket")
                conn.execute("DELETE FROM revoked_key")
            else:
                conn.executemany(
                    "DELETE FROM revoked_ticket WHERE kid = ? AND cti = ?", remove_tickets
                )
                conn.executemany(
                    "DELETE FROM revoked_key WHERE public_key = ?", ((k,) for k in remove_keys)
                )
            conn.executemany(
                "INSERT OR IGNORE INTO revoked_ticket (kid, cti) VALUES (?, ?)", tickets
            )
            conn.executemany(
                "INSERT OR IGNORE INTO revoked_key (public_key) VALUES (?)", ((k,) for k in keys)
            )
            conn.execute(
                "INSERT OR REPLACE INTO revocation_state (id, version, issued_at, imported_at) "
                "VALUES (1, ?, ?, ?)",
                (version, issued_at, time.time()),
            )
