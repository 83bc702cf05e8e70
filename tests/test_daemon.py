"""gated end to end on simulated devices: a generated camera video, a pty scanner, a
simulated PN532, and gpiozero's MockFactory, driven by the real daemon."""

from __future__ import annotations

import os
import time

import pytest

from gate.simulation import PINS, SimulatedGate
from gate.simulation import wait_until as wait


def ctis(records) -> list[str | None]:
    return [r["cti"].hex() if r.get("cti") else None for r in records]


def events(sim: SimulatedGate, kind: str) -> list[dict]:
    return [r for r in sim.records if r["kind"] == kind]


def _status(sim: SimulatedGate) -> dict:
    import json

    from helpers_cli import run_script

    result = run_script("gatectl", "--config", str(sim.config_path), "status", "--json")
    assert result.returncode in (0, 5), result.stderr  # 5: problems listed
    return json.loads(result.stdout)


def cti_of(text: str) -> str:
    from gate.ticket import parse_ticket

    return parse_ticket(text).claims.cti.hex()


def test_relay_pulses_once_per_accept_and_a_held_code_gives_one_decision(tmp_path):
    with SimulatedGate(tmp_path, nfc=False) as sim:
        t = sim.issuers.ticket
        held, quick, inverted = t("single"), t("single"), t("pass")
        expired, forged = t("single", exp=sim.issuers.now - 3600), sim.issuers.forged(t())
        sim.make_video(
            [
                (None, 0.5),
                (held, 3.0),  # held in front of the camera for 3 seconds
                (None, 0.5),
                (expired, 0.8),
                (None, 0.5),
                (quick, 0.8, {"noise": 10}),
                (None, 0.5),
                (forged, 0.8),
                (None, 0.5),
                (inverted, 0.8, {"inverted": True}),
                (None, 0.5),
            ]
        )
        daemon = sim.start()
        assert wait(lambda: all(r.health.get().state == "ok" for r in daemon.readers))
        sim.scanner.send(t("single"))
        sim.scanner.send("not a ticket at all")
        assert wait(lambda: len(sim.decisions("serial")) == 2)
        assert wait(lambda: len(sim.decisions("camera")) == 5, timeout=30)
        assert wait(lambda: "end of video" in daemon.readers[0].health.get().reason)
        camera = sim.decisions("camera")
        assert ctis(camera) == [cti_of(x) for x in (held, expired, quick, forged, inverted)]
        assert [d["reason"] for d in camera] == ["ok", "expired", "ok", "bad_signature", "ok"]
        assert [d["reason"] for d in sim.decisions("serial")] == ["ok", "malformed"]
        time.sleep(0.5)  # let the last passage finish
        accepted = sum(1 for d in sim.decisions() if d["decision"] == "accept")
        assert accepted == 4
        assert sim.relay_pulses() == accepted
        assert sim.passenger.walked == accepted
        assert not sim.pin_factory.pin(PINS["relay"]).state  # locked again
        assert all(d["latency_ms"] >= 0 for d in sim.decisions())


def test_a_passage_timeout_annuls_the_admission(tmp_path):
    with SimulatedGate(tmp_path, camera=False, nfc=False, passage_timeout=0.8) as sim:
        daemon = sim.start()
        assert wait(lambda: daemon.readers[0].health.get().state == "ok")
        ticket = sim.issuers.ticket("single")
        sim.passenger.stay_next.set()
        sim.scanner.send(ticket)
        assert wait(lambda: len(events(sim, "annulled")) == 1)
        assert not sim.pin_factory.pin(PINS["relay"]).state  # relocked
        sim.scanner.send(ticket)
        assert wait(lambda: len(sim.decisions()) == 2)
        assert [d["reason"] for d in sim.decisions()] == ["ok", "ok"]
        rows = sim.state.store._conn.execute(
            "SELECT seq, annulled_at IS NOT NULL, annul_reason FROM admission ORDER BY seq"
        ).fetchall()
        assert rows == [(1, 1, "passage timeout"), (2, 0, None)]
        sim.scanner.send(ticket)  # the second admission stands: now it is used
        assert wait(lambda: len(sim.decisions()) == 3)
        assert sim.decisions()[-1]["reason"] == "used"


