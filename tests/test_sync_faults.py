"""The scan log reaches the collector whole through a bad network and through crashes.

Acceptance (store-and-forward sync):

1. **Faults.** A proxy between gate and collector (tests/sync_proxy.py) drops connections,
   resets them mid-body, delays, answers 500, loses answers after the collector has served
   them, cuts answers short and holds them past the read timeout, at random (seeded). The
   gate logs 10,000 scans meanwhile; then the faults stop. The collector holds exactly
   10,000 records for the gate, seqs 1 to 10,000 once each in the order received, the chain
   verified: none lost, none duplicated.
2. **Crashes.** The gate process (the sync agent, plus decisions being logged) is SIGKILLed at
   random moments during upload at least 20 times, the collector at least 5 times, with new
   records logged between kills. The same result holds for every record the gate logged.

Test 2 runs on SQLite and on PostgreSQL; a third test crashes the PostgreSQL server itself
under the collector. The proxy is checked fault by fault first, so that a proxy injecting
nothing cannot make the rest pass vacuously.

The real collector (sync/collector, run by tests/collector_fixtures.py), the real agent
(sync/agent.py) and the real gate store; nothing is mocked. Run as a script, this file is the
gate process of test 2 (``python tests/test_sync_faults.py gate-process ...``).
"""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_fixtures import (
    chain_records,
    from_wire,
    postgres_cluster,
    postgres_unavailable,
    running_collector,
)
from sync_proxy import FAULTS, FaultyProxy

from gate.config import GateConfig, load_config
from gate.scanlog import verify_chain
from gate.state import GateState
from gate.store import GateStore
from keys.documents import trust_bundle
from keys.keyfile import KeyPair
from sync.agent import SyncAgent
from sync.identity import provision

GATE_ID = "north-01"
TOKEN = "office-token-for-fault-tests"
SEED = 20261125
THIS_FILE = Path(__file__).resolve()
ROOT_DIR = THIS_FILE.parent.parent


# A gate ----------------------------------------------------------------------------------------


@dataclass
class Gate:
    config: GateConfig
    root: KeyPair
    device: KeyPair

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    def agent(self, url: str, **kwargs: Any) -> SyncAgent:
        return SyncAgent(self.state_dir, GATE_ID, url, self.root.public_key, **kwargs)

    def store(self) -> GateStore:
        return GateStore.in_state_dir(self.state_dir)


def provision_gate(where: Path) -> Gate:
    """A gate as the office sets one up: root key, trust bundle, gate.toml, device key."""
    where.mkdir(parents=True, exist_ok=True)
    root, issuer = KeyPair.generate(), KeyPair.generate()
    path = where / "gate.toml"
    path.write_text(
        f'[gate]\nid = "{GATE_ID}"\nzone = "A"\nstate_dir = "state"\n'
        f'root_public_key = "{root.public_key.hex()}"\n'
    )
    config = load_config(path)
    device, _ = provision(config.state_dir)
    with GateState(config) as state:
        state.bundle.install(
            trust_bundle([{"name": "metro", "public_key": issuer.public_key}], root, 1)
        )
    return Gate(config, root, device)


#: (decision, reason, weight): mostly accepts, the rejects a real gate sees
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


def scan_record(rng: random.Random) -> dict[str, Any]:
    """One scan log record shaped like GateDaemon._decision_record (or, rarely, an event)."""
    if rng.random() < 0.01:
        return {
            "at": time.time(),
            "kind": "device",
            "source": rng.choice(SOURCES),
            "detail": rng.choice(("ok", "no frame for 2 s", "reopened")),
            "data": None,
        }
    decision, reason, _ = rng.choices(OUTCOMES, [o[2] for o in OUTCOMES])[0]
    readable = reason != "malformed"
    return {
        "at": time.time(),
        "kind": "decision",
        "source": rng.choice(SOURCES),
        "decision": decision,
        "reason": reason,
        "detail": "admitted" if decision == "accept" else f"ticket refused: {reason}",
        "kid": rng.choice(KIDS) if readable else None,
        "cti": rng.randbytes(16) if readable else None,
        "admission_seq": rng.randint(1, 3) if decision == "accept" else None,
        "latency_ms": round(rng.uniform(0.3, 45.0), 3),
        "data": {"product": "single", "key": "metro"} if readable else None,
    }


