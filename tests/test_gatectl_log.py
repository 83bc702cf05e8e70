"""gatectl scans and monitor read the scan log that gated writes, while it runs."""

from __future__ import annotations

import csv
import json
import subprocess
import time

from helpers_cli import BIN, run_script

from gate.ticket import Claims, mint_ticket


def _ticket(gate, n: int, **extra) -> str:
    claims = Claims(cti=f"log-{n:08}".encode(), exp=int(time.time()) + 3600, product="single")
    return mint_ticket(Claims(**(claims.__dict__ | extra)), gate.issuer.signing_key)


def _run_gated(gate, lines: list[str]) -> list[dict]:
    result = run_script("gated", "--stdin", "--config", str(gate.config), input="\n".join(lines))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_scans_filters_and_exports_csv(gate, tmp_path):
    expired = _ticket(gate, 2, exp=int(time.time()) - 3600)
    decisions = _run_gated(gate, [_ticket(gate, 1), "garbage", expired, _ticket(gate, 1)])
    assert [d["reason"] for d in decisions] == ["ok", "malformed", "expired", "used"]

    everything = json.loads(gate.gatectl("scans", "--json").stdout)
    kinds = [r["kind"] for r in everything]
    assert kinds[0] == "boot" and kinds[-1] == "shutdown"
    assert [r["reason"] for r in everything if r["kind"] == "decision"] == [
        "ok",
        "malformed",
        "expired",
        "used",
    ]
    assert [r["seq"] for r in everything] == sorted(r["seq"] for r in everything)

    rejects = json.loads(gate.gatectl("scans", "--json", "--decision", "reject").stdout)
    assert [r["reason"] for r in rejects] == ["malformed", "expired", "used"]
    expired_only = json.loads(gate.gatectl("scans", "--json", "--reason", "expired").stdout)
    assert len(expired_only) == 1 and expired_only[0]["cti"] == b"log-00000002".hex()
    future = json.loads(gate.gatectl("scans", "--json", "--since", "2100-01-01").stdout)
    assert future == []

    out = tmp_path / "usb" / "scans.csv"
    out.parent.mkdir()
    result = gate.gatectl("scans", "--kind", "decision", "--csv", str(out))
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["reason"] for row in rows] == ["ok", "malformed", "expired", "used"]
    human = gate.gatectl("scans", "--reason", "used")
    assert "reject" in human.stdout and "used" in human.stdout


def test_bad_time_is_a_clear_error(gate):
    result = gate.gatectl("scans", "--since", "yesterday-ish")
    assert result.returncode == 1
    assert result.stderr.startswith("gatectl: error:")


def test_monitor_shows_the_past_and_follows_new_records(gate):
    _run_gated(gate, ["first garbage"])
    past = gate.gatectl("monitor", "--json", "--last", "2", "--count", "2")
    records = [json.loads(line) for line in past.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["decision", "shutdown"]
    assert records[0]["reason"] == "malformed"

    follower = subprocess.Popen(
        [
            str(BIN / "gatectl"),
            "--config",
            str(gate.config),
            "monitor",
            "--json",
            "--last",
            "0",
            "--count",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let it start following
        _run_gated(gate, [_ticket(gate, 7)])
        output, errors = follower.communicate(timeout=20)
    finally:
        follower.kill()
    assert follower.returncode == 0, errors
    followed = [json.loads(line) for line in output.splitlines()]
    assert [r["kind"] for r in followed] == ["boot", "device_ok", "decision", "shutdown"], output
    assert followed[2]["reason"] == "ok" and followed[1]["source"] == "stdin"
