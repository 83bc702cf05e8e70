"""gated: the gate daemon.

Each reader (camera, serial scanner, NFC reader, or standard input) runs in its own thread
and feeds one decision loop: validate → actuate → log. An accept unlocks the turnstile only
after the admission is on disk; if nobody passes before the passage timeout, the gate relocks
and the admission is annulled, so the passenger can present the ticket again. The emergency
input holds the gate open until it clears. Every decision and event goes to the scan log.

The systemd notify protocol tells systemd when the gate is ready and, from the decision loop
and only while it is healthy, keeps the watchdog fed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from drivers.base import CodeReader, HealthCell, HealthState, Presentation
from drivers.registry import load, reader_class
from gate import installed_version
from gate.cli_errors import entry_point
from gate.config import CONFIG_ENV, GateConfig, default_config_path, load_config
from gate.errors import GateError, StoreError
from gate.runlock import RunLock
from gate.snapshot import serve_request as serve_snapshot_request
from gate.state import HEALTH_FILE, GateState
from gate.systemd import Notifier
from gate.trust import write_atomically
from gate.validator import Decision

log = logging.getLogger("gated")

QUEUE_SIZE = 256
HOUSEKEEPING_SECONDS = 60.0
VERSION = installed_version()


@dataclass(frozen=True)
class GateEvent:
    """Something that happened at the gate other than a presented code."""

    kind: str
    source: str
    detail: str
    data: dict | None = None


def build_readers(config: GateConfig) -> list[CodeReader]:
    """The code readers the configuration enables, imported by name (lazily)."""
    readers: list[CodeReader] = []
    if config.camera is not None:
        c = config.camera
        readers.append(
            reader_class("camera")(
                c.source,
                width=c.width,
                height=c.height,
                fps=c.fps,
                decoder=c.decoder,
                dedup_window=c.dedup_window,
            )
        )
    if config.serial is not None:
        s = config.serial
        readers.append(
            reader_class("serial")(
                s.url,
                baudrate=s.baudrate,
                terminator=s.terminator,
                prefix=s.prefix,
                suffix=s.suffix,
                max_line=s.max_line,
            )
        )
    if config.nfc is not None:
        readers.append(reader_class("nfc")(config.nfc.url, baudrate=config.nfc.baudrate))
    return readers


def build_turnstile(config: GateConfig, pin_factory: Any = None, **overrides: Any):
    """The turnstile from the [gpio] section, or None when the gate has none; ``overrides``
    replace the configured arguments (selftest drives one part at a time)."""
    g = config.gpio
    if g is None:
        return None
    if pin_factory is None:
        pin_factory = load("drivers.gpio.pins:make_pin_factory")(g.pin_factory)
    arguments = {
        "relay_pin": g.relay_pin,
        "relay_active_high": g.relay_active_high,
        "relay_mode": g.relay_mode,
        "pulse_seconds": g.pulse_seconds,
        "unlock_seconds": g.passage_timeout,
        "green_pin": g.green_pin,
        "red_pin": g.red_pin,
        "buzzer_pin": g.buzzer_pin,
        "passage_pin": g.passage_pin,
        "passage_active_high": g.passage_active_high,
        "emergency_pin": g.emergency_pin,
        "emergency_active_high": g.emergency_active_high,
        "passage_pull": g.passage_pull,
        "emergency_pull": g.emergency_pull,
        "pin_factory": pin_factory,
    }
    return load("drivers.gpio.turnstile:Turnstile")(**{**arguments, **overrides})


class GateDaemon:
    """The decision loop and the threads around it."""

    def __init__(
        self,
        state: GateState,
        readers: list[CodeReader],
        turnstile: Any = None,
        *,
        passage_timeout: float = 8.0,
        notifier: Notifier | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        stop_when_idle: Callable[[], bool] | None = None,
    ) -> None:
        self.state = state
        self.config = state.config
        self.validator = state.validator()
        self.readers = readers
        self.turnstile = turnstile
        self.passage_timeout = passage_timeout
        self.notifier = notifier or Notifier()
        self.on_record = on_record
        self.stop_when_idle = stop_when_idle
        self.stop = threading.Event()
        self.queue: queue.Queue[Presentation | GateEvent] = queue.Queue(QUEUE_SIZE)
        self.store_health = HealthCell("store")
        self.store_health.set(HealthState.OK, "")
        self._threads: list[threading.Thread] = []
        self.sync_agent = None
        self._last_status = ""
        self.counts: dict[str, int] = {}
        self.started_at = time.time()
        self.run_lock = RunLock(self.config.state_dir)
        for cell in self._health_cells():
            cell.listeners.append(self._on_health)
        if turnstile is not None:
            turnstile.on_emergency.append(self._on_emergency)
            if turnstile.emergency_active:  # already active at start-up
                self._on_emergency(True)

    # Events from other threads ---------------------------------------------------------------

    def _enqueue(self, item: Presentation | GateEvent) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            log.warning("decision queue full: dropped a presentation from %s", item.source)

    def _on_health(self, name: str, health) -> None:
        kind = {"ok": "device_ok", "failed": "device_failed"}.get(health.state.value)
        if kind and health.reason != "starting":
            self._enqueue(GateEvent(kind, name, health.reason or "ok"))

    def _on_emergency(self, active: bool) -> None:
        kind = "emergency_open" if active else "emergency_clear"
        detail = "emergency input active: gate held open" if active else "emergency cleared"
        self._enqueue(GateEvent(kind, "gpio", detail))

    # Health ----------------------------------------------------------------------------------

    def _health_cells(self) -> list[HealthCell]:
        cells = [reader.health for reader in self.readers] + [self.store_health]
        if self.turnstile is not None:
            cells.append(self.turnstile.health)
        return cells

    def health(self) -> dict[str, Any]:
        """Each device's state, and the gate's: failed if the store or turnstile failed,
        degraded if a reader did."""
        devices = {cell.name: cell.get().to_json() for cell in self._health_cells()}
        vital = [self.store_health] + ([self.turnstile.health] if self.turnstile else [])
        if any(cell.get().state is HealthState.FAILED for cell in vital):
            overall = "failed"
        elif any(d["state"] != "ok" for d in devices.values()):
            overall = "degraded"
        else:
            overall = "ok"
        emergency = bool(self.turnstile and self.turnstile.emergency_active)
        return {
            "gate": overall,
            "emergency": emergency,
            "devices": devices,
            "at": time.time(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "version": VERSION,
        }

    def _publish_health(self) -> None:
        health = self.health()
        failed = [n for n, d in health["devices"].items() if d["state"] != "ok"]
        status = f"{health['gate']}" + (f": {', '.join(failed)} not ok" if failed else "")
        if health["emergency"]:
            status += "; EMERGENCY OPEN"
        if status != self._last_status:
            self._last_status = status
            self.notifier.status(status)
        try:
            path = self.config.state_dir / HEALTH_FILE
            # Rewritten every second: atomic, but not fsynced (it is not state, and an fsync
            # here would delay a code arriving meanwhile).
            write_atomically(path, (json.dumps(health, indent=1) + "\n").encode(), durable=False)
        except OSError as err:
            log.warning("cannot write %s: %s", HEALTH_FILE, err)
        if health["gate"] != "failed":
            self.notifier.watchdog()

    # The decision loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Start the readers and decide until stopped; the relay is left safe on every exit.

        Raises GateError, before touching any device, if another gated serves the same state.
        """
        self.run_lock.acquire()
        self.started_at = time.time()
        try:
            for reader in self.readers:
                thread = threading.Thread(
                    target=reader.run,
                    args=(self._enqueue, self.stop),
                    name=reader.name,
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            self._log_event(GateEvent("boot", "gated", f"gate {self.config.gate_id} started"))
            self._start_sync()
            self.notifier.ready(f"serving {len(self.readers)} reader(s)")
            next_health = 0.0
            next_housekeeping = time.monotonic() + 5.0
            while not self.stop.is_set():
                try:
                    item = self.queue.get(timeout=0.5)
                except queue.Empty:
                    item = None
                if isinstance(item, Presentation):
                    self.handle(item)
                elif isinstance(item, GateEvent):
                    self._log_event(item)
                if time.monotonic() >= next_health:
                    self._publish_health()
                    serve_snapshot_request(self.config.state_dir, self.readers)
                    next_health = time.monotonic() + 1.0
                if time.monotonic() >= next_housekeeping:
                    self.keep_log_within_limits()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                if self.stop_when_idle and self.queue.empty() and self.stop_when_idle():
                    break
        finally:
            self.shutdown()

    def keep_log_within_limits(self) -> None:
        """Retention and the disk budget of the scan log.

        Records the collector has acknowledged are pruned once older than the retention;
        over the disk budget, acknowledged records go first whatever their age, oldest
        first. Unacknowledged records are never dropped: if they alone exceed the budget,
        the store's health turns degraded with an alarm, and the gate goes on logging.
        """
        store, config = self.state.store, self.config
        try:
            acked = int(store.sync_value("acked_seq", 0) or 0)
            cutoff = time.time() - config.log_retention_days * 86400
            pruned = store.prune_log(older_than=cutoff, keep_after_seq=acked)
            budget = config.log_disk_budget_mb * 1e6
            if store.disk_usage() > budget:
                pruned += store.prune_log(older_than=None, keep_after_seq=acked)
            if pruned:
                log.info("scan log: pruned %d synced record(s)", pruned)
            usage = store.disk_usage()
            if usage > budget:
                unsynced = store.unsynced_count(acked)
                if config.sync is None:
                    advice = (
                        "this gate has no [sync], so no record is ever acknowledged and "
                        "pruned: export them (gatectl export), configure [sync], or raise "
                        "[log] disk_budget_mb"
                    )
                elif unsynced:
                    advice = "check the upstream link, or raise [log] disk_budget_mb"
                else:
                    advice = (
                        "the revocation list and admissions fill it, not the scan log: "
                        "raise [log] disk_budget_mb"
                    )
                self.store_health.set(
                    HealthState.DEGRADED,
                    f"disk budget exceeded: database {usage / 1e6:.0f} MB of "
                    f"{config.log_disk_budget_mb:g} MB with {unsynced} unsynced "
                    f"record(s); {advice}",
                )
            elif self.store_health.get().state is HealthState.DEGRADED:
                self.store_health.set(HealthState.OK, "")
        except StoreError as err:
            self.store_health.set(HealthState.FAILED, str(err))

    def _start_sync(self) -> None:
        """The sync agent: a thread with its own database connection (see sync/agent.py)."""
        s = self.config.sync
        if s is None:
            return
        try:
            from sync.agent import SyncAgent

            self.sync_agent = SyncAgent(
                self.config.state_dir,
                self.config.gate_id,
                s.collector_url,
                self.config.root_public_key,
                batch_size=s.batch_size,
                interval=s.interval,
                timeout=(s.connect_timeout, s.read_timeout),
                backoff_cap=s.backoff_cap,
                ca_file=s.ca_file,
                health_provider=self.health,
            )
            self.sync_agent.start(self.stop)
        except GateError as err:  # e.g. not provisioned: keep deciding offline
            self._log_event(GateEvent("sync_disabled", "sync", str(err)))

    def shutdown(self) -> None:
        self.stop.set()
        self.notifier.stopping()
        for thread in self._threads:
            thread.join(timeout=2)
        if self.sync_agent is not None:
            self.sync_agent.stop(timeout=2)
        for reader in self.readers:
            reader.close()
        if self.turnstile is not None:
            self.turnstile.close()
        self._log_event(GateEvent("shutdown", "gated", "gate stopped"))
        self.run_lock.release()

    def handle(self, presentation: Presentation) -> dict[str, Any]:
        """Decide on one presentation, actuate, log; returns the log record."""
        try:
            decision: Decision | None = self.validator.decide(presentation.text)
            if self.store_health.get().state is HealthState.FAILED:
                self.store_health.set(HealthState.OK, "")  # recovered; a budget alarm stays
        except StoreError as err:
            self.store_health.set(HealthState.FAILED, str(err))
            decision = None
        relay_at = self._actuate(decision)
        latency_ms = round((relay_at - presentation.arrived) * 1000, 3)
        record = self._decision_record(presentation, decision, latency_ms)
        self._log(record)
        if decision is not None and decision.accepted:
            self._confirm_passage(decision)
        return record

    def _actuate(self, decision: Decision | None) -> float:
        turnstile = self.turnstile
        if turnstile is None:
            return time.monotonic()
        if decision is not None and decision.accepted:
            if not turnstile.emergency_active:
                turnstile.unlock()
            relay_at = time.monotonic()
            turnstile.signal_accept()
            return relay_at
        relay_at = time.monotonic()
        turnstile.signal_reject(decision.reason.value if decision else "gate_fault")
        return relay_at

    def _confirm_passage(self, decision: Decision) -> None:
        """Wait for the passenger; relock; annul the admission if nobody went through."""
        turnstile = self.turnstile
        if turnstile is None or turnstile.emergency_active:
            return
        passed = turnstile.wait_for_passage(self.passage_timeout)
        turnstile.lock()
        if passed or not turnstile.has_passage_sensor or decision.admission_seq is None:
            return
        annulled = self.state.store.annul_admission(
            decision.kid,
            decision.claims.cti,
            decision.admission_seq,
            "passage timeout",
            time.time(),
        )
        self._log_event(
            GateEvent(
                "annulled",
                "gpio",
                f"nobody passed within {self.passage_timeout:g} s: gate relocked, admission "
                f"{'annulled' if annulled else 'was already annulled'}",
                {"cti": decision.claims.cti.hex(), "admission_seq": decision.admission_seq},
            )
        )

    # Logging ---------------------------------------------------------------------------------

    def _decision_record(
        self, presentation: Presentation, decision: Decision | None, latency_ms: float
    ) -> dict[str, Any]:
        if decision is None:
            return {
                "at": time.time(),
                "kind": "decision",
                "source": presentation.source,
                "decision": "reject",
                "reason": "gate_fault",
                "detail": self.store_health.get().reason,
                "latency_ms": latency_ms,
            }
        return {
            "at": decision.at,
            "kind": "decision",
            "source": presentation.source,
            "decision": decision.decision,
            "reason": decision.reason.value,
            "detail": decision.detail,
            "kid": decision.kid,
            "cti": decision.claims.cti if decision.claims else None,
            "admission_seq": decision.admission_seq,
            "latency_ms": latency_ms,
            "data": {
                "product": decision.claims.product if decision.claims else None,
                "key": decision.key.name if decision.key else None,
            },
        }

    def _log_event(self, event: GateEvent) -> None:
        self._log(
            {
                "at": time.time(),
                "kind": event.kind,
                "source": event.source,
                "detail": event.detail,
                "data": event.data,
            }
        )

    def _log(self, record: dict[str, Any]) -> None:
        key = record.get("reason") or record["kind"]
        self.counts[key] = self.counts.get(key, 0) + 1
        try:
            record["seq"] = self.state.store.append_log(record)
        except (StoreError, ValueError) as err:
            self.store_health.set(HealthState.FAILED, f"scan log: {err}")
            log.error("scan log write failed: %s; record: %s", err, _printable(record))
        if self.on_record is not None:
            self.on_record(record)
        else:
            log.info("%s", json.dumps(_printable(record)))


def _printable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in record.items()}