def log_scans(store: GateStore, count: int, rng: random.Random, pause: float = 0.0) -> None:
    for _ in range(count):
        store.append_log(scan_record(rng))
        if pause:
            time.sleep(pause)


def wait_for(condition: Callable[[], bool], seconds: float, what: Callable[[], Any]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what()}")
        time.sleep(0.02)


def assert_collector_holds_the_gates_log(collector, gate: Gate) -> int:
    """The collector holds every record the gate logged, once, in order, chain verified."""
    with gate.store() as store:
        expected = store.log_records(0, 10**9)
    count = len(expected)
    held = collector.scans(gate=GATE_ID)
    seqs = [record["seq"] for record in held]
    assert len(seqs) == count, f"{len(seqs)} held for {count} logged"
    assert seqs == list(range(1, count + 1)), "lost, duplicated or out of order"
    records = [from_wire(record) for record in held]
    assert verify_chain(records) is None
    assert [r["hash"] for r in records] == [r["hash"] for r in expected]
    for mine, theirs in zip(expected, records, strict=True):  # every field, byte for byte
        assert {name: theirs[name] for name in mine} == mine
    fleet = collector.gate(GATE_ID)
    assert (fleet["last_seq"], fleet["chain_status"]) == (count, "ok")
    assert fleet["last_hash"] == expected[-1]["hash"].hex()
    return count


# The proxy itself ------------------------------------------------------------------------------

