"""A real gate-collector for tests: uvicorn on 127.0.0.1, SQLite or a throwaway PostgreSQL.

Reusable by any test that needs a collector to talk to (the sync agent's tests too)::

    from collector_fixtures import GateClient, chain_records, running_collector

    def test_upload(tmp_path):
        gate = KeyPair.generate()
        with running_collector(tmp_path, root_public_key=root.public_key) as collector:
            collector.enrol("north-01", gate.public_key)
            client = collector.gate_client("north-01", gate)
            assert client.push(chain_records(10)).json()["acked_seq"] == 10
            collector.kill()      # SIGKILL, as a crash or power cut would
            collector.start()     # same port, same database
            assert collector.gates()[0]["last_seq"] == 10

``mode="subprocess"`` (the default) runs ``python -m sync.collector serve`` so that
:meth:`RunningCollector.kill` can SIGKILL it; ``mode="thread"`` runs uvicorn in a thread of
the test process, which starts in a few milliseconds (no :meth:`kill`). ``backend=
"postgresql"`` uses ``postgres=`` (a :class:`PostgresCluster`), ``database_url=``, or else
starts its own cluster for the duration; see :func:`postgres_unavailable` for when it cannot.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from gate.scanlog import GENESIS, record_hash
from keys.keyfile import KeyPair
from sync.signing import sign_request

ROOT_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
DEFAULT_TOKEN = "office-test-token"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- scan records as a gate makes them -----------------------------------------------------------


def chain_records(
    count: int,
    start_seq: int = 1,
    prev_hash: bytes = GENESIS,
    at: float = 1_795_600_000.0,
    **fields: Any,
) -> list[dict[str, Any]]:
    """``count`` hash-chained scan records as the gate's ``GateStore.log_records`` gives them
    (bytes for kid, cti and hashes). ``fields`` override every record's fields; a callable
    value is called with the seq."""
    records, prev = [], prev_hash
    for seq in range(start_seq, start_seq + count):
        record: dict[str, Any] = {
            "seq": seq,
            "at": at + seq * 0.5,
            "kind": "decision",
            "source": "camera",
            "decision": "accept" if seq % 3 else "reject",
            "reason": "ok" if seq % 3 else "revoked",
            "detail": f"scan {seq}",
            "kid": bytes.fromhex("21fe31dfa154a261"),
            "cti": seq.to_bytes(16, "big"),
            "admission_seq": 1 if seq % 3 else None,
            "latency_ms": 12.5,
            "data": json.dumps({"product": "single", "zone": "A"}, sort_keys=True),
        }
        for name, value in fields.items():
            record[name] = value(seq) if callable(value) else value
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(prev, record)
        records.append(record)
    return records


def wire(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record in the upload's wire form: byte strings as hex."""
    return {
        name: value.hex() if isinstance(value, bytes) else value for name, value in record.items()
    }


def from_wire(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record from the office API back in the gate's form (hex to bytes), for verify_chain."""
    result = dict(record)
    for name in ("kid", "cti", "prev_hash", "hash"):
        if result.get(name) is not None:
            result[name] = bytes.fromhex(result[name])
    return result


# -- a gate talking to the collector -------------------------------------------------------------


class GateClient:
    """Signed requests from one gate (scheme GT-SYNC-1), as the sync agent makes them."""

    def __init__(self, base_url: str, gate_id: str, key: KeyPair, timeout: float = 30) -> None:
        self.gate_id = gate_id
        self.key = key
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def signed_headers(
        self, method: str, path: str, body: bytes = b"", now: float | None = None
    ) -> dict[str, str]:
        return sign_request(self.key.signing_key, self.gate_id, method, path, body, now=now)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> httpx.Response:
        """Sign and send; ``path`` is relative to /v1/gates/<gate_id> unless it starts with /v1."""
        if not path.startswith("/v1/"):
            path = f"/v1/gates/{self.gate_id}/{path.lstrip('/')}"
        signed = self.signed_headers(method, path, body, now=now)
        return self.http.request(method, path, content=body, headers={**signed, **(headers or {})})

    def push(self, records: list[Mapping[str, Any]], compress: bool = True) -> httpx.Response:
        """Upload records (gate form or wire form) as the protocol says: gzip JSON."""
        payload = json.dumps({"records": [wire(record) for record in records]}).encode()
        if not compress:
            return self.request("POST", "scans", payload, {"Content-Type": "application/json"})
        return self.request(
            "POST",
            "scans",
            gzip.compress(payload, 6),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    def revocations(self, since: int | None = None) -> httpx.Response:
        return self.request("GET", "revocations" + (f"?since={since}" if since is not None else ""))

    def trust_bundle(self, since: int | None = None) -> httpx.Response:
        return self.request(
            "GET", "trust-bundle" + (f"?since={since}" if since is not None else "")
        )

    def health(self, **report: Any) -> httpx.Response:
        report.setdefault("sent_at", time.time())
        body = json.dumps(report).encode()
        return self.request("POST", "health", body, {"Content-Type": "application/json"})


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Debian's newest installed PostgreSQL server binaries, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: (
            int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


def postgres_unavailable() -> str | None:
    """Why a throwaway PostgreSQL cannot run here, or None when it can."""
    if postgres_bin_dir() is None:
        return (
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb missing); "
            "run 'make setup' as root or 'sudo apt-get install postgresql'"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (needed to run PostgreSQL as postgres)"
    return None


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temporary directory, reachable by a unix socket
    there (no TCP). As root it runs as the ``postgres`` user: PostgreSQL refuses root."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        if self.bin is None:
            raise RuntimeError(postgres_unavailable())
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="collector-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        self._started = False
        self._shared: str | None = None
        self._lock = threading.Lock()

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresCluster:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "30",
            "-o", options, "start",
        )  # fmt: skip
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}&port={self.port}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = name or f"collector_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def fresh_url(self) -> str:
        """The URL of a new, empty schema in one shared database: as isolated as a database
        of its own for the collector (its tables live in the schema), and made in
        milliseconds rather than by copying a template database."""
        import psycopg

        with self._lock:
            if self._shared is None:
                self._shared = self.create_database("collector_tests")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self._shared, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self._shared}&options=-csearch_path%3D{schema}"

    def stop(self) -> None:
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self._started = False
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


