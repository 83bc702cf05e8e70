"""Benchmark of store-and-forward sync (not a test).

Prints, beside their targets:

(a) **An offline week's backlog.** A gate whose scan log holds 1,000,000 records that were
    never sent reconnects: a real :class:`~sync.agent.SyncAgent` (in a thread, as ``gated``
    runs it) uploads them to a real ``gate-collector`` (a subprocess, on SQLite with
    ``synchronous=FULL``). The time from the agent's start until its ``acked_seq`` is
    1,000,000; target at most 60 s. Per batch: median and p99 of the request, and where the
    agent's time went (reading the log, JSON, gzip, the request, writing ``acked_seq``).
(b) **Collector ingest.** Batches of 1,000 records, gzip JSON as the agent encodes them,
    pushed over HTTP one after the other by the agent's own signed client
    (:class:`~sync.client.CollectorClient`) to ``gate-collector`` on SQLite and on PostgreSQL;
    records/s, median and p99 per batch; target at least 20,000 records/s on SQLite. Then the
    storage alone (``CollectorStore.ingest`` in this process, same batches) and the
    collector's CPU work per batch outside the database (gunzip, JSON and field checks, hash
    checks, the nonce write).

The backlog is built once and cached in ``.cache/bench/sync-backlog-1m.db``; each run copies it
into a temporary directory beside it (same filesystem, so fsync costs what it costs on the
disk) and deletes the copy afterwards. PostgreSQL is a throwaway cluster with PostgreSQL's
durable defaults (``fsync=on``, ``synchronous_commit=on``), unlike the tests' cluster.

    .venv/bin/python bench/sync.py                      # everything: 1M backlog, 200 batches
    .venv/bin/python bench/sync.py --quick              # 100k backlog, 30 batches
    .venv/bin/python bench/sync.py --parts ingest --backends sqlite --batches 500
    .venv/bin/python bench/sync.py --parts backlog --batch-sizes 500,1000
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and there "sync" is this
# file (bench/sync.py), not the package: take the directory off before importing the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import httpx  # noqa: E402

import sync.agent  # noqa: E402
from gate.scanlog import GENESIS, record_hash, verify_chain  # noqa: E402
from gate.store import LOG_FIELDS, GateStore  # noqa: E402
from keys.keyfile import KeyPair  # noqa: E402
from sync.agent import SCAN_FIELDS, SyncAgent, encode_batch  # noqa: E402
from sync.client import CollectorClient  # noqa: E402
from sync.collector.records import (  # noqa: E402
    MAX_DECOMPRESSED_BYTES,
    content_matches_hash,
    decode_body,
    parse_batch,
)
from sync.collector.storage import open_store  # noqa: E402
from sync.identity import provision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache" / "bench"
SEED = "gate-bench-sync"
# Bump when the way records are generated changes: it is checked against the cached file.
GENERATOR_FORMAT = 1
GATE_ID = "bench-gate"
TOKEN = "bench-office-token"
WEEK_END = 1_795_564_800.0  # 2026-11-25 00:00 UTC: the backlog is the week before
BUILD_CHUNK = 50_000
INGEST_BATCH = 1000
WARMUP_BATCHES = 5

BACKLOG_TARGET_S = 60.0
INGEST_TARGET_RPS = 20_000


# Figures ---------------------------------------------------------------------------------------


def median_p99(samples: Sequence[float]) -> tuple[float, float]:
    """Median and nearest-rank p99 of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, -(-99 * len(ordered) // 100))  # ceil(0.99 n)
    return statistics.median(ordered), ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, httpx {httpx.__version__}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The backlog -----------------------------------------------------------------------------------

OUTCOMES = (
    ("accept", "ok", 70),
    ("reject", "used", 8),
    ("reject", "expired", 5),
    ("reject", "wrong_zone", 4),
    ("reject", "passback", 3),
    ("reject", "revoked", 3),
    ("reject", "malformed", 3),
    ("reject", "unknown_key", 2),
    ("reject", "bad_signature", 2),
)
KIDS = (bytes.fromhex("21fe31dfa154a261"), bytes.fromhex("9c0b7d44c2e2a1f3"))
SOURCES = ("camera", "camera", "serial", "nfc")


def backlog_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` scan log rows as ``GateStore.append_log`` stores them (same value types, same
    JSON for ``data``, same hash chain), spread over the week before WEEK_END."""
    rng = random.Random(SEED)
    weights = [o[2] for o in OUTCOMES]
    step = 7 * 86400 / count
    prev = GENESIS
    names = ("seq", *LOG_FIELDS)
    for seq in range(1, count + 1):
        at = WEEK_END - 7 * 86400 + seq * step + rng.random() * step
        if rng.random() < 0.01:
            values: dict[str, Any] = {
                "at": at,
                "kind": "device",
                "source": rng.choice(SOURCES),
                "detail": rng.choice(("ok", "no frame for 2 s", "reopened")),
            }
        else:
            decision, reason, _ = rng.choices(OUTCOMES, weights)[0]
            readable = reason != "malformed"
            values = {
                "at": at,
                "kind": "decision",
                "source": rng.choice(SOURCES),
                "decision": decision,
                "reason": reason,
                "detail": "admitted" if decision == "accept" else f"ticket refused: {reason}",
                "kid": rng.choice(KIDS) if readable else None,
                "cti": rng.randbytes(16) if readable else None,
                "admission_seq": rng.randint(1, 3) if decision == "accept" else None,
                "latency_ms": float(round(rng.uniform(0.3, 45.0), 3)),
                "data": (
                    json.dumps({"key": "metro", "product": "single"}, sort_keys=True)
                    if readable
                    else None
                ),
            }
        values["seq"] = seq
        digest = record_hash(prev, values)
        yield (*(values.get(name) for name in names), prev, digest)
        prev = digest


def backlog_path(count: int) -> Path:
    label = f"{count // 1_000_000}m" if count % 1_000_000 == 0 else f"{count // 1000}k"
    return CACHE_DIR / f"sync-backlog-{label}.db"


def backlog_is_usable(path: Path, count: int) -> bool:
    """The cached file holds exactly the ``count`` records this generator makes, none acked."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            held = conn.execute("SELECT count(*), max(seq) FROM scan_log").fetchone()
            acked = conn.execute("SELECT count(*) FROM sync_state").fetchone()[0]
            fmt = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return held == (count, count) and acked == 0 and fmt == GENERATOR_FORMAT


def build_backlog(path: Path, count: int) -> None:
    """Write the backlog file: the gate's schema by GateStore, the rows in big transactions
    (append_log's one durable commit per record would take minutes for nothing), then the
    whole chain read back through GateStore.log_records and verified."""
    started = time.perf_counter()
    building = path.with_name(path.name + ".building")
    for stale in (building, *_sidecars(building)):
        stale.unlink(missing_ok=True)
    GateStore(building).close()  # schema and migrations, exactly the gate's
    conn = sqlite3.connect(building, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # a cache file: rebuilt if a crash leaves it short
    names = ("seq", *LOG_FIELDS, "prev_hash", "hash")
    insert = f"INSERT INTO scan_log ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    rows = backlog_rows(count)
    done = 0
    while done < count:
        chunk = list(itertools.islice(rows, BUILD_CHUNK))
        conn.execute("BEGIN")
        conn.executemany(insert, chunk)
        conn.execute("COMMIT")
        done += len(chunk)
        if sys.stdout.isatty():
            print(f"  building {path.name}: {done:,} / {count:,}", end="\r", flush=True)
    conn.execute(f"PRAGMA user_version={GENERATOR_FORMAT}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    written = time.perf_counter() - started
    with GateStore(building) as store:  # what the agent will read, checked end to end
        prev, seq = GENESIS, 0
        while page := store.log_records(seq, 10_000):
            problem = verify_chain(page, prev, seq)
            if problem:
                raise SystemExit(f"the backlog just built is broken: {problem}")
            prev, seq = page[-1]["hash"], page[-1]["seq"]
    if seq != count:
        raise SystemExit(f"the backlog just built ends at {seq}, not {count}")
    building.rename(path)
    print(
        f"  built {path.name}: {count:,} records, {path.stat().st_size / 1e6:.0f} MB in "
        f"{written:.1f} s, chain verified through GateStore in "
        f"{time.perf_counter() - started - written:.1f} s"
    )


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def cached_backlog(count: int) -> Path:
    path = backlog_path(count)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if not backlog_is_usable(path, count):
        build_backlog(path, count)
    return path


# A collector in a subprocess -------------------------------------------------------------------


class Collector:
    """``python -m sync.collector serve`` on 127.0.0.1, as it runs in production."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = workdir / "office.token"
        token_file.write_text(TOKEN)
        self.log_path = workdir / f"collector-{self.port}.log"
        command = [
            sys.executable, "-m", "sync.collector", "serve", "--db", db_url, "--host",
            "127.0.0.1", "--port", str(self.port), "--token-file", str(token_file),
            "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        self.office = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the collector exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if self.office.get("/openapi.json").status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the collector did not start within 30 s")
            time.sleep(0.05)

    def enrol(self, gate_id: str, public_key: bytes) -> None:
        answer = self.office.post(
            "/v1/office/gates", json={"gate_id": gate_id, "public_key": public_key.hex()}
        )
        answer.raise_for_status()

    def gate(self, gate_id: str) -> dict[str, Any]:
        answer = self.office.get("/v1/office/gates")
        answer.raise_for_status()
        return next(g for g in answer.json()["gates"] if g["gate_id"] == gate_id)

    def close(self) -> None:
        self.office.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Postgres:
    """A throwaway PostgreSQL cluster with the durable defaults, reachable by a unix socket.
    As root it runs as ``postgres`` (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)")
        self.bin = found[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-sync-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = str(self.dir / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=''"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")
        self.version = subprocess.run(
            [str(self.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def new_database(self) -> str:
        import psycopg

        name = f"bench_{random.getrandbits(40):x}"
        url = f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return url.replace("/postgres?", f"/{name}?")

    def close(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# (a) the backlog upload ------------------------------------------------------------------------


class PhaseTimes:
    """Wall time spent in named calls, wrapped around the agent's own methods."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.samples: dict[str, list[float]] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        samples = self.samples.setdefault(name, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.total[name] += elapsed
                samples.append(elapsed)

        return timed


def upload_backlog(cached: Path, count: int, batch_size: int, run_dir: Path) -> dict[str, Any]:
    """One agent uploading the whole backlog to a fresh collector; figures of the run."""
    state_dir = run_dir / f"gate-{batch_size}"
    state_dir.mkdir()
    shutil.copyfile(cached, state_dir / "gate.db")
    device, _ = provision(state_dir)
    collector_dir = run_dir / f"collector-{batch_size}"
    collector_dir.mkdir()
    collector = Collector(f"sqlite:///{collector_dir / 'collector.db'}", collector_dir)
    phases = PhaseTimes()
    original_encode = sync.agent.encode_batch
    try:
        collector.enrol(GATE_ID, device.public_key)
        root = KeyPair.generate()  # no documents are published: the pulls answer 204
        agent = SyncAgent(
            state_dir,
            GATE_ID,
            collector.url,
            root.public_key,
            batch_size=batch_size,
            interval=0.5,
            timeout=(3.0, 30.0),
        )
        store, client = agent._store, agent._client
        store.log_records = phases.wrap("read the log", store.log_records)
        store.recent_log = phases.wrap("count the backlog", store.recent_log)
        store.sync_value = phases.wrap("read acked_seq", store.sync_value)
        store.set_sync_value = phases.wrap("write acked_seq", store.set_sync_value)
        sync.agent.encode_batch = phases.wrap("encode (JSON + gzip)", original_encode)
        client.request = phases.wrap("request", client.request)
        started = time.perf_counter()
        agent.start()
        next_report = started + 10
        while agent.status["acked_seq"] != count:
            time.sleep(0.01)
            now = time.perf_counter()
            if now > next_report:
                print(f"  ... {agent.status['acked_seq']:,} acked after {now - started:.0f} s")
                next_report += 10
            if now - started > 1800:
                raise SystemExit(f"not done after 30 minutes: {agent.status}")
        elapsed = time.perf_counter() - started
        agent.stop(timeout=10)
        held = collector.gate(GATE_ID)
        if (held["last_seq"], held["chain_status"]) != (count, "ok"):
            raise SystemExit(f"the collector holds {held['last_seq']}, {held['chain_status']}")
    finally:
        sync.agent.encode_batch = original_encode
        collector.close()
    batches = phases.samples["request"]
    scans = batches[: -(-count // batch_size)]  # the pull and health requests come after
    return {
        "batch_size": batch_size,
        "elapsed": elapsed,
        "phases": dict(phases.total),
        "requests": len(batches),
        "request_median_p99": median_p99(scans),
        "encode_median_p99": median_p99(phases.samples["encode (JSON + gzip)"]),
        "collector_db": collector_dir / "collector.db",
    }


def print_backlog(result: dict[str, Any], count: int) -> None:
    elapsed = result["elapsed"]
    if count == 1_000_000:
        target = f"target <= {BACKLOG_TARGET_S:.0f} s: {verdict(elapsed <= BACKLOG_TARGET_S)}"
    else:
        target = "(the target, 60 s, is for 1,000,000)"
    median, p99 = result["request_median_p99"]
    enc_median, enc_p99 = result["encode_median_p99"]
    print(
        f"  batch_size {result['batch_size']}: {count:,} records acknowledged in "
        f"{elapsed:.1f} s ({count / elapsed:,.0f} records/s); {target}"
    )
    print(
        f"    per batch: request (network + collector) median {ms(median)}, p99 {ms(p99)}; "
        f"encode median {ms(enc_median)}, p99 {ms(enc_p99)}"
    )
    accounted = sum(result["phases"].values())
    for name, seconds in sorted(result["phases"].items(), key=lambda item: -item[1]):
        print(f"    {name:<22} {seconds:7.1f} s  {100 * seconds / elapsed:5.1f} %")
    print(f"    {'other (the agent loop)':<22} {elapsed - accounted:7.1f} s")


class Stopwatch:
    """Per-name lists of durations, for work timed in place."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.times.setdefault(name, []).append(time.perf_counter() - started)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.times.items()}


def gate_side_split(cached: Path, batch_size: int, batches: int = 40) -> dict[str, float]:
    """Per batch, medians: the log read, the records to wire form (hex), JSON, and gzip at the
    agent's level (9, gzip.compress's default) and at 6 and 1, with the sizes."""
    watch = Stopwatch()
    sizes: dict[str, list[int]] = {}
    with GateStore(cached) as store:
        after = 0
        for _ in range(batches):
            with watch("read"):
                records = store.log_records(after, batch_size)
            after = records[-1]["seq"]
            with watch("to wire (hex)"):
                wire = [
                    {name: sync.agent._hex_bytes(record.get(name)) for name in SCAN_FIELDS}
                    for record in records
                ]
            with watch("json.dumps"):
                text = json.dumps({"records": wire}, separators=(",", ":"), allow_nan=False)
            raw = text.encode()
            sizes.setdefault("json.dumps", []).append(len(raw))
            for level in (9, 6, 1):
                with watch(f"gzip level {level}"):
                    body = gzip.compress(raw, level, mtime=0)
                sizes.setdefault(f"gzip level {level}", []).append(len(body))
    return {
        **watch.medians(),
        **{f"size {name}": statistics.median(values) for name, values in sizes.items()},
    }


def print_gate_split(split: dict[str, float], batch_size: int) -> None:
    print(f"  the agent's work per batch of {batch_size} (medians, measured alone):")
    names = ("read", "to wire (hex)", "json.dumps", "gzip level 9", "gzip level 6", "gzip level 1")
    for name in names:
        size = split.get(f"size {name}")
        extra = f"  -> {size / 1000:.0f} KB" if size else ""
        print(f"    {name:<16} {ms(split[name]):>9}{extra}")


# (b) collector ingest --------------------------------------------------------------------------


def ingest_batches(count: int, size: int = INGEST_BATCH) -> list[tuple[list[dict], bytes]]:
    """``count`` chained batches of ``size`` records: (records as the agent reads them, the
    gzip body the agent sends)."""
    names = ("seq", *LOG_FIELDS, "prev_hash", "hash")
    rows = backlog_rows(count * size)
    batches = []
    for _ in range(count):
        chunk = itertools.islice(rows, size)
        records = [dict(zip(names, row, strict=True)) for row in chunk]
        body, sent = encode_batch(records)
        assert sent == len(records)
        batches.append((records, body))
    return batches


def ingest_over_http(
    db_url: str, workdir: Path, batches: list[tuple[list[dict], bytes]]
) -> list[float]:
    """Push every batch with the agent's signed client; seconds per batch."""
    collector = Collector(db_url, workdir)
    key = KeyPair.generate()
    client = CollectorClient(collector.url, GATE_ID, key.signing_key, timeout=(3.0, 60.0))
    path = f"/v1/gates/{GATE_ID}/scans"
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    times = []
    try:
        collector.enrol(GATE_ID, key.public_key)
        for records, body in batches:
            started = time.perf_counter()
            reply = client.request("POST", path, body=body, headers=headers)
            times.append(time.perf_counter() - started)
            answer = json.loads(reply.content) if reply.status == 200 else {}
            if answer.get("acked_seq") != records[-1]["seq"] or answer.get("chain") != "ok":
                raise SystemExit(f"unexpected answer {reply.status}: {reply.content[:300]!r}")
    finally:
        client.close()
        collector.close()
    return times


def wire_records(batches: list[tuple[list[dict], bytes]]) -> list[list[dict]]:
    """The batches as the collector has them after parsing (what ``ingest`` takes)."""
    return [parse_batch(decode_body(body, "gzip", MAX_DECOMPRESSED_BYTES)) for _, body in batches]


def ingest_storage_only(db_url: str, parsed: list[list[dict]]) -> list[float]:
    """``CollectorStore.ingest`` alone, in this process; seconds per batch."""
    store = open_store(db_url)
    times = []
    try:
        store.enrol(GATE_ID, KeyPair.generate().public_key)
        for records in parsed:
            started = time.perf_counter()
            outcome = store.ingest(GATE_ID, records)
            times.append(time.perf_counter() - started)
            if outcome.problem or outcome.acked_seq != records[-1]["seq"]:
                raise SystemExit(f"storage refused a batch: {outcome}")
    finally:
        store.close()
    return times


def collector_cpu_split(db_url: str, batches: list[tuple[list[dict], bytes]]) -> dict[str, float]:
    """Per batch, medians: gunzip, JSON + field checks, hash checks, one nonce write."""
    watch = Stopwatch()
    store = open_store(db_url)
    try:
        store.enrol("nonce-gate", KeyPair.generate().public_key)
        for _, body in batches:
            with watch("gunzip"):
                plain = decode_body(body, "gzip", MAX_DECOMPRESSED_BYTES)
            with watch("JSON + field checks"):
                records = parse_batch(plain)
            with watch("hash checks"):
                intact = [content_matches_hash(record) for record in records]
            assert all(intact)
            nonce, now = os.urandom(16).hex(), time.time()
            with watch("nonce write"):
                store.remember_nonce("nonce-gate", nonce, int(now) + 300, now)
    finally:
        store.close()
    return watch.medians()


def print_ingest(name: str, times: list[float], target: int | None) -> float:
    counted = times[WARMUP_BATCHES:] if len(times) > 2 * WARMUP_BATCHES else times
    rate = INGEST_BATCH * len(counted) / sum(counted)
    median, p99 = median_p99(counted)
    check = f"; target >= {target:,}: {verdict(rate >= target)}" if target else ""
    print(
        f"  {name:<44} {rate:>7,.0f} records/s  per batch median {ms(median)}, "
        f"p99 {ms(p99)} ({len(counted)} batches){check}"
    )
    return rate


# main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k backlog, 30 ingest batches")
    parser.add_argument("--records", type=int, default=1_000_000, help="backlog size")
    parser.add_argument(
        "--batch-sizes", default="500", help="agent batch sizes for the backlog, e.g. 500,1000"
    )
    parser.add_argument("--batches", type=int, default=200, help="1,000-record ingest batches")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--parts", default="backlog,ingest", help="backlog, ingest or both")
    args = parser.parse_args()
    if args.quick:
        args.records, args.batches = 100_000, 30
    parts = set(args.parts.split(","))
    backends = args.backends.split(",")

    print(f"Sync benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="sync-run-", dir=CACHE_DIR))
    try:
        if "backlog" in parts:
            print(f"\n(a) an offline week's backlog: {args.records:,} records after reconnecting")
            cached = cached_backlog(args.records)
            print(
                f"  cached backlog {cached} ({cached.stat().st_size / 1e6:.0f} MB), copied per run"
            )
            for batch_size in (int(size) for size in args.batch_sizes.split(",")):
                result = upload_backlog(cached, args.records, batch_size, run_dir)
                print_backlog(result, args.records)
                print_gate_split(gate_side_split(cached, batch_size), batch_size)
                result["collector_db"].unlink()
        if "ingest" in parts:
            print(f"\n(b) collector ingest: {args.batches} batches of {INGEST_BATCH:,} records")
            batches = ingest_batches(args.batches)
            sent = statistics.median(len(body) for _, body in batches)
            print(f"  one batch: {sent / 1000:.0f} KB gzip JSON as the agent encodes it")
            parsed = wire_records(batches)
            postgres = None
            try:
                for backend in backends:
                    if backend == "sqlite":
                        urls = [f"sqlite:///{run_dir / f'ingest-{n}.db'}" for n in range(3)]
                        label = "SQLite (WAL, synchronous=FULL)"
                    else:
                        if postgres is None:
                            postgres = Postgres()
                            print(f"  {postgres.version}, throwaway cluster, fsync=on")
                        urls = [postgres.new_database() for _ in range(3)]
                        label = "PostgreSQL (durable defaults)"
                    workdir = run_dir / f"ingest-{backend}"
                    workdir.mkdir()
                    http = ingest_over_http(urls[0], workdir, batches)
                    print_ingest(
                        f"{label}, over HTTP",
                        http,
                        INGEST_TARGET_RPS if backend == "sqlite" else None,
                    )
                    storage = ingest_storage_only(urls[1], parsed)
                    print_ingest(f"{label}, storage only", storage, None)
                    split = collector_cpu_split(urls[2], batches[:50])
                    work = ", ".join(f"{name} {ms(seconds)}" for name, seconds in split.items())
                    print(f"    the collector's work per batch besides ingest (medians): {work}")
            finally:
                if postgres is not None:
                    postgres.close()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
