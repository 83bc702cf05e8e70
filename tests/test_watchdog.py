"""gated speaks the systemd notify protocol: READY=1, then WATCHDOG=1 pings from the decision
loop, which stop while the loop is stalled."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time

from helpers_cli import BIN

from gate.ticket import Claims, mint_ticket


def _messages(server: socket.socket, seconds: float) -> list[tuple[float, str]]:
    received = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        server.settimeout(left)
        try:
            data = server.recv(4096)
        except TimeoutError:
            break
        received.append((time.monotonic(), data.decode()))
    return received


def test_ready_then_watchdog_pings_which_stop_while_the_loop_is_stalled(gate, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    env = os.environ | {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000"}
    daemon = subprocess.Popen(
        [str(BIN / "gated"), "--stdin", "--config", str(gate.config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = _messages(server, 3.0)
        texts = [text for _, text in first]
        assert texts and texts[0].startswith("READY=1\nSTATUS=")
        assert sum("WATCHDOG=1" in text for text in texts) >= 2

        # Stall the decision loop: another process holds the database's write lock, so the
        # next admission waits for it.
        blocker = sqlite3.connect(gate.dir / "state" / "gate.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        claims = Claims(cti=b"watchdog-0001", exp=int(time.time()) + 3600, product="single")
        daemon.stdin.write(mint_ticket(claims, gate.issuer.signing_key) + "\n")
        daemon.stdin.flush()
        time.sleep(0.5)
        stalled = _messages(server, 3.0)
        assert not any("WATCHDOG=1" in text for _, text in stalled), stalled

        blocker.execute("ROLLBACK")
        blocker.close()
        resumed = _messages(server, 3.0)
        assert sum("WATCHDOG=1" in text for _, text in resumed) >= 1
        assert '"reason": "ok"' in daemon.stdout.readline()
    finally:
        daemon.stdin.close()
        daemon.wait(timeout=15)
        server.close()