def test_the_emergency_input_opens_and_holds_the_gate(tmp_path):
    with SimulatedGate(tmp_path, camera=False, nfc=False, passage_timeout=0.5) as sim:
        daemon = sim.start()
        relay = sim.pin_factory.pin(PINS["relay"])
        assert wait(lambda: daemon.readers[0].health.get().state == "ok")
        sim.set_emergency(True)
        assert wait(lambda: bool(relay.state))
        assert wait(lambda: len(events(sim, "emergency_open")) == 1)
        sim.scanner.send("garbage while the gate is open")
        sim.scanner.send(sim.issuers.ticket("single"))
        assert wait(lambda: len(sim.decisions()) == 2)
        time.sleep(0.7)
        assert relay.state, "the gate must stay open while the emergency input is active"
        assert daemon.health()["emergency"] is True
        sim.set_emergency(False)
        assert wait(lambda: not relay.state)
        assert wait(lambda: len(events(sim, "emergency_clear")) == 1)
        # normal operation again: an accept opens and the passenger's passage relocks
        pulses = sim.relay_pulses()
        sim.scanner.send(sim.issuers.ticket("single"))
        assert wait(lambda: len(sim.decisions()) == 3)
        assert wait(lambda: sim.relay_pulses() == pulses + 1 and not relay.state)
        assert daemon.health()["emergency"] is False


def test_with_the_camera_gone_the_serial_reader_is_served_and_the_camera_comes_back(tmp_path):
    with SimulatedGate(tmp_path, nfc=False) as sim:
        assert not sim.video.exists()  # the camera's device is missing
        daemon = sim.start()
        camera, serial = daemon.readers
        assert wait(lambda: serial.health.get().state == "ok")
        assert wait(lambda: camera.health.get().state == "failed")
        assert daemon.health()["devices"]["camera"]["state"] == "failed"
        assert daemon.health()["gate"] == "degraded"
        # A technician sees it with gatectl status (from the health file gated writes).
        assert wait(lambda: _status(sim)["daemon"]["devices"]["camera"]["state"] == "failed")
        status = _status(sim)["daemon"]
        assert status["gate"] == "degraded" and status["age_seconds"] < 5
        sim.scanner.send(sim.issuers.ticket("single"))
        assert wait(lambda: [d["reason"] for d in sim.decisions("serial")] == ["ok"])
        # The camera comes back: the reader picks it up and decides on what it sees.
        ticket = sim.issuers.ticket("single")
        building = sim.video.with_name("building.avi")
        sim.video = building
        sim.make_video([(None, 0.3), (ticket, 1.0), (None, 0.5)])
        os.replace(building, tmp_path / "camera.avi")
        assert wait(lambda: len(sim.decisions("camera")) == 1, timeout=15)
        assert sim.decisions("camera")[0]["reason"] == "ok"
        assert any(e["source"] == "camera" for e in events(sim, "device_failed"))
        assert any(e["source"] == "camera" for e in events(sim, "device_ok"))
        health = (sim.config.state_dir / "health.json").read_text()
        assert '"camera"' in health


def test_garbage_from_every_reader_never_opens_the_gate(tmp_path):
    with SimulatedGate(tmp_path, camera=False) as sim:
        daemon = sim.start()
        assert wait(lambda: all(r.health.get().state == "ok" for r in daemon.readers))
        garbage = [
            "",
            " ",
            "GT1:",
            "GT1:" + "A" * 990,
            "GT1:" + "%" * 3000,
            "\x00\x01\x02",
            "DROP TABLE admission;",
        ]
        for line in garbage:
            sim.scanner.send(line)
        sim.scanner.send_raw(os.urandom(4096).replace(b"\r", b"") + b"\r")
        sim.scanner.send_raw(b"x" * 200_000)  # no terminator at all
        sim.scanner.send_raw(b"\r")
        sim.pn532.place_tag("GT1:NOT A REAL TICKET")
        assert wait(lambda: len(sim.decisions("nfc")) == 1)
        decisions = sim.decisions()
        assert decisions and all(d["decision"] == "reject" for d in decisions)
        assert sim.relay_pulses() == 0
        assert sim.thread.is_alive()
        sim.pn532.remove_tag()
        sim.scanner.send(sim.issuers.ticket("single"))
        assert wait(lambda: sim.decisions()[-1]["reason"] == "ok")


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_gated_stops_cleanly_on_signals(tmp_path, signal_name):
    import signal
    import subprocess

    from helpers_cli import BIN

    from keys.keyfile import KeyPair

    root = KeyPair.generate()
    config = tmp_path / "gate.toml"
    config.write_text(
        f'[gate]\nid = "g"\nzone = "A"\nstate_dir = "state"\n'
        f'root_public_key = "{root.public_key.hex()}"\n'
    )
    process = subprocess.Popen(
        [str(BIN / "gated"), "--stdin", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdin.write("hello\n")
    process.stdin.flush()
    assert '"malformed"' in process.stdout.readline()
    process.send_signal(getattr(signal, signal_name))
    process.wait(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in process.stderr.read()
