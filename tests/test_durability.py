"""An accept is only reported after its admission is on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from helpers_cli import BIN, run_script

from gate.store import GateStore
from gate.ticket import Claims, mint_ticket


def _single(gate, n: int) -> str:
    claims = Claims(cti=f"durable-{n:04}".encode(), exp=int(time.time()) + 3600, product="single")
    return mint_ticket(claims, gate.issuer.signing_key)


def test_sigkill_right_after_accept_keeps_the_admission(gate):
    tickets = [_single(gate, n) for n in range(5)]
    for text in tickets:
        daemon = subprocess.Popen(
            [str(BIN / "gated"), "--stdin", "--config", str(gate.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        daemon.stdin.write(text + "\n")
        daemon.stdin.flush()
        decision = json.loads(daemon.stdout.readline())
        os.kill(daemon.pid, signal.SIGKILL)  # the moment the accept is out, the power goes
        daemon.wait(timeout=10)
        assert daemon.returncode == -signal.SIGKILL
        assert decision["decision"] == "accept"
        assert decision["admission_seq"] is not None
        # After the "restart", the same ticket is used: the admission survived.
        again = run_script("gated", "--stdin", "--config", str(gate.config), input=text + "\n")
        assert json.loads(again.stdout)["reason"] == "used"
    with GateStore.in_state_dir(gate.dir / "state") as store:
        assert store.admission_count() == len(tickets)


def test_store_runs_wal_with_full_synchronous_commits(tmp_path):
    with GateStore(tmp_path / "gate.db") as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