# -- the collector -------------------------------------------------------------------------------


class RunningCollector:
    """A gate-collector on 127.0.0.1: ``url``, ``token``, office helpers, stop/start/kill."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        token: str,
        root_public_key: bytes | None,
        mode: str,
    ) -> None:
        if mode not in ("subprocess", "thread"):
            raise ValueError("mode is 'subprocess' or 'thread'")
        self.workdir = Path(workdir)
        self.database_url = database_url
        self.token = token
        self.root_public_key = root_public_key
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"collector-{self.port}.log"
        self.office = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self._process: subprocess.Popen | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._clients: list[GateClient] = []

    # lifecycle

    @property
    def running(self) -> bool:
        if self.mode == "subprocess":
            return self._process is not None and self._process.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start (or restart) on the same port and database; returns once it answers."""
        if self.running:
            raise RuntimeError("the collector is already running")
        if self.mode == "subprocess":
            self._start_process()
        else:
            self._start_thread()
        self._wait_until_ready()

    def _start_process(self) -> None:
        token_file = self.workdir / "collector.token"
        token_file.write_text(self.token)
        command = [
            sys.executable, "-m", "sync.collector", "serve", "--db", self.database_url,
            "--host", "127.0.0.1", "--port", str(self.port), "--token-file", str(token_file),
            "--log-level", "warning",
        ]  # fmt: skip
        if self.root_public_key is not None:
            command += ["--root-public-key", self.root_public_key.hex()]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT_DIR, stdout=log, stderr=subprocess.STDOUT
            )

    def _start_thread(self) -> None:
        import uvicorn

        from sync.collector.app import create_app
        from sync.collector.storage import open_store

        app = create_app(
            open_store(self.database_url), token=self.token, root_public_key=self.root_public_key
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"the collector exited while starting:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the collector did not answer within {START_TIMEOUT} s")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM / should_exit) and wait."""
        if self.mode == "subprocess" and self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        elif self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._thread = self._server = None

    def kill(self) -> None:
        """SIGKILL the server process, as a crash or power cut would (subprocess mode)."""
        if self.mode != "subprocess":
            raise RuntimeError("kill() needs mode='subprocess'")
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.stop()
        self.office.close()

    # office helpers

    def enrol(self, gate_id: str, public_key: bytes, replace: bool = False) -> dict[str, Any]:
        """Enrol a gate through the office API; the answer's JSON."""
        response = self.office.post(
            "/v1/office/gates" + ("?replace=1" if replace else ""),
            json={"gate_id": gate_id, "public_key": public_key.hex()},
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"enrol {gate_id}: {response.status_code} {response.text}")
        return response.json()

    def gates(self) -> list[dict[str, Any]]:
        response = self.office.get("/v1/office/gates")
        response.raise_for_status()
        return response.json()["gates"]

    def gate(self, gate_id: str) -> dict[str, Any]:
        return next(gate for gate in self.gates() if gate["gate_id"] == gate_id)

    def scans(self, limit: int = 10_000, **filters: Any) -> list[dict[str, Any]]:
        """Every scan matching ``filters`` (gate, since, until, decision, reason), all pages."""
        records, cursor = [], None
        while True:
            params = {k: v for k, v in filters.items() if v is not None} | {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            response = self.office.get("/v1/office/scans", params=params)
            response.raise_for_status()
            page = response.json()
            records += page["records"]
            cursor = page["next_cursor"]
            if not page["more"]:
                return records

    def publish(self, kind: str, document: bytes) -> httpx.Response:
        """POST a signed document; ``kind`` is "revocations" or "trust-bundles"."""
        return self.office.post(
            f"/v1/office/{kind}", content=document, headers={"Content-Type": "application/cose"}
        )

    def gate_client(self, gate_id: str, key: KeyPair) -> GateClient:
        client = GateClient(self.url, gate_id, key)
        self._clients.append(client)
        return client


@contextmanager
def running_collector(
    tmp_path: Path,
    backend: str = "sqlite",
    root_public_key: bytes | None = None,
    token: str = DEFAULT_TOKEN,
    *,
    mode: str = "subprocess",
    database_url: str | None = None,
    postgres: PostgresCluster | None = None,
) -> Iterator[RunningCollector]:
    """A started collector on a free port of 127.0.0.1, stopped afterwards.

    ``backend``: "sqlite" (a file in ``tmp_path``) or "postgresql" (a new database in
    ``postgres``, or at ``database_url``, or in a cluster started for the duration).
    """
    with ExitStack() as stack:
        if database_url is None:
            if backend == "sqlite":
                database_url = f"sqlite:///{Path(tmp_path) / 'collector.db'}"
            elif backend == "postgresql":
                if postgres is None:
                    reason = postgres_unavailable()
                    if reason:
                        raise RuntimeError(reason)
                    postgres = stack.enter_context(postgres_cluster())
                database_url = postgres.fresh_url()
            else:
                raise ValueError("backend is 'sqlite' or 'postgresql'")
        collector = RunningCollector(tmp_path, database_url, token, root_public_key, mode)
        stack.callback(collector.close)
        collector.start()
        yield collector
