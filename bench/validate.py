"""Benchmark of the gate's decision path and revocation lookups (not a test).

Prints p50 and p99 figures, beside their targets, for:

- ``Validator.decide`` on the accept path, including the durable admission write (WAL,
  ``synchronous=FULL``), with 1 million and 10 million revoked tickets in the gate database,
  decisions back to back;
- the same accepts after a 10 ms pause each: a gate waits for its passengers, and a CPU that
  has been idle runs the next decision cold (the targets are stated for back-to-back
  decisions; this row is there so those figures are not read as the whole story);
- the same accepts on tickets parsed beforehand (``Validator.decide_ticket``), so the gap to
  the first row is what parsing costs inside the decision, where the CPU has just slept
  through an fdatasync, rather than alone in a warm loop;
- the same decision as a dry run (``consume=False``), for comparison;
- ``GateStore.is_revoked`` for a random mix of present and absent entries;
- the floor the decision stands on, each part measured alone in the same run: parsing one
  ticket, one Ed25519 verify (libsodium) and one bare ``BEGIN IMMEDIATE``/``INSERT``/``COMMIT``
  on a FULL WAL database (taken again right before each size's accepts, as fsync time drifts).

The revocation databases are built once with ``GateStore.replace_revocations`` and cached under
``.cache/bench/``; every run works on a fresh copy, so the cached file never changes.

    .venv/bin/python bench/validate.py                 # 1m and 10m, full counts
    .venv/bin/python bench/validate.py --quick         # 1m only, short counts
    .venv/bin/python bench/validate.py --sizes 1m --decisions 5000 --lookups 50000
"""

from __future__ import annotations

import argparse
import bisect
import gc
import hashlib
import math
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nacl
import nacl.signing

from gate.store import GateStore, preallocate_wal
from gate.ticket import Claims, Ticket, kid_for, mint_ticket, parse_ticket
from gate.trust import TrustedKey, TrustStore
from gate.validator import Policy, Validator

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache" / "bench"
SEED = "gate-bench-validate"
# Bump when the way entries are generated changes: it is part of the cached list's version,
# so a stale cache is rebuilt rather than trusted.
GENERATOR_FORMAT = 1
ISSUERS = 4
REVOKED_KEYS = 4
IDLE = 0.0002  # seconds asleep before each call of the 'idle' row, about one fsync
PAUSE = 0.01  # seconds between passengers in the 'pause' row
PAUSED_SHARE = 4  # that row times a quarter as many decisions (each waits PAUSE first)

NOW = 1_795_564_800  # 2026-11-25 00:00 UTC; every ticket is valid then
CTI_SPACE = 2**128

DECISION_P50_MS, DECISION_P99_MS = 0.3, 1.0
LOOKUP_P99_US = 50.0


# Figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Latencies of one measured path, in nanoseconds, sorted."""

    samples: list[int]

    @classmethod
    def of(cls, samples: Sequence[int]) -> Figures:
        return cls(sorted(samples))

    def quantile(self, q: float) -> int:
        """Nearest-rank quantile: the smallest sample with at least ``q`` of them at or below."""
        rank = max(1, math.ceil(q * len(self.samples)))
        return self.samples[rank - 1]

    @property
    def p50(self) -> int:
        return self.quantile(0.50)

    @property
    def p99(self) -> int:
        return self.quantile(0.99)

    @property
    def max(self) -> int:
        return self.samples[-1]


def timed(calls: Sequence[Callable[[], object]], warmup: int, idle: float = 0.0) -> Figures:
    """Run ``calls`` in order, timing each one; the first ``warmup`` ones are not counted.

    With ``idle`` > 0 the process sleeps that many seconds before each call (not timed), as a
    gate waits between passengers.
    """
    gc.collect()
    samples = []
    clock = time.perf_counter_ns
    for number, call in enumerate(calls):
        if idle:
            time.sleep(idle)
        start = clock()
        call()
        elapsed = clock() - start
        if number >= warmup:
            samples.append(elapsed)
    return Figures.of(samples)


