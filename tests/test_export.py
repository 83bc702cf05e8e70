"""gatectl export: an offline gate's scan log to a USB stick, then pruned like a synced one."""

from __future__ import annotations

import csv
import json
import time

from conftest import write_gate_config
from helpers_cli import run_script

from gate.config import load_config
from gate.daemon import GateDaemon
from gate.scanlog import verify_chain
from gate.state import GateState
from gate.store import GENESIS


def _decide(gate, *lines: str) -> None:
    result = run_script("gated", "--stdin", "--config", str(gate.config), input="\n".join(lines))
    assert result.returncode == 0, result.stderr


def _export(gate, directory) -> tuple[int, dict]:
    result = gate.gatectl("export", "--json", str(directory))
    return result.returncode, json.loads(result.stdout) if result.stdout else result.stderr


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _as_records(rows: list[dict]) -> list[dict]:
    records = []
    for row in rows:
        record = {k: v for k, v in row.items() if k != "gate_id"}
        for name in ("seq", "admission_seq"):
            record[name] = int(record[name]) if record.get(name) else None
        for name in ("at", "latency_ms"):
            record[name] = float(record[name]) if record.get(name) else None
        for name in ("kid", "cti", "prev_hash", "hash"):
            record[name] = bytes.fromhex(record[name]) if record.get(name) else None
        records.append({k: (None if v == "" else v) for k, v in record.items()})
    return records


def test_export_writes_each_record_once_with_its_chain_and_lets_retention_prune(gate, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    _decide(gate, "garbage one", "GT1:not-base45")
    code, first = _export(gate, usb)
    assert code == 0 and first["first_seq"] == 1 and first["records"] == first["last_seq"]
    rows = _rows(first["file"])
    assert len(rows) == first["records"] >= 4  # boot, 2 decisions, shutdown
    assert {row["gate_id"] for row in rows} == {"test-gate"}
    assert [int(row["seq"]) for row in rows] == list(range(1, first["last_seq"] + 1))
    assert any(row["reason"] == "malformed" for row in rows)
    assert verify_chain(_as_records(rows), GENESIS, 0) is None  # the office can check it

    status = json.loads(gate.gatectl("status", "--json").stdout)["scan_log"]
    assert status == {
        "last_seq": first["last_seq"],
        "handed_over_seq": first["last_seq"],
        "not_handed_over": 0,
    }

    # nothing new: no file, nothing marked
    code, again = _export(gate, usb)
    assert code == 0 and again["file"] is None and again["records"] == 0
    assert "nothing new" in gate.gatectl("export", str(usb)).stdout

    # the next export starts where the last one ended, and its chain continues
    _decide(gate, "garbage two")
    assert "not yet exported (gatectl export)" in gate.gatectl("status").stdout
    pending = json.loads(gate.gatectl("status", "--json").stdout)["scan_log"]["not_handed_over"]
    assert pending >= 3
    code, second = _export(gate, usb)
    assert code == 0 and second["first_seq"] == first["last_seq"] + 1
    later = _rows(second["file"])
    prev = bytes.fromhex(rows[-1]["hash"])
    assert verify_chain(_as_records(later), prev, first["last_seq"]) is None
    assert sorted(path.name for path in usb.iterdir()) == sorted(
        [
            f"test-gate-scans-{1:09d}-{first['last_seq']:09d}.csv",
            f"test-gate-scans-{second['first_seq']:09d}-{second['last_seq']:09d}.csv",
        ]
    )

    # exported records are pruned by retention like synced ones; unexported ones stay
    _decide(gate, "garbage three")
    text = gate.config.read_text() + "\n[log]\nretention_days = 0.00001\n"
    gate.config.write_text(text)
    time.sleep(1)
    with GateState(load_config(gate.config)) as state:
        GateDaemon(state, [], None).keep_log_within_limits()
        left = state.store.query_log(limit=100)
    assert left and min(r["seq"] for r in left) == second["last_seq"] + 1


def test_a_syncing_gate_is_refused(gate, tmp_path):
    write_gate_config(
        gate.config, gate.root, extra='\n[sync]\ncollector_url = "http://127.0.0.1:9"\n'
    )
    result = gate.gatectl("export", str(tmp_path))
    assert result.returncode == 1
    assert "its collector acknowledges records" in result.stderr


def test_a_missing_or_unwritable_stick_marks_nothing(gate, tmp_path):
    _decide(gate, "garbage")
    result = gate.gatectl("export", str(tmp_path / "not-mounted"))
    assert result.returncode == 1 and "is the USB stick mounted?" in result.stderr
    result = gate.gatectl("export", "/proc")  # a directory no one can create files in
    assert result.returncode == 1
    assert "cannot write the export" in result.stderr and "Traceback" not in result.stderr
    code, exported = _export(gate, tmp_path)
    assert code == 0 and exported["first_seq"] == 1  # nothing was marked before
