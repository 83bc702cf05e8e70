"""gatectl status and import: one screen for the technician, JSON and exit codes for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ProvisionedGate, write_gate_config
from helpers_cli import BIN, run_script

from gate.runlock import RunLock, running_pid
from gate.simulation import wait_until
from keys.documents import revocation_list

EXIT_PROBLEMS = 5


def _status(gate: ProvisionedGate) -> tuple[int, dict]:
    result = gate.gatectl("status", "--json")
    assert result.returncode in (0, EXIT_PROBLEMS), result.stderr
    return result.returncode, json.loads(result.stdout)


def _relaxed(gate: ProvisionedGate, extra: str = "") -> None:
    """This machine's clock is not NTP-synchronised: a gate that does not require it."""
    write_gate_config(gate.config, gate.root, extra=extra)
    text = gate.config.read_text().replace("[gate]\n", "[gate]\nrequire_ntp = false\n", 1)
    gate.config.write_text(text)


def _import(gate: ProvisionedGate, document: bytes, name: str) -> dict:
    path = gate.dir / name
    path.write_bytes(document)
    result = gate.gatectl("import", "--json", str(path))
    entries = json.loads(result.stdout)
    assert len(entries) == 1 and entries[0]["file"] == str(path)
    return {"returncode": result.returncode, **entries[0]}


class RunningGated:
    """gated reading codes from a pipe that stays open: it runs until stopped."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "gated"), "--stdin", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> str:
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=10)
        return stderr


@pytest.fixture
def running(gate):
    _relaxed(gate)
    gated = RunningGated(gate.config)
    state = gate.dir / "state"
    assert wait_until(lambda: (state / "health.json").exists() and running_pid(state), 10)
    yield gated
    assert "Traceback" not in gated.stop()


def test_import_json_reports_each_file_and_exit_code(gate):
    good = _import(gate, revocation_list(gate.root, 3, tickets=[]), "rev-3.cose")
    assert good == {
        "returncode": 0,
        "file": good["file"],
        "imported": True,
        "kind": "revocation list",
        "version": 3,
        "summary": good["summary"],
    }
    older = _import(gate, revocation_list(gate.root, 2), "rev-2.cose")
    assert older["returncode"] == 1 and older["imported"] is False
    assert "not newer" in older["error"] or "older" in older["error"]
    garbage = _import(gate, os.urandom(300), "garbage.cose")
    assert garbage["returncode"] == 1 and garbage["imported"] is False and garbage["error"]


def test_a_healthy_gate_has_no_problems_and_exits_0(gate, running):
    _import(gate, revocation_list(gate.root, 1), "rev-1.cose")
    code, status = _status(gate)
    assert status["problems"] == [] and code == 0
    daemon = status["daemon"]
    assert daemon["running"] is True and daemon["pid"] == running.process.pid
    assert 0 <= daemon["uptime_seconds"] < 60 and daemon["version"] == status["version"]
    assert daemon["devices"]["stdin"]["state"] == "ok"
    assert status["clock"]["ok"] is True and status["clock"]["ntp_synchronized"] in (True, False)
    disk = status["disk"]
    assert disk["free_bytes"] > 0 and disk["total_bytes"] >= disk["free_bytes"]
    assert disk["database_bytes"] >= (gate.dir / "state" / "gate.db").stat().st_size
    human = gate.gatectl("status").stdout
    assert "problems      none found" in human
    assert f"pid {running.process.pid}, up " in human
    assert "disk          " in human and "NTP " in human


def test_status_puts_what_is_wrong_first(gate):
    code, status = _status(gate)
    assert code == EXIT_PROBLEMS
    problems = status["problems"]
    assert "gated has never run with this state directory" in problems
    assert "no revocation list imported yet" in problems
    human = gate.gatectl("status")
    assert human.returncode == EXIT_PROBLEMS
    lines = human.stdout.splitlines()
    assert lines[1].startswith("PROBLEMS")
    assert "  ! no revocation list imported yet" in lines


def test_a_stopped_gated_and_a_stale_revocation_list_are_problems(gate, running):
    month_ago = int(time.time()) - 30 * 86400
    _import(gate, revocation_list(gate.root, 1, issued_at=month_ago), "rev-1.cose")
    assert running.stop() is not None
    _, status = _status(gate)
    assert status["daemon"]["running"] is False
    assert "gated is not running" in status["problems"]
    assert "revocation list is stale: issued 30 days ago" in status["problems"]
    assert "NOT RUNNING" in gate.gatectl("status").stdout


def test_a_second_gated_on_the_same_state_refuses_to_start(gate, running):
    second = run_script("gated", "--stdin", "--config", str(gate.config), input="")
    assert second.returncode == 1
    assert f"another gated (pid {running.process.pid}) already serves" in second.stderr
    assert "Traceback" not in second.stderr


def test_the_run_lock_dies_with_its_process(tmp_path):
    lock = RunLock(tmp_path)
    assert running_pid(tmp_path) is None
    lock.acquire()
    assert running_pid(tmp_path) == os.getpid()
    lock.release()
    assert running_pid(tmp_path) is None


def test_clock_offset_from_the_collector_is_shown_and_checked(gate):
    _relaxed(gate)
    state = gate.dir / "state"
    state.mkdir(exist_ok=True)
    (state / "sync.json").write_text(json.dumps({"state": "idle", "clock_offset": -95.5}))
    _, status = _status(gate)
    assert status["clock"]["collector_offset"] == -95.5
    assert "clock: -95.5 s off the collector's clock" in status["problems"]
    assert "offset from collector -95.500 s" in gate.gatectl("status").stdout


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[1, 2]", b'{"clock_offset": "soon"}', b"\xff\xfe\x00", b"null"]
)
def test_garbage_state_files_never_crash_status(gate, content):
    state = gate.dir / "state"
    (state / "sync.json").write_bytes(content)
    (state / "health.json").write_bytes(content)
    code, status = _status(gate)
    assert code == EXIT_PROBLEMS
    assert status["clock"]["collector_offset"] is None
    human = gate.gatectl("status")
    assert human.returncode == EXIT_PROBLEMS and "Traceback" not in human.stderr