# The deterministic revocation list --------------------------------------------------------------


def _signing_key(seed: str, name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"{seed}:{name}".encode()).digest())


def issuer_keys(seed: str = SEED) -> tuple[nacl.signing.SigningKey, ...]:
    """The issuers of the revoked tickets, in kid order; the first one also mints the tickets."""
    keys = [_signing_key(seed, f"issuer-{n}") for n in range(ISSUERS)]
    return tuple(sorted(keys, key=lambda key: kid_for(bytes(key.verify_key))))


@dataclass(frozen=True)
class RevocationSet:
    """``size`` revoked (kid, cti) entries spread evenly over ``ISSUERS`` issuer kids.

    Entry ``i`` is computed on its own: the cti space of its kid is cut into as many equal
    strata as the kid has entries, and entry ``i`` sits at a keyed-hash offset inside its own
    stratum. So the values look random and are uniformly spread, yet come out already in
    primary-key order (fast to insert into a WITHOUT ROWID table), and any entry can be picked
    again later as a known-present one.
    """

    size: int
    seed: str = SEED
    kids: tuple[bytes, ...] = field(init=False, repr=False)
    starts: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        keys = issuer_keys(self.seed)
        starts = tuple(slot * self.size // ISSUERS for slot in range(ISSUERS + 1))
        object.__setattr__(self, "kids", tuple(kid_for(bytes(k.verify_key)) for k in keys))
        object.__setattr__(self, "starts", starts)

    @property
    def version(self) -> int:
        """The list version stored in the database; it names the generator, seed and size."""
        name = f"{GENERATOR_FORMAT}:{self.seed}:{self.size}".encode()
        return int.from_bytes(hashlib.sha256(name).digest()[:6], "big")

    def entry(self, index: int) -> tuple[bytes, bytes]:
        slot = bisect.bisect_right(self.starts, index) - 1
        local = index - self.starts[slot]
        width = CTI_SPACE // (self.starts[slot + 1] - self.starts[slot])
        digest = hashlib.blake2b(
            index.to_bytes(8, "big"), digest_size=16, key=self.seed.encode()[:64]
        ).digest()
        cti = local * width + int.from_bytes(digest, "big") % width
        return self.kids[slot], cti.to_bytes(16, "big")

    def tickets(self) -> Iterator[tuple[bytes, bytes]]:
        return (self.entry(index) for index in range(self.size))

    def revoked_keys(self) -> list[bytes]:
        return [
            bytes(_signing_key(self.seed, f"revoked-key-{n}").verify_key)
            for n in range(REVOKED_KEYS)
        ]

    def probes(self, count: int, rng: random.Random) -> list[tuple[bytes, bytes, bool]]:
        """``count`` (kid, cti, revoked?) lookups in random order, half present, half absent."""
        present = [(*self.entry(rng.randrange(self.size)), True) for _ in range(count // 2)]
        absent = [(rng.choice(self.kids), rng.randbytes(16), False) for _ in range(count // 2)]
        probes = present + absent
        rng.shuffle(probes)
        return probes


# The cached databases ---------------------------------------------------------------------------


def size_label(size: int) -> str:
    for unit, factor in (("m", 1_000_000), ("k", 1_000)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    digits = text[:-1] if factor > 1 else text
    if not digits.isdigit() or int(digits) * factor < ISSUERS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1m, 10m, 100k)")
    return int(digits) * factor


def build_database(revoked: RevocationSet, path: Path) -> None:
    """Build the list into a new database beside ``path`` and rename it into place."""
    building = path.with_name(path.name + ".building")
    for leftover in (building, *_sidecars(building)):
        leftover.unlink(missing_ok=True)
    print(f"building {path.name}: {revoked.size:,} revoked tickets ...", flush=True)
    started = time.perf_counter()
    store = GateStore(building)
    store.replace_revocations(revoked.version, NOW, revoked.tickets(), revoked.revoked_keys())
    wal_peak = _size_of(_sidecars(building)[0])
    imported = time.perf_counter() - started
    store.close()  # the last connection checkpoints the WAL and removes it
    if any(sidecar.exists() for sidecar in _sidecars(building)):
        raise SystemExit(f"bench: error: {building} kept its WAL after close; remove it and rerun")
    os.replace(building, path)
    print(
        f"built {path.name} in {time.perf_counter() - started:.1f} s "
        f"(replace_revocations {imported:.1f} s, WAL peaked at {_mb(wal_peak)}, "
        f"database {_mb(_size_of(path))})",
        flush=True,
    )


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def open_copy(cached: Path, run_dir: Path) -> GateStore:
    """A GateStore on a durable copy of ``cached``, so the run never writes to the cache."""
    working = run_dir / cached.name
    for stale in (working, *_sidecars(working)):
        stale.unlink(missing_ok=True)
    shutil.copyfile(cached, working)
    # Flush the copy now, so its writeback does not land inside the timed FULL commits.
    with open(working, "rb+") as copy:
        os.fsync(copy.fileno())
    return GateStore(working)


def holds(store: GateStore, revoked: RevocationSet) -> bool:
    state = store.revocation_state()
    return (state.version, state.tickets, state.keys) == (
        revoked.version,
        revoked.size,
        REVOKED_KEYS,
    )


def working_store(revoked: RevocationSet, run_dir: Path) -> tuple[GateStore, Path]:
    """A working copy of the cached database for ``revoked``, built first when missing/stale."""
    cached = CACHE_DIR / f"revoked-{size_label(revoked.size)}.db"
    if not cached.exists():
        build_database(revoked, cached)
    store = open_copy(cached, run_dir)
    if holds(store, revoked):
        return store, cached
    store.close()
    print(f"{cached.name} does not hold the expected list; rebuilding it", flush=True)
    build_database(revoked, cached)
    store = open_copy(cached, run_dir)
    if not holds(store, revoked):
        raise SystemExit(f"bench: error: {cached} was rebuilt but still does not match")
    return store, cached


# Tickets ----------------------------------------------------------------------------------------


def mint_singles(issuer: nacl.signing.SigningKey, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct `single` tickets, all valid at ``NOW``."""
    return [
        mint_ticket(
            Claims(
                cti=rng.randbytes(16),
                exp=NOW + 30 * 86_400,
                product="single",
                iss="bench",
                nbf=NOW - 3_600,
                iat=NOW - 3_600,
            ),
            issuer,
        )
        for _ in range(count)
    ]


@dataclass(frozen=True)
class Tickets:
    """Fresh tickets for each decision path; each path's first ``warmup`` are not timed."""

    admit: list[str]
    paused: list[str]  # accepts after a pause each
    dry_run: list[str]
    parsed: list[Ticket]
    warmup: int


def mint_tickets(issuer: nacl.signing.SigningKey, decisions: int, warmup: int) -> Tickets:
    rng = random.Random(f"{SEED}:tickets")
    each = warmup + decisions
    few = warmup + max(2, decisions // PAUSED_SHARE)
    texts = iter(mint_singles(issuer, 3 * each + few, rng))

    def take(count: int) -> list[str]:
        return [next(texts) for _ in range(count)]

    return Tickets(
        admit=take(each),
        paused=take(few),
        dry_run=take(each),
        parsed=[parse_ticket(text) for text in take(each)],
        warmup=warmup,
    )


# Measurements -----------------------------------------------------------------------------------


class UnexpectedResult(Exception):
    """A measured call did not give the answer the benchmark set it up to give."""


def measure_decisions(
    validator: Validator,
    presented: Sequence[str | Ticket],
    warmup: int,
    consume: bool,
    idle: float = 0.0,
) -> Figures:
    """Accepts on texts through ``decide``, or on tickets parsed beforehand through
    ``decide_ticket`` (the accept path without its parse)."""

    def decide(item: str | Ticket) -> Callable[[], None]:
        method = validator.decide_ticket if isinstance(item, Ticket) else validator.decide

        def call() -> None:
            decision = method(item, NOW, consume=consume)
            if not decision.accepted or decision.consumed is not consume:
                raise UnexpectedResult(
                    f"expected an accept, got {decision.reason}: {decision.detail}"
                )

        return call

    return timed([decide(item) for item in presented], warmup, idle)


def measure_lookups(
    store: GateStore, revoked: RevocationSet, public_key: bytes, count: int, warmup: int
) -> Figures:
    probes = revoked.probes(warmup + count, random.Random(f"{SEED}:probes:{revoked.size}"))

    def lookup(kid: bytes, cti: bytes, expected: bool) -> Callable[[], None]:
        def call() -> None:
            if store.is_revoked(kid, cti, public_key) is not expected:
                raise UnexpectedResult(f"is_revoked({kid.hex()}, {cti.hex()}) is not {expected}")

        return call

    return timed([lookup(*probe) for probe in probes], warmup)


def read_through(path: Path) -> None:
    """Read the whole file once, so its pages are in the page cache for the lookups.

    The copy was written seconds earlier, but a kernel that pages out file pages it sees idle
    (DAMON reclaim, as on some VMs) may already have evicted part of it; a lookup that then
    reads the disk measures the disk, not the revocation index.
    """
    with open(path, "rb", buffering=0) as handle:
        while handle.read(1 << 20):
            pass


def measure_parse(text: str, count: int, warmup: int) -> Figures:
    return timed([lambda: parse_ticket(text)] * (warmup + count), warmup)


def measure_verify(text: str, key: TrustedKey, count: int, warmup: int) -> Figures:
    """libsodium's Ed25519 verify of one ticket's signature over its Sig_structure."""
    message = parse_ticket(text).message
    signed, signature = message.to_be_signed(), message.signature
    return timed([lambda: key.verify_key.verify(signed, signature)] * (warmup + count), warmup)


def measure_commit(path: Path, count: int, warmup: int) -> Figures:
    """A bare BEGIN IMMEDIATE / INSERT / COMMIT on a new WAL database with synchronous=FULL,
    its WAL preallocated as ``GateStore`` does (so the floor does not pay for the file's
    growth, which the store's admissions no longer do)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE admission (id INTEGER PRIMARY KEY, kid BLOB, cti BLOB, at REAL)")
    conn.execute("BEGIN IMMEDIATE")
    preallocate_wal(conn, path.with_name(path.name + "-wal"))
    conn.execute("COMMIT")
    rng = random.Random(f"{SEED}:commit")

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO admission (kid, cti, at) VALUES (?, ?, ?)",
            (rng.randbytes(8), rng.randbytes(16), NOW),
        )
        conn.execute("COMMIT")

    try:
        return timed([commit] * (warmup + count), warmup)
    finally:
        conn.close()


def measure_fdatasync(path: Path, count: int, warmup: int) -> Figures:
    """The disk alone: overwrite one 4 KiB block of a preallocated file and fdatasync it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    block = b"\0" * 4096
    try:
        os.ftruncate(fd, len(block) * 64)
        offsets = iter(range(warmup + count))

        def sync() -> None:
            os.pwrite(fd, block, (next(offsets) % 64) * len(block))
            os.fdatasync(fd)

        return timed([sync] * (warmup + count), warmup)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


# Report -----------------------------------------------------------------------------------------


def _ms(ns: int) -> str:
    return f"{ns / 1e6:8.3f} ms"


def _us(ns: int) -> str:
    return f"{ns / 1e3:8.1f} µs"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def figure_row(name: str, figures: Figures, unit: Callable[[int], str], target: str = "") -> str:
    cells = f"{unit(figures.p50)}  {unit(figures.p99)}  {unit(figures.max)}"
    return f"  {name:<47} {cells}  {target}".rstrip()


def header_row(name: str) -> str:
    return f"  {name:<47} {'p50':>11}  {'p99':>11}  {'max':>11}  target"


def decision_target(figures: Figures) -> tuple[str, bool]:
    passed = figures.p50 <= DECISION_P50_MS * 1e6 and figures.p99 <= DECISION_P99_MS * 1e6
    return f"p50 <= {DECISION_P50_MS} ms, p99 <= {DECISION_P99_MS:g} ms  {_verdict(passed)}", passed


def lookup_target(figures: Figures) -> tuple[str, bool]:
    passed = figures.p99 <= LOOKUP_P99_US * 1e3
    return f"p99 <= {LOOKUP_P99_US:g} µs  {_verdict(passed)}", passed


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """The filesystem type and device that hold ``path`` (fsync costs depend on them)."""
    best = ("", "unknown", "unknown")
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                device, mount_point, kind = line.split()[:3]
                inside = path.is_relative_to(mount_point)
                if inside and len(mount_point) >= len(best[0]):
                    best = (mount_point, kind, device)
    except OSError:
        pass
    return f"{best[1]} on {best[2]}"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def cpu_idle() -> str:
    """How an idle CPU waits: the cpuidle driver and governor, and for a VM guest using the
    haltpoll driver, how long it polls before it halts (0: it halts at once).

    A decision's commit sleeps in fdatasync. A vCPU that halts meanwhile exits to the
    hypervisor and must be woken again by the completion; the commit figures depend on it.
    """
    base = "/sys/devices/system/cpu/cpuidle"
    driver, governor = _read(f"{base}/current_driver"), _read(f"{base}/current_governor_ro")
    governor = governor or _read(f"{base}/current_governor")
    if driver is None:
        return "unknown (no cpuidle in /sys)"
    text = f"driver {driver}, governor {governor or 'unknown'}"
    poll = _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    if driver == "haltpoll" and poll is not None:
        text += f", guest_halt_poll_ns {poll}"
    return text


def print_machine(args: argparse.Namespace) -> None:
    print("GT1 validation benchmark (bench/validate.py)")
    print(f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine   {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs")
    print(
        f"python    {platform.python_version()} from {sys.base_prefix}, "
        f"sqlite {sqlite3.sqlite_version}, PyNaCl {nacl.__version__}"
    )
    print(f"cpuidle   {cpu_idle()}")
    print(f"databases {CACHE_DIR} ({filesystem_of(CACHE_DIR)})")
    print(
        f"run       sizes {','.join(size_label(s) for s in args.sizes)}; "
        f"{args.decisions:,} decisions and {args.lookups:,} lookups per path, "
        f"after {args.warmup} untimed warm-up calls"
    )
    print(f"command   {' '.join([Path(sys.executable).name, *sys.argv])}")


# Runs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one run measures, shared by every size."""

    tickets: Tickets
    trust: TrustStore
    key: TrustedKey
    decisions: int
    lookups: int
    warmup: int


COMMIT_FLOOR = "bare BEGIN IMMEDIATE/INSERT/COMMIT"


def measure_floor(run: Run, run_dir: Path) -> None:
    """The parts a decision cannot go below, each measured alone."""
    text = run.tickets.admit[0]
    parse = measure_parse(text, run.decisions, run.warmup)
    verify = measure_verify(text, run.key, run.decisions, run.warmup)
    commit = measure_commit(run_dir / "commit-floor.db", run.decisions, run.warmup)
    disk = measure_fdatasync(run_dir / "fdatasync-floor", run.decisions, run.warmup)
    print("\nfloor, each part measured alone")
    print(header_row("operation"))
    print(figure_row("parse_ticket (base45 + CBOR)", parse, _ms))
    print(figure_row("Ed25519 verify (libsodium, one ticket)", verify, _ms))
    print(figure_row(f"{COMMIT_FLOOR} (WAL, FULL)", commit, _ms))
    print(figure_row("the disk alone: pwrite 4 KiB + fdatasync", disk, _ms))


def measure_size(run: Run, size: int, run_dir: Path) -> list[bool]:
    """Print the figures for one revocation list size; return each target's verdict."""
    revoked = RevocationSet(size)
    store, cached = working_store(revoked, run_dir)
    with store:
        print(f"\n{size:,} revoked tickets ({cached.name}, {_mb(_size_of(cached))})")
        print(header_row("path"))
        validator = Validator(run.trust, store, store, Policy(gate_id="bench"))
        tickets = run.tickets
        # The disk's fsync time drifts; its floor is taken again right before the accepts.
        commit_db = run_dir / f"commit-floor-{size_label(size)}.db"
        commit = measure_commit(commit_db, run.decisions, run.warmup)
        admit = measure_decisions(validator, tickets.admit, tickets.warmup, consume=True)
        parsed = measure_decisions(validator, tickets.parsed, tickets.warmup, consume=True)
        paused = measure_decisions(
            validator, tickets.paused, tickets.warmup, consume=True, idle=PAUSE
        )
        dry = measure_decisions(validator, tickets.dry_run, tickets.warmup, consume=False)
        dry_idle = measure_decisions(
            validator, tickets.dry_run, tickets.warmup, consume=False, idle=IDLE
        )
        read_through(store.path)  # the lookups time the B-tree, not a disk read
        lookups = measure_lookups(store, revoked, run.key.public_key, run.lookups, run.warmup)
        admit_target, admit_ok = decision_target(admit)
        lookup_text, lookup_ok = lookup_target(lookups)
        print(figure_row("decide, accept + durable write", admit, _ms, admit_target))
        print(figure_row(f"  floor: {COMMIT_FLOOR}", commit, _ms, "(measured just before)"))
        print(figure_row("  the same, parsed beforehand", parsed, _ms, "(the gap is the parse)"))
        pause = f"  the same, {PAUSE * 1e3:g} ms pause before each"
        print(figure_row(pause, paused, _ms, "(back to back above: idle CPUs run it cold)"))
        print(figure_row("decide, dry run (consume=False)", dry, _ms, "(for comparison)"))
        print(
            figure_row(
                f"  the same, {IDLE * 1e3:g} ms idle before each", dry_idle, _ms, "(CPU gone cold)"
            )
        )
        print(figure_row("is_revoked, 50% present, random", lookups, _us, lookup_text))
    for working in (store.path, *_sidecars(store.path)):
        working.unlink(missing_ok=True)  # free the disk before the next size
    return [admit_ok, lookup_ok]


def count(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"not a count of at least 2: {text!r}")
    return int(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time Validator.decide and GateStore.is_revoked against large revocation "
        "lists (a benchmark, not a test).",
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        help="revocation list sizes, comma separated (default 1m,10m; with --quick 1m)",
    )
    parser.add_argument("--decisions", type=count, help="timed decisions per path (default 2000)")
    parser.add_argument("--lookups", type=count, help="timed revocation lookups (default 20000)")
    parser.add_argument("--quick", action="store_true", help="a short run: 1m, 200 decisions")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([1_000_000] if quick else [1_000_000, 10_000_000])
    args.decisions = args.decisions or (200 if quick else 2_000)
    args.lookups = args.lookups or (2_000 if quick else 20_000)
    args.warmup = max(10, min(200, args.decisions // 10))
    return args


def make_run(args: argparse.Namespace) -> Run:
    issuer = issuer_keys()[0]
    key = TrustedKey(name="bench-issuer", public_key=bytes(issuer.verify_key))
    return Run(
        tickets=mint_tickets(issuer, args.decisions, args.warmup),
        trust=TrustStore([key]),
        key=key,
        decisions=args.decisions,
        lookups=args.lookups,
        warmup=args.warmup,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_machine(args)
    run = make_run(args)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    verdicts = []
    # The working copies live beside the cache, on the same filesystem: a tmpfs /tmp would
    # make every fsync free and the figures meaningless.
    with tempfile.TemporaryDirectory(prefix="run-", dir=CACHE_DIR) as run_dir:
        measure_floor(run, Path(run_dir))
        for size in args.sizes:
            verdicts += measure_size(run, size, Path(run_dir))
    print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