PROXY_CASES = {
    # fault: (what the client sees, records the collector holds after it)
    "pass": (200, 5),
    "delay": (200, 5),
    "error_500": (500, 0),
    "close": (httpx.RemoteProtocolError, 0),
    "reset": (httpx.TransportError, 0),
    "drop_reply": (httpx.TransportError, 5),
    "truncate": (httpx.TransportError, 5),
    "stall": (httpx.ReadTimeout, 5),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_of_the_proxy_does_what_it_says(tmp_path, fault):
    """Without this, a proxy that injected nothing would make the tests below pass vacuously."""
    gate_key = KeyPair.generate()
    seen, held = PROXY_CASES[fault]
    with (
        running_collector(tmp_path, token=TOKEN, mode="thread") as collector,
        FaultyProxy(collector.url, weights={fault: 1}, max_delay=0.05, stall=1.0) as proxy,
    ):
        collector.enrol(GATE_ID, gate_key.public_key)
        client = collector.gate_client(GATE_ID, gate_key)
        client.http = httpx.Client(base_url=proxy.url, timeout=0.5)
        try:
            if isinstance(seen, int):
                answer = client.push(chain_records(5))
                assert answer.status_code == seen, answer.text
                assert fault != "error_500" or answer.text == "proxy: injected fault"
            else:
                with pytest.raises(seen):
                    client.push(chain_records(5))
        finally:
            client.http.close()
        assert proxy.counts == {fault: 1}
        assert collector.gate(GATE_ID)["last_seq"] == held
        assert proxy.errors == []
        proxy.faults = False  # the switch: the same proxy now passes everything
        direct = collector.gate_client(GATE_ID, gate_key)
        direct.http = httpx.Client(base_url=proxy.url, timeout=5)
        answer = direct.push(chain_records(10))
        direct.http.close()
        assert answer.status_code == 200 and answer.json()["acked_seq"] == 10


def test_a_request_cut_mid_body_is_not_an_unexpected_error(tmp_path, caplog):
    """A gate on a bad link loses connections mid-upload all the time; the collector should
    shrug (a line at most), not log a 500 and a traceback for each as if it had a bug."""
    gate_key = KeyPair.generate()
    with (
        running_collector(tmp_path, token=TOKEN, mode="thread") as collector,
        FaultyProxy(collector.url, seed=SEED, weights={"reset": 1}) as proxy,
    ):
        collector.enrol(GATE_ID, gate_key.public_key)
        client = collector.gate_client(GATE_ID, gate_key)
        client.http = httpx.Client(base_url=proxy.url, timeout=5)
        try:
            for _ in range(3):
                with pytest.raises(httpx.TransportError):
                    client.push(chain_records(300))
        finally:
            client.http.close()
        time.sleep(0.3)  # the collector notices the cut on its next read
        assert collector.gate(GATE_ID)["last_seq"] == 0
    unexpected = [
        record.getMessage()
        for record in caplog.records
        if record.name == "gate-collector" and record.levelno >= logging.ERROR
    ]
    assert unexpected == []


# 1. Faults -------------------------------------------------------------------------------------

SCANS = 10_000
#: about half the requests struck; a stall costs the agent its read timeout, so it is rarer
UPLOAD_WEIGHTS = {
    "pass": 45,
    "close": 8,
    "reset": 8,
    "delay": 10,
    "error_500": 8,
    "drop_reply": 8,
    "truncate": 8,
    "stall": 5,
}


def test_ten_thousand_scans_through_a_faulty_network_arrive_once_in_order(tmp_path, capsys):
    gate = provision_gate(tmp_path / "gate")
    (tmp_path / "collector").mkdir()
    started = time.monotonic()
    with (
        running_collector(
            tmp_path / "collector", root_public_key=gate.root.public_key, token=TOKEN
        ) as collector,
        FaultyProxy(
            collector.url, seed=SEED, weights=UPLOAD_WEIGHTS, max_delay=0.2, stall=1.3
        ) as proxy,
    ):
        collector.enrol(GATE_ID, gate.device.public_key)
        agent = gate.agent(
            proxy.url,
            batch_size=100,
            interval=0.05,
            timeout=(1.0, 1.0),
            backoff_base=0.05,
            backoff_cap=0.5,
            rng=random.Random(SEED),
        )

        def upload_faults() -> dict[str, int]:
            struck = Counter(fault for line, fault in proxy.log if line.endswith("/scans"))
            return {fault: struck[fault] for fault in FAULTS}

        def decisions() -> None:
            """The decision loop, logging scans while the agent uploads. The last 500 come
            slowly until every kind of fault has struck an upload three times, so that no
            kind goes untried whatever the draw (there are uploads only while there is a
            backlog)."""
            rng = random.Random(SEED)
            with gate.store() as store:
                log_scans(store, SCANS - 500, rng, pause=0.001)
                for _ in range(500):
                    log_scans(store, 1, rng)
                    time.sleep(0.001 if min(upload_faults().values()) >= 3 else 0.03)

        writer = threading.Thread(target=decisions, name="decisions")
        writer.start()
        agent.start()
        try:
            writer.join(timeout=60)
            assert not writer.is_alive()
            logged_at = time.monotonic()
            # every kind of fault struck uploads while the gate was logging
            assert min(upload_faults().values()) >= 3, upload_faults()
            proxy.faults = False
            faulty_requests, struck = proxy.requests, upload_faults()
            faults_off_at = time.monotonic()
            wait_for(
                lambda: agent.status["acked_seq"] == SCANS and agent.status["state"] == "ok",
                30,
                lambda: agent.status,
            )
            done_at = time.monotonic()
        finally:
            assert agent.stop(timeout=5)
        assert proxy.errors == []
        assert assert_collector_holds_the_gates_log(collector, gate) == SCANS
        with gate.store() as store:
            assert store.sync_value("acked_seq") == SCANS
    with capsys.disabled():
        print(
            f"\n[faults] {SCANS} scans logged in {logged_at - started:.1f} s; "
            f"{faulty_requests} requests with faults on, uploads among them: {struck}; "
            f"faults off after {faults_off_at - started:.1f} s, all acknowledged "
            f"{done_at - faults_off_at:.1f} s later; {proxy.requests} requests in all"
        )


# 2. Crashes ------------------------------------------------------------------------------------

AGENT_KILLS = 30
COLLECTOR_KILLS = 6
CHILD_BATCH = 25


def gate_process(state_dir: str, url: str, root_hex: str, seed: str, appends: str) -> None:
    """The gate process of test 2: the sync agent in a thread, as gated runs it, and a
    decision loop logging ``appends`` scans meanwhile; runs until killed."""
    agent = SyncAgent(
        Path(state_dir),
        GATE_ID,
        url,
        bytes.fromhex(root_hex),
        batch_size=CHILD_BATCH,
        interval=0.05,
        timeout=(1.0, 2.0),
        backoff_base=0.05,
        backoff_cap=0.3,
        rng=random.Random(int(seed)),
    )
    agent.start()
    with GateStore.in_state_dir(Path(state_dir)) as store:
        log_scans(store, int(appends), random.Random(int(seed)), pause=0.002)
    threading.Event().wait()


class GateProcess:
    def __init__(self, gate: Gate, url: str, seed: int, appends: int, log: Path) -> None:
        command = [
            sys.executable, str(THIS_FILE), "gate-process", str(gate.state_dir), url,
            gate.root.public_key.hex(), str(seed), str(appends),
        ]  # fmt: skip
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT_DIR, stdout=out, stderr=out)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkilled_gate_and_collector_lose_and_duplicate_nothing(tmp_path, capsys, backend):
    if backend == "postgresql" and postgres_unavailable():
        pytest.skip(postgres_unavailable())
    gate = provision_gate(tmp_path / "gate")
    (tmp_path / "collector").mkdir()
    rng = random.Random(SEED)
    collector_rounds = set(rng.sample(range(2, AGENT_KILLS - 1), COLLECTOR_KILLS))
    child_log = tmp_path / "gate-process.log"
    probe = gate.store()  # the test's own connection, to watch acked_seq and the log
    mid_upload = collector_kills = lost_acks = 0
    started = time.monotonic()

    def acked() -> int:
        return probe.sync_value("acked_seq", 0)

    def last() -> int:
        newest = probe.recent_log(1)
        return newest[0]["seq"] if newest else 0

    with running_collector(
        tmp_path / "collector", backend, root_public_key=gate.root.public_key, token=TOKEN
    ) as collector:
        collector.enrol(GATE_ID, gate.device.public_key)
        for round_ in range(AGENT_KILLS):
            log_scans(probe, rng.randint(50, 200), rng)  # logged between kills
            before = acked()
            child = GateProcess(gate, collector.url, rng.getrandbits(32), 150, child_log)
            try:
                # a random moment during the upload: after some batches were acknowledged
                target = before + CHILD_BATCH * rng.randint(1, 5)
                wait_for(lambda t=target: acked() >= t, 20, lambda: (acked(), last()))
                if round_ in collector_rounds:
                    time.sleep(rng.uniform(0, 0.03))
                    collector.kill()  # SIGKILL, mid-ingest or close to it
                    collector_kills += 1
                    time.sleep(rng.uniform(0.05, 0.3))
                    collector.start()
                    resumed = acked()
                    if resumed == last():  # all uploaded before the kill: give it more
                        log_scans(probe, 20, random.Random(round_))
                    wait_for(lambda r=resumed: acked() > r, 20, lambda: (acked(), last()))
                time.sleep(rng.uniform(0, 0.05))
                mid_upload += acked() < last()
            finally:
                child.kill()
            # the collector committed a batch whose answer the gate did not live to store
            lost_acks += collector.gate(GATE_ID)["last_seq"] > acked()
        # then the gate runs undisturbed until everything is acknowledged
        child = GateProcess(gate, collector.url, rng.getrandbits(32), 0, child_log)
        try:
            wait_for(lambda: acked() == last(), 30, lambda: (acked(), last()))
        finally:
            child.kill()
        probe.close()
        count = assert_collector_holds_the_gates_log(collector, gate)
    elapsed = time.monotonic() - started
    assert collector_kills >= 5
    assert mid_upload >= 20, f"only {mid_upload} of {AGENT_KILLS} kills hit a backlog"
    with capsys.disabled():
        print(
            f"\n[crashes, {backend}] {count} records; gate SIGKILLed {AGENT_KILLS} times "
            f"during upload ({mid_upload} with a backlog left, {lost_acks} between the "
            f"collector's commit and the gate's), collector {collector_kills} times; "
            f"{elapsed:.1f} s"
        )


