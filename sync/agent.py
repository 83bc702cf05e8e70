"""The gate's sync agent: scan log up, revocation lists and trust bundles down, health beside.

Where it runs. The agent is a thread inside ``gated``, not a process of its own: it shares
the gate's configuration, device key and lifetime, and ``gated`` can show its status, with no
second unit to install, supervise and keep in step. It shares nothing with the decision loop
but the database file: it opens its **own** :class:`~gate.store.GateStore` connection (and its
own :class:`~gate.trust.HeldBundle`), so the loop never waits on the agent's Python lock, and
SQLite's WAL mode lets it read the scan log while the loop writes admissions.

What it must never do is slow a decision. So:

- every database access is a short transaction of its own: the records to send are read in
  one read transaction that is closed before the request goes out, and the new ``acked_seq``
  is written in one tiny write transaction after the answer is in. No transaction is open
  while the agent waits on the network, so a collector that hangs (a dead TCP connection, a
  blackholed port) holds no lock the decision loop could need;
- a revocation list is applied with :meth:`RevocationList.apply_to`, which stages full lists
  in short transactions and applies a delta in one, exactly like ``gatectl import``;
- network waits are bounded by connect and read timeouts (3 s and 10 s by default), and the
  thread is a daemon thread, so even a hung read cannot keep ``gated`` from exiting.

One cycle (:meth:`SyncAgent.sync_once`) pushes the backlog (:meth:`push_once`), pulls
revocations and the trust bundle (:meth:`pull_once`), then reports health
(:meth:`report_health`). A cycle that fails is retried after an exponential backoff with full
jitter (1 s doubling to 60 s, :mod:`sync.backoff`); a cycle that succeeds is followed by a pause
of ``interval`` seconds. When the collector cannot be reached the rest of the cycle is skipped
(it would only time out again); any other failure (an answer that breaks the protocol, a
document the gate refuses) is recorded and the other steps still run.

Upload. Records after the acknowledged sequence number (``acked_seq`` in the store's sync
state) go up in batches of at most ``batch_size`` (<= 1,000), as gzip JSON with exactly the
fields of docs/sync-protocol.md, byte strings in hex. The request is signed over the gzip bytes
as sent. ``acked_seq`` moves on a 200 only forward and never beyond the last record sent; a 409
sets it to the collector's count (a resync, which may resend: the collector stores records
idempotently by sequence number). A lost answer is therefore harmless: the batch goes again.

Download. Revocation documents are asked for from the held version until the collector
answers 204, each verified against the office root key and applied on the held list; a
document that is tampered with, signed by another key, older than the held list or a delta
that does not fit is refused, the held list stays in force, and the refusal shows in
:attr:`SyncAgent.status`. Then the newest trust bundle, installed by :class:`HeldBundle`
(verified, never older, written atomically); the decision loop's own HeldBundle sees the new
file on its next decision.

Status. :attr:`SyncAgent.status` is a snapshot dict, also written to ``sync.json`` in the state
directory after every cycle for ``gatectl status`` (another process).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate.errors import ConfigError, GateError, SignedDocumentError, SyncError
from gate.revocations import RevocationList
from gate.scanlog import WIRE_FIELDS
from gate.state import HEALTH_FILE, SYNC_FILE
from gate.store import GateStore
from gate.trust import HeldBundle, write_atomically
from sync.backoff import Backoff
from sync.client import CollectorClient, CollectorRefused, CollectorUnreachable, Reply
from sync.identity import load_device_key

log = logging.getLogger("gated.sync")

#: the fields of a scan record as sent, in the order of docs/sync-protocol.md
SCAN_FIELDS = WIRE_FIELDS
MAX_BATCH = 1000
ACKED_SEQ = "acked_seq"
#: revocation documents taken in one pull; the rest come in the next cycle
MAX_DOCUMENTS_PER_PULL = 100
#: 409 resyncs accepted in one push before the cycle counts as failed
MAX_RESYNCS_PER_PUSH = 3
#: an upload's JSON is kept under this (the collector takes 16 MiB); a batch is halved to fit
MAX_BATCH_JSON = 8 * 1024 * 1024
#: a health report's JSON is kept under this (the collector takes 64 KiB)
MAX_HEALTH_JSON = 48 * 1024


class DocumentRefused(GateError):
    """A revocation list or trust bundle from the collector was refused; the held one stays."""


def encode_batch(records: list[dict[str, Any]]) -> tuple[bytes, int]:
    """The gzip JSON body of one upload, ``{"records": [...]}`` with byte strings in hex,
    and how many of ``records`` it holds (fewer when all of them would be too large)."""
    wire = [{name: _hex_bytes(record.get(name)) for name in SCAN_FIELDS} for record in records]
    while True:
        try:
            text = json.dumps({"records": wire}, separators=(",", ":"), allow_nan=False)
        except ValueError as err:  # NaN or infinity: not JSON, the collector could not read it
            raise SyncError(f"records {wire[0]['seq']}-{wire[-1]['seq']}: {err}") from err
        if len(text) <= MAX_BATCH_JSON or len(wire) == 1:
            return gzip.compress(text.encode(), compresslevel=6, mtime=0), len(wire)
        wire = wire[: len(wire) // 2]


def _hex_bytes(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


class SyncAgent:
    """Store-and-forward sync between this gate and the collector; run it in a thread.

    ``health_provider`` returns the gate's health (``GateDaemon.health``); without one the
    agent reads ``health.json`` from the state directory. ``clock`` and ``rng`` are for tests.
    """

    def __init__(
        self,
        state_dir: Path,
        gate_id: str,
        collector_url: str,
        root_public_key: bytes,
        *,
        batch_size: int = 500,
        interval: float = 5.0,
        timeout: tuple[float, float] = (3.0, 10.0),
        health_provider: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        ca_file: Path | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ConfigError(f"sync batch size must be 1 to {MAX_BATCH}, not {batch_size}")
        if not interval > 0:
            raise ConfigError(f"sync interval must be positive, not {interval}")
        self.state_dir = Path(state_dir)
        self.gate_id = gate_id
        self.root_public_key = root_public_key
        self.batch_size = batch_size
        self.interval = interval
        self.health_provider = health_provider
        self.clock = clock
        self.backoff = Backoff(backoff_base, backoff_cap, rng)
        self._client = CollectorClient(
            collector_url,
            gate_id,
            load_device_key(self.state_dir).signing_key,
            timeout=timeout,
            clock=clock,
            ca_file=ca_file,
        )
        try:
            self._store = GateStore.in_state_dir(self.state_dir)
        except GateError:
            self._client.close()
            raise
        self._bundle = HeldBundle(self.state_dir, root_public_key)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {
            "collector": self._client.base_url,
            "state": "idle",
            "activity": None,
            "last_success_at": None,
            "last_push_at": None,
            "last_pull_at": None,
            "last_health_at": None,
            "last_attempt_at": None,
            "last_error": None,
            "last_error_at": None,
            "consecutive_failures": 0,
            "next_attempt_at": None,
            "acked_seq": None,
            "last_seq": None,
            "backlog": None,
            "chain": None,
            "clock_offset": None,
            "revocation_version": None,
            "revocation_refused": None,
            "bundle_version": None,
            "bundle_refused": None,
        }
        self._note_backlog(self._acked_seq())

    # Lifecycle -------------------------------------------------------------------------------

    def start(self, stop: threading.Event | None = None) -> threading.Thread:
        """Run the agent in a daemon thread named ``sync`` until ``stop`` (or :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the sync agent is already running")
        if stop is not None:
            self._stop = stop
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="sync")
        self._thread.daemon = True
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout``; True when it has ended.

        A thread stuck in a network read ends when its read times out; it is a daemon
        thread, so it never keeps the process alive. Resources are closed once it has ended.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self.close()
        return True

    def close(self) -> None:
        self._client.close()
        self._store.close()

    def __enter__(self) -> SyncAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Status ----------------------------------------------------------------------------------

    @property
    def status(self) -> dict[str, Any]:
        """A snapshot: last success and error, acked_seq, backlog, clock offset, versions."""
        with self._lock:
            return dict(self._status)

    def _note(self, **values: Any) -> None:
        with self._lock:
            self._status.update(values)

    def _write_status_file(self) -> None:
        try:
            text = json.dumps(self.status, indent=1, default=_json_default) + "\n"
            write_atomically(self.state_dir / SYNC_FILE, text.encode())
        except OSError as err:
            log.warning("cannot write %s: %s", SYNC_FILE, err)

    # The loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Sync until ``stop`` is set: a cycle, then ``interval`` or a backoff. Never raises."""
        self._stop = stop
        log.info("sync agent for gate %s started: %s", self.gate_id, self._client.base_url)
        while not stop.is_set():
            try:
                ok = self.sync_once()
            except Exception as err:  # a bug must not end sync for good; it is logged
                log.exception("sync cycle failed unexpectedly")
                self._failed(f"unexpected error: {type(err).__name__}: {err}")
                ok = False
            if ok:
                self.backoff.reset()
                delay = self.interval
            else:
                delay = self.backoff.next_delay()
            self._note(
                state="ok" if ok else "backing_off",
                consecutive_failures=self.backoff.failures,
                next_attempt_at=self.clock() + delay,
            )
            self._write_status_file()
            if stop.wait(delay):
                break
        self._note(state="stopped", next_attempt_at=None)
        self._write_status_file()
        log.info("sync agent stopped")

    def sync_once(self) -> bool:
        """One cycle: push, pull, report health; True when every step succeeded.

        A step's failure is recorded in :attr:`status` (``last_error``); when the collector
        cannot be reached the remaining steps are skipped.
        """
        self._note(last_attempt_at=self.clock())
        errors = []
        for name, step in (
            ("push", self.push_once),
            ("pull", self.pull_once),
            ("health", self.report_health),
        ):
            if self._stop.is_set():
                return False
            try:
                step()
            except CollectorUnreachable as err:
                errors.append(str(err))
                break  # the other steps would only wait for the same timeout
            except GateError as err:
                errors.append(str(err))
            else:
                self._note(**{f"last_{name}_at": self.clock()})
        if errors:
            self._failed("; ".join(errors))
            return False
        self._note(last_success_at=self.clock(), last_error=None)
        return True

    def _failed(self, message: str) -> None:
        log.warning("sync: %s", message)
        self._note(last_error=message, last_error_at=self.clock())

    def _request(self, method: str, endpoint: str, **kwargs: Any) -> Reply:
        path = f"/v1/gates/{self.gate_id}/{endpoint}"
        self._note(activity=f"{method} {path}")
        try:
            reply = self._client.request(method, path, **kwargs)
        finally:
            self._note(activity=None)
        if reply.status in (401, 403):
            self._note_offset_from_refusal(reply)
        return reply

    def _note_offset_from_refusal(self, reply: Reply) -> None:
        """A collector refusing a request (a stale one: the gate's clock is far off) tells its
        time. It is unauthenticated, so it is only shown (gatectl status), never acted on; but
        it is how a technician learns that the clock, not the network, stops the sync."""
        try:
            server_time = json.loads(reply.content).get("server_time")
        except (ValueError, AttributeError):
            return
        number = isinstance(server_time, int | float) and not isinstance(server_time, bool)
        if number and math.isfinite(server_time):
            offset = server_time - (reply.sent_at + reply.received_at) / 2
            self._note(clock_offset=round(offset, 3))

    # Upload ----------------------------------------------------------------------------------

    def _acked_seq(self) -> int:
        value = self._store.sync_value(ACKED_SEQ, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    def _last_seq(self) -> int:
        newest = self._store.recent_log(1)
        return newest[0]["seq"] if newest else 0

    def _set_acked(self, acked: int) -> None:
        self._store.set_sync_value(ACKED_SEQ, acked)  # one small write transaction
        self._note_backlog(acked)

    def _note_backlog(self, acked: int) -> int:
        last = self._last_seq()
        self._note(acked_seq=acked, last_seq=last, backlog=max(last - acked, 0))
        return last

    def push_once(self) -> int:
        """Send the backlog in batches until it is empty; returns records newly acknowledged.

        Raises :class:`~gate.errors.SyncError` (after keeping what was acknowledged so far)
        when the collector cannot be reached or answers against the protocol.
        """
        acknowledged = resyncs = 0
        while not self._stop.is_set():
            acked = self._acked_seq()
            # A read transaction of its own, closed before any network I/O.
            records = self._store.log_records(acked, self.batch_size)
            self._note_backlog(acked)
            if not records:
                break
            body, count = encode_batch(records)
            records = records[:count]
            last_sent = records[-1]["seq"]
            reply = self._request(
                "POST",
                "scans",
                body=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
            if reply.status == 200:
                answer = reply.json_object()
                collector_acked = reply.whole_number(answer, "acked_seq")
                self._note_chain(answer.get("chain"))
                if collector_acked > last_sent:
                    log.warning(
                        "collector acknowledged %d but only up to %d was sent; keeping %d",
                        collector_acked,
                        last_sent,
                        last_sent,
                    )
                    collector_acked = last_sent
                if collector_acked <= acked:
                    raise reply.refused(
                        f"acknowledged {collector_acked}, no progress past {acked} for records "
                        f"{records[0]['seq']}-{last_sent}"
                    )
                self._set_acked(collector_acked)
                acknowledged += collector_acked - acked
            elif reply.status == 409:
                collector_acked = reply.whole_number(reply.json_object(), "acked_seq")
                self._resync(reply, acked, collector_acked)
                resyncs += 1
                if resyncs > MAX_RESYNCS_PER_PUSH:
                    raise reply.refused(f"{resyncs} resyncs in one push; giving up this cycle")
            else:
                raise reply.refused("unexpected answer to an upload")
        return acknowledged

    def _resync(self, reply: Reply, acked: int, collector_acked: int) -> None:
        """Take the collector's count after a 409; it may move back (records are resent)."""
        if collector_acked == acked:
            raise reply.refused(f"409 although the batch started at {acked + 1}")
        last = self._last_seq()
        if collector_acked > last:
            raise reply.refused(
                f"the collector holds records up to {collector_acked} but this gate's log ends "
                f"at {last}: was the gate's database replaced? acked_seq stays at {acked}"
            )
        log.warning("sync: resync, acked_seq %d -> %d (collector's count)", acked, collector_acked)
        self._set_acked(collector_acked)

    def _note_chain(self, chain: Any) -> None:
        if chain is None:
            return
        chain = str(chain)
        if chain != "ok":
            log.warning("sync: the collector reports the scan log chain as: %s", chain)
        self._note(chain=chain)

    # Download --------------------------------------------------------------------------------

    def pull_once(self) -> dict[str, Any]:
        """Pull revocation documents until the collector has no newer one, then the newest
        trust bundle; returns ``{"revocations": [versions applied], "bundle": version}``.

        A refused document leaves the held one in force, is recorded in :attr:`status` and
        raises :class:`DocumentRefused` once both kinds have been tried.
        """
        refused = []
        applied, message = self._pull_revocations()
        if message:
            refused.append(message)
        bundle, message = self._pull_bundle()
        if message:
            refused.append(message)
        if refused:
            raise DocumentRefused("; ".join(refused))
        return {"revocations": applied, "bundle": bundle}

    def _pull_revocations(self) -> tuple[list[int], str | None]:
        applied: list[int] = []
        for _ in range(MAX_DOCUMENTS_PER_PULL):
            if self._stop.is_set():
                break
            held = self._store.revocation_state().version
            self._note(revocation_version=held)
            reply = self._request("GET", "revocations", params={"since": held or 0})
            if reply.status == 204:
                break
            if reply.status != 200:
                raise reply.refused("unexpected answer to a revocation pull")
            try:
                document = RevocationList.from_document(reply.content, self.root_public_key)
                document.apply_to(self._store)
            except SignedDocumentError as err:
                message = f"revocation document from the collector refused: {err}"
                log.warning("sync: %s", message)
                self._note(revocation_refused=message)
                return applied, message
            announced = reply.headers.get("X-Document-Version")
            if announced is not None and announced != str(document.version):
                log.warning(
                    "sync: X-Document-Version %s but the signed document is version %d",
                    announced,
                    document.version,
                )
            applied.append(document.version)
            log.info("sync: revocation list version %d applied", document.version)
            self._note(revocation_version=document.version, revocation_refused=None)
        return applied, None

    def _pull_bundle(self) -> tuple[int | None, str | None]:
        held = self._bundle.store().version
        self._note(bundle_version=held)
        reply = self._request("GET", "trust-bundle", params={"since": held or 0})
        if reply.status == 204:
            return None, None
        if reply.status != 200:
            raise reply.refused("unexpected answer to a trust bundle pull")
        try:
            store = self._bundle.install(reply.content)
        except SignedDocumentError as err:
            message = f"trust bundle from the collector refused: {err}"
            log.warning("sync: %s", message)
            self._note(bundle_refused=message)
            return None, message
        except OSError as err:
            raise DocumentRefused(f"cannot write the trust bundle: {err}") from err
        log.info("sync: trust bundle version %s installed", store.version)
        self._note(bundle_version=store.version, bundle_refused=None)
        return store.version, None

    # Health ----------------------------------------------------------------------------------

    def _gate_health(self) -> dict[str, Any]:
        if self.health_provider is not None:
            try:
                health = self.health_provider()
            except Exception as err:  # the provider belongs to gated; report, don't die
                return {"gate": "unknown", "error": f"health provider failed: {err}"}
            return dict(health) if isinstance(health, dict) else {"gate": "unknown"}
        path = self.state_dir / HEALTH_FILE
        try:
            health = json.loads(path.read_text())
        except FileNotFoundError:
            return {"gate": "unknown", "error": f"{path} is missing: is gated running?"}
        except (OSError, ValueError) as err:
            return {"gate": "unknown", "error": f"{path}: {err}"}
        return health if isinstance(health, dict) else {"gate": "unknown"}

    def report_health(self) -> float:
        """Send the gate's health, backlog and last seq; returns the clock offset in seconds.

        The offset is the collector's ``server_time`` minus the midpoint of the request as
        measured by this gate's clock, ``(sent + received) / 2``: positive when the gate's
        clock is behind.
        """
        acked = self._acked_seq()
        last = self._note_backlog(acked)
        body = {
            **self._gate_health(),
            "backlog": max(last - acked, 0),
            "last_seq": last,
            "sent_at": self.clock(),
        }
        try:
            text = json.dumps(body, default=_json_default, allow_nan=False)
            if len(text) > MAX_HEALTH_JSON:
                body = {
                    "gate": body.get("gate", "unknown"),
                    "error": f"health report of {len(text)} bytes cut to its summary",
                    **{name: body[name] for name in ("backlog", "last_seq", "sent_at")},
                }
                text = json.dumps(body, default=_json_default, allow_nan=False)
        except ValueError as err:
            raise SyncError(f"health report not sendable as JSON: {err}") from err
        reply = self._request(
            "POST", "health", body=text.encode(), headers={"Content-Type": "application/json"}
        )
        if reply.status != 200:
            raise reply.refused("unexpected answer to a health report")
        server_time = reply.json_object().get("server_time")
        if (
            not isinstance(server_time, int | float)
            or isinstance(server_time, bool)
            or not math.isfinite(server_time)
        ):
            raise reply.refused(f"server_time is {server_time!r}, not a number")
        offset = server_time - (reply.sent_at + reply.received_at) / 2
        self._note(clock_offset=round(offset, 3))
        return offset


__all__ = [
    "CollectorRefused",
    "CollectorUnreachable",
    "DocumentRefused",
    "SyncAgent",
    "encode_batch",
]