def print_json_decision(record: dict[str, Any]) -> None:
    """Print decisions as JSON lines on stdout; other events go to the log (stderr)."""
    if record["kind"] == "decision":
        print(json.dumps(_printable(record)), flush=True)
    else:
        log.info("%s", json.dumps(_printable(record)))


@click.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Gate configuration file (default: ${CONFIG_ENV}, else {default_config_path()}).",
)
@click.option("--check-config", is_flag=True, help="Validate the configuration and exit.")
@click.option(
    "--stdin",
    "use_stdin",
    is_flag=True,
    help="Also read codes from standard input, one per line, print each decision as JSON, "
    "and stop at the end of input.",
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Run a whole simulated gate (generated camera video, pty scanner, simulated NFC "
    "reader, mock GPIO) in a temporary directory, and print a summary.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --simulate: work in this directory and keep it.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log device events to stderr.")
def cli(config, check_config, use_stdin, simulate, keep, verbose) -> None:
    """Run the gate: readers → validate → turnstile → scan log.

    Example: gated --config /etc/gate/gate.toml

    Example: gated --simulate
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if simulate:
        from gate.simulation import run_simulation

        raise SystemExit(run_simulation(keep))
    settings = load_config(config)
    if check_config:
        click.echo(f"{settings.path}: configuration ok (gate {settings.gate_id})")
        return
    readers = build_readers(settings)
    stdin_reader = None
    if use_stdin:
        from drivers.stdin import StreamReader

        stdin_reader = StreamReader(0)
        readers.append(stdin_reader)
    if not readers:
        raise GateError(
            f"{settings.path}: no reader is enabled; add [camera], [serial] or [nfc], "
            "or run with --stdin"
        )
    with GateState(settings) as state:
        turnstile = build_turnstile(settings)
        daemon = GateDaemon(
            state,
            readers,
            turnstile,
            passage_timeout=settings.gpio.passage_timeout if settings.gpio else 8.0,
            on_record=print_json_decision if use_stdin else None,
            stop_when_idle=(lambda: stdin_reader.ended) if stdin_reader else None,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop.set())
        daemon.run()


main = entry_point(cli, "gated")