POSTGRES_RESTARTS = 4


def test_postgresql_restarted_under_the_collector_loses_nothing(tmp_path, capsys, caplog):
    """The database server crashes (``pg_ctl -m immediate``) and comes back while a gate
    uploads: the collector answers 503 meanwhile, reconnects on its own (docs/collector.md),
    and the agent's retries get everything there once.

    The tests' cluster runs with ``synchronous_commit=off`` (collector_fixtures), so a crash
    may lose the last batches the collector had acknowledged: the next upload is then a gap,
    answered 409 with the collector's count, and the agent resyncs back to it and resends
    (records it still holds, as a gate never lets go of any)."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    gate = provision_gate(tmp_path / "gate")
    (tmp_path / "collector").mkdir()
    rng = random.Random(SEED)
    started = time.monotonic()
    with postgres_cluster() as cluster:

        def restart() -> None:
            data = str(cluster.data)
            cluster._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
            time.sleep(rng.uniform(0.05, 0.5))
            options = (
                f"-p {cluster.port} -k {cluster.dir} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            log = str(cluster.dir / "server.log")
            cluster._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start")

        with running_collector(
            tmp_path / "collector",
            "postgresql",
            root_public_key=gate.root.public_key,
            token=TOKEN,
            postgres=cluster,
        ) as collector:
            collector.enrol(GATE_ID, gate.device.public_key)
            agent = gate.agent(
                collector.url,
                batch_size=50,
                interval=0.05,
                timeout=(1.0, 2.0),
                backoff_base=0.05,
                backoff_cap=0.3,
                rng=random.Random(SEED),
            )

            def decisions() -> None:
                with gate.store() as store:
                    log_scans(store, 3000, random.Random(SEED), pause=0.002)

            writer = threading.Thread(target=decisions, name="decisions")
            writer.start()
            agent.start()
            try:
                for _ in range(POSTGRES_RESTARTS):
                    time.sleep(rng.uniform(0.3, 1.2))  # a random moment of the upload
                    restart()
                writer.join(timeout=60)
                assert not writer.is_alive()
                wait_for(
                    lambda: agent.status["backlog"] == 0 and agent.status["state"] == "ok",
                    30,
                    lambda: agent.status,
                )
            finally:
                assert agent.stop(timeout=5)
            count = assert_collector_holds_the_gates_log(collector, gate)
            unavailable = collector.log_tail(10_000).count("database error")
            assert unavailable > 0  # the restarts did strike requests
    resyncs = [r.getMessage() for r in caplog.records if "resync" in r.getMessage()]
    with capsys.disabled():
        print(
            f"\n[postgresql restarts] {count} records, {POSTGRES_RESTARTS} restarts; "
            f"{unavailable} requests answered 503 while it was down; {len(resyncs)} resyncs "
            f"after acknowledged batches were lost {resyncs}; "
            f"{time.monotonic() - started:.1f} s"
        )


if __name__ == "__main__" and sys.argv[1:2] == ["gate-process"]:
    gate_process(*sys.argv[2:])
