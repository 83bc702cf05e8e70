"""``gated --simulate``: a whole gate with no hardware.

An office and an issuer are made in a work directory, tickets are minted, and the gate runs
with the real daemon on simulated devices, each picked by name from the drivers' fakes: a
generated camera video with real QR codes (valid, invalid, held in view for seconds,
inverted, noisy and blurred), a pty standing in for the serial scanner (tickets and garbage),
a simulated PN532 NFC reader with tags, and gpiozero's MockFactory for the relay, LEDs,
buzzer, passage sensor and emergency input. A simulated passenger walks through when the
relay opens, except once, to show the passage timeout and its annulment.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import base45
import httpx

from drivers.registry import load
from gate.config import load_config
from gate.daemon import GateDaemon, build_readers, build_turnstile
from gate.state import GateState
from gate.ticket import PREFIX, Claims, mint_ticket
from keys.documents import revocation_list, trust_bundle
from keys.keyfile import KeyPair, save_key

DAY = 86400
PINS = {"relay": 17, "passage": 27, "green": 22, "red": 23, "buzzer": 24, "emergency": 25}


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``predicate`` every 20 ms until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _fake(name: str) -> Any:
    """A fake device by name (fakes are never picked automatically)."""
    return load(
        {
            "video": "drivers.camera.fake:generate_video",
            "pty-scanner": "drivers.serial.fake:PtyScanner",
            "pn532": "drivers.nfc.sim:SimulatedPN532",
            "mock-pins": "drivers.gpio.pins:make_pin_factory",
        }[name]
    )


@dataclass
class Issuers:
    root: KeyPair = field(default_factory=KeyPair.generate)
    metro: KeyPair = field(default_factory=KeyPair.generate)
    rogue: KeyPair = field(default_factory=KeyPair.generate)
    serial: int = 0
    now: int = field(default_factory=lambda: int(time.time()))

    def ticket(self, product: str = "single", signer: KeyPair | None = None, **claims) -> str:
        self.serial += 1
        base = {"exp": self.now + 30 * DAY, "nbf": self.now - DAY, "iss": "metro-sim"}
        if product == "multi":
            base["uses"] = 2
        cti = b"sim-" + self.serial.to_bytes(8, "big")
        return mint_ticket(
            Claims(cti=cti, product=product, **(base | claims)), (signer or self.metro).signing_key
        )

    @staticmethod
    def forged(text: str) -> str:
        data = bytearray(base45.b45decode(text[len(PREFIX) :]))
        data[-3] ^= 0x40
        return PREFIX + base45.b45encode(bytes(data)).decode()


class Passenger:
    """Walks through the turnstile shortly after the relay opens, unless told to stay."""

    def __init__(self, factory: Any, delay: float = 0.25) -> None:
        self.relay = factory.pin(PINS["relay"])
        self.sensor = factory.pin(PINS["passage"])
        self.delay = delay
        self.stay_next = threading.Event()
        self.walked = 0
        self.stayed = 0
        self.unlocks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="passenger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        seen = len(self.relay.states)
        while not self._stop.is_set():
            history = self.relay.states
            opened = sum(
                1
                for before, after in itertools.pairwise(history[max(seen - 1, 0) :])
                if not before.state and after.state
            )
            seen = len(history)
            for _ in range(opened):
                self.unlocks += 1
                if self.stay_next.is_set():
                    self.stay_next.clear()
                    self.stayed += 1
                    continue
                time.sleep(self.delay)
                self.sensor.drive_high()
                time.sleep(0.05)
                self.sensor.drive_low()
                self.walked += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class LocalCollector:
    """A real ``gate-collector`` on 127.0.0.1 with a SQLite database in the work directory."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.token = os.urandom(16).hex()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, root_public_key: bytes) -> None:
        log = open(self.work / "collector.log", "wb")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gate-collector"),
                "serve",
                "--db",
                f"sqlite:///{self.work / 'collector.db'}",
                "--port",
                str(self.port),
                "--token",
                self.token,
                "--root-public-key",
                root_public_key.hex(),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not wait_until(self._answers, 20):
            raise RuntimeError(f"the collector did not start; see {self.work / 'collector.log'}")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def office(self, method: str, path: str, **kwargs) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = httpx.request(method, self.url + path, headers=headers, timeout=5, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def enrol(self, gate_id: str, public_key: bytes) -> None:
        self.office(
            "POST", "/v1/office/gates", json={"gate_id": gate_id, "public_key": public_key.hex()}
        )

    def last_seq(self, gate_id: str) -> int:
        try:
            gates = self.office("GET", "/v1/office/gates")
        except httpx.HTTPError:
            return 0
        for gate in gates.get("gates", gates if isinstance(gates, list) else []):
            if gate.get("gate_id") == gate_id:
                return gate.get("last_seq") or 0
        return 0

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class SimulatedGate:
    """A provisioned gate in ``work`` whose devices are all fakes."""

    def __init__(
        self,
        work: Path,
        *,
        camera: bool = True,
        serial: bool = True,
        nfc: bool = True,
        passage_timeout: float = 1.5,
        collector: bool = False,
    ) -> None:
        self.work = work
        self.collector = LocalCollector(work) if collector else None
        self.issuers = Issuers()
        self.revoked_text = self.issuers.ticket()
        self.video = work / "camera.avi"
        self.scanner = _fake("pty-scanner")(work) if serial else None
        self.pn532 = _fake("pn532")(work / "ttyNFC") if nfc else None
        self.pin_factory = _fake("mock-pins")("mock")
        self.passage_timeout = passage_timeout
        self.config_path = self._provision(camera, serial, nfc)
        self.records: list[dict[str, Any]] = []
        self.printer = None

    def _provision(self, camera: bool, serial: bool, nfc: bool) -> Path:
        root, metro = self.issuers.root, self.issuers.metro
        save_key(root, self.work / "office-root.key")
        save_key(metro, self.work / "metro-issuer.key")
        (self.work / "trust-v1.cose").write_bytes(
            trust_bundle([{"name": "metro", "public_key": metro.public_key}], root, 1)
        )
        revoked_cti = _cti_of(self.revoked_text)
        (self.work / "revocations-v1.cose").write_bytes(
            revocation_list(root, 1, tickets=[(metro.kid, revoked_cti)])
        )
        lines = [
            "[gate]",
            'id = "sim-gate-01"',
            'zone = "A"',
            'state_dir = "state"',
            f'root_public_key = "{root.public_key.hex()}"',
            "",
            "[antipassback]",
            'group = "sim-hall"',
            "window = 600",
            "",
        ]
        if camera:
            lines += ["[camera]", f'source = "{self.video}"', 'decoder = "zxing"', ""]
        if serial:
            lines += ["[serial]", f'url = "{self.scanner.path}"', 'terminator = "CR"', ""]
        if nfc:
            lines += ["[nfc]", f'url = "{self.pn532.device}"', ""]
        if self.collector is not None:
            lines += ["[sync]", f'collector_url = "{self.collector.url}"', "interval = 1.0", ""]
        lines += [
            "[gpio]",
            'pin_factory = "mock"',
            f"relay_pin = {PINS['relay']}",
            f"passage_pin = {PINS['passage']}",
            f"green_pin = {PINS['green']}",
            f"red_pin = {PINS['red']}",
            f"buzzer_pin = {PINS['buzzer']}",
            f"emergency_pin = {PINS['emergency']}",
            "emergency_active_high = true",
            'emergency_pull = "down"',
            f"passage_timeout = {self.passage_timeout}",
        ]
        path = self.work / "gate.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def make_video(self, scenes: list[tuple], fps: int = 15) -> list[tuple]:
        return _fake("video")(self.video, scenes, fps=fps)

    def start(self, stop_when_idle=None) -> GateDaemon:
        """Import the office's documents and start the daemon in a thread."""
        self.config = load_config(self.config_path)
        self.state = GateState(self.config)
        for name in ("trust-v1.cose", "revocations-v1.cose"):
            self.state.import_document(self.work / name)
        if self.collector is not None:
            from sync.identity import provision

            device, _ = provision(self.config.state_dir)
            self.collector.start(self.issuers.root.public_key)
            self.collector.enrol(self.config.gate_id, device.public_key)
        self.turnstile = build_turnstile(self.config, pin_factory=self.pin_factory)
        self.passenger = Passenger(self.pin_factory)
        self.passenger.start()
        self.daemon = GateDaemon(
            self.state,
            build_readers(self.config),
            self.turnstile,
            passage_timeout=self.passage_timeout,
            on_record=self._record,
            stop_when_idle=stop_when_idle,
        )
        self.thread = threading.Thread(target=self.daemon.run, name="decision-loop")
        self.thread.start()
        return self.daemon

    def _record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.printer is not None:
            self.printer(record)

    def decisions(self, source: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if r["kind"] == "decision" and (source is None or r["source"] == source)
        ]

    def relay_pulses(self) -> int:
        """How many times the relay pin went from locked to open (from the pin's history)."""
        states = [state for _, state in _pin_history(self.pin_factory.pin(PINS["relay"]))]
        return sum(1 for a, b in itertools.pairwise(states) if not a and b)

    def set_emergency(self, active: bool) -> None:
        pin = self.pin_factory.pin(PINS["emergency"])
        pin.drive_high() if active else pin.drive_low()

    def close(self) -> None:
        daemon = getattr(self, "daemon", None)
        if daemon is not None:
            daemon.stop.set()
            self.thread.join(timeout=10)
        passenger = getattr(self, "passenger", None)
        if passenger is not None:
            passenger.stop()
        for fake in (self.scanner, self.pn532, self.collector):
            if fake is not None:
                fake.close()
        state = getattr(self, "state", None)
        if state is not None:
            state.close()

    def __enter__(self) -> SimulatedGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cti_of(text: str) -> bytes:
    from gate.ticket import parse_ticket

    return parse_ticket(text).claims.cti


def _pin_history(pin: Any) -> list[tuple[float, bool]]:
    return [(entry.timestamp, bool(entry.state)) for entry in pin.states]


# The scripted demo ---------------------------------------------------------------------------


def camera_scenes(issuers: Issuers, revoked_text: str) -> list[tuple]:
    """About 30 tickets on camera: (text or None, seconds, options, expected reason)."""
    t = issuers.ticket
    used_twice = t("single")
    day_pass = t("pass", category="staff")
    plan = [
        (t("single"), 1.0, {}, "ok"),
        (t("single", zones=("A",)), 1.0, {"noise": 12}, "ok"),
        (t("multi"), 1.0, {}, "ok"),
        (t("single"), 3.0, {}, "ok"),  # held in view for 3 s: one decision
        (t("single", exp=issuers.now - DAY), 1.0, {}, "expired"),
        (t("single", zones=("B",)), 1.0, {}, "wrong_zone"),
        (revoked_text, 1.0, {}, "revoked"),
        (Issuers.forged(t("single")), 1.0, {}, "bad_signature"),
        (t("single", signer=issuers.rogue), 1.0, {}, "unknown_key"),
        (t("single"), 1.0, {"inverted": True}, "ok"),
        (t("single"), 1.0, {"blur": 1.5, "noise": 6}, "ok"),
        (used_twice, 1.0, {}, "ok"),
        (t("single", nbf=issuers.now + 7 * DAY), 1.0, {}, "not_yet_valid"),
        (used_twice, 1.0, {"noise": 8}, "used"),
        (day_pass, 1.0, {}, "ok"),
        (t("single"), 1.0, {"noise": 10}, "ok"),
        (day_pass, 1.0, {}, "passback"),  # the same pass again, after the dedup window
        ("https://example.com/not-a-ticket", 1.0, {}, None),  # not GT1: never decided
        (t("single"), 1.0, {"noise": 20}, "ok"),
        (t("pass"), 1.0, {"inverted": True, "noise": 10}, "ok"),
        (t("single", category="child"), 1.0, {}, "ok"),
    ]
    scenes = []
    for text, seconds, options, expected in plan:
        scenes.append((text, seconds, options, expected))
        scenes.append((None, 0.6, {"noise": 6}, None))
    return scenes


def run_simulation(keep: Path | None = None) -> int:
    """The ``gated --simulate`` demo; returns the exit code."""
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="gated-sim-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with SimulatedGate(work, collector=True) as sim:
            return _run_script(sim, started)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _print_record(started: float):
    def show(record: dict[str, Any]) -> None:
        elapsed = time.monotonic() - started
        if record["kind"] == "decision":
            latency = record.get("latency_ms")
            print(
                f"[{elapsed:5.1f}s] {record['source']:7} {record['decision']:6} "
                f"{record['reason']:13} {latency:7.1f} ms  {record.get('detail', '')[:60]}",
                flush=True,
            )
        else:
            print(
                f"[{elapsed:5.1f}s] {record['source']:7} event  {record['kind']:13} "
                f"           {record.get('detail', '')[:70]}",
                flush=True,
            )

    return show


def _run_script(sim: SimulatedGate, started: float) -> int:
    print(f"== simulated gate in {sim.work}")
    scenes = camera_scenes(sim.issuers, sim.revoked_text)
    print(f"   generating the camera video: {sum(1 for s in scenes if s[0])} codes ...")
    sim.make_video([(text, seconds, options) for text, seconds, options, _ in scenes])
    expected_camera = Counter(expected for _, _, _, expected in scenes if expected)
    sim.printer = _print_record(started)
    done = threading.Event()
    daemon = sim.start(stop_when_idle=done.is_set)
    if sim.collector is not None:
        print(f"   collector on {sim.collector.url} (SQLite in {sim.work / 'collector.db'})")
        threading.Thread(
            target=_watch_upload, args=(sim, started, done), name="watch-sync", daemon=True
        ).start()
    print("== decisions (time, reader, decision, reason, capture-to-relay latency, detail)")
    # pyserial empties the input buffer when it opens a port: feed once the readers are up.
    wait_until(lambda: all(r.health.get().state == "ok" for r in daemon.readers), 15)

    issuers = sim.issuers
    walk_away = issuers.ticket("single")
    serial_plan = [
        (issuers.ticket("single"), "ok"),
        ("hello world", "malformed"),
        ("GT1:NOT BASE45 !!", "malformed"),
        (issuers.ticket("multi"), "ok"),
        (sim.revoked_text, "revoked"),
        (issuers.ticket("single", exp=issuers.now - 60), "expired"),
    ]
    for text, _ in serial_plan:
        sim.scanner.send(text)
        time.sleep(0.8)
    sim.scanner.send_raw(b"\xff\xfe\x00binary junk\r")
    nfc_text = issuers.ticket("single", category="nfc")
    sim.pn532.place_tag(nfc_text)
    time.sleep(1.5)
    sim.pn532.remove_tag()

    # Wait for the video to end, then the walk-away and the emergency, in a quiet gate.
    wait_until(lambda: len(sim.decisions("camera")) >= sum(expected_camera.values()), 90)
    time.sleep(1.0)
    sim.passenger.stay_next.set()
    sim.scanner.send(walk_away)
    time.sleep(sim.passage_timeout + 1.0)
    sim.scanner.send(walk_away)  # annulled, so accepted again
    time.sleep(1.0)
    sim.set_emergency(True)
    time.sleep(1.0)
    emergency_open = bool(sim.pin_factory.pin(PINS["relay"]).state)
    sim.set_emergency(False)
    time.sleep(0.5)
    synced = _wait_for_upload(sim, started)
    done.set()
    sim.thread.join(timeout=10)
    pulled = _office_pull(sim) if sim.collector is not None else None
    expected_serial = Counter(reason for _, reason in serial_plan) + Counter(ok=2)
    return _summary(sim, started, expected_camera, expected_serial, emergency_open, synced, pulled)


def _local_last_seq(sim: SimulatedGate) -> int:
    newest = sim.state.store.query_log(limit=1, newest_first=True)
    return newest[0]["seq"] if newest else 0


def _watch_upload(sim: SimulatedGate, started: float, done: threading.Event) -> None:
    """Print the collector's holding as the gate's log arrives upstream."""
    shown = -1
    while not done.wait(3.0):
        held = sim.collector.last_seq(sim.config.gate_id)
        if held != shown:
            shown = held
            print(
                f"[{time.monotonic() - started:5.1f}s] sync    upstream  collector holds "
                f"{held} of the gate's {_local_last_seq(sim)} log records",
                flush=True,
            )


def _wait_for_upload(sim: SimulatedGate, started: float) -> bool:
    if sim.collector is None:
        return True
    gate_id = sim.config.gate_id
    held = wait_until(lambda: sim.collector.last_seq(gate_id) >= _local_last_seq(sim), 30)
    print(
        f"[{time.monotonic() - started:5.1f}s] sync    upstream  collector holds "
        f"{sim.collector.last_seq(gate_id)} of {_local_last_seq(sim)} records"
        + ("" if held else " (NOT all)"),
        flush=True,
    )
    return held


def _office_pull(sim: SimulatedGate) -> int | None:
    """The office pulls the gate's scans from the collector with gate-office, as CSV."""
    out = sim.work / "office-pull.csv"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gate-office"),
            "pull",
            "--url",
            sim.collector.url,
            "--format",
            "csv",
            "--out",
            str(out),
        ],
        env=os.environ | {"GATE_OFFICE_TOKEN": sim.collector.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    print("== office pull (gate-office pull --format csv)")
    if result.returncode != 0:
        print(f"   failed: {result.stderr.strip()}")
        return None
    rows = out.read_text().splitlines()[1:]
    print(f"   {len(rows)} records in {out.name}; the first ones:")
    for row in rows[:3]:
        print(f"   {row[:110]}")
    return len(rows)


def _summary(sim, started, expected_camera, expected_serial, emergency_open, synced, pulled) -> int:
    decisions = sim.decisions()
    by_reason = Counter(d["reason"] for d in decisions)
    by_source = Counter(d["source"] for d in decisions)
    accepted = by_reason.get("ok", 0)
    latencies = [d["latency_ms"] for d in decisions if d["reason"] == "ok"]
    camera_seen = Counter(d["reason"] for d in sim.decisions("camera"))
    events = Counter(r["kind"] for r in sim.records if r["kind"] != "decision")
    pulses = sim.relay_pulses()
    print("== summary")
    for reason, count in sorted(by_reason.items(), key=lambda item: -item[1]):
        print(f"   {reason:14} {count:3}")
    print(
        f"   {'decisions':14} {len(decisions):3}  "
        f"({', '.join(f'{k} {v}' for k, v in by_source.items())})"
    )
    print(
        f"   relay pulses   {pulses:3}  (accepts {accepted}; walked through "
        f"{sim.passenger.walked}, walked away {sim.passenger.stayed})"
    )
    print(f"   events         {', '.join(f'{k} {v}' for k, v in sorted(events.items()))}")
    if latencies:
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"   latency        p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms "
            "(capture or first byte -> relay)"
        )
    print(f"   elapsed        {time.monotonic() - started:.1f} s")
    problems = []
    if pulses != accepted + events.get("emergency_open", 0):
        problems.append(f"relay opened {pulses} times for {accepted} accepts and 1 emergency")
    if camera_seen != expected_camera:
        problems.append(f"camera decisions {dict(camera_seen)} != expected {dict(expected_camera)}")
    serial_seen = Counter(d["reason"] for d in sim.decisions("serial"))
    if serial_seen != expected_serial:
        problems.append(f"serial decisions {dict(serial_seen)} != expected {dict(expected_serial)}")
    if Counter(d["reason"] for d in sim.decisions("nfc")) != Counter(ok=1):
        problems.append("the NFC tag was not admitted exactly once")
    if events.get("annulled", 0) != 1:
        problems.append("the walk-away was not annulled")
    if not emergency_open or events.get("emergency_open") != 1:
        problems.append("the emergency input did not hold the gate open")
    if sim.collector is not None and not synced:
        problems.append("the collector did not receive the whole log")
    if sim.collector is not None and pulled is None:
        problems.append("the office pull failed")
    for problem in problems:
        print(f"UNEXPECTED: {problem}")
    if not problems:
        print("all as expected")
    return 1 if problems else 0
