"""The systemd notify protocol, against a real AF_UNIX datagram socket."""

from __future__ import annotations

import socket

from gate.systemd import Notifier


def test_ready_status_watchdog_reach_the_socket(tmp_path):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
        assert notifier.enabled and notifier.watchdog_interval == 5.0
        assert notifier.ready("serving 2 reader(s)")
        assert server.recv(4096) == b"READY=1\nSTATUS=serving 2 reader(s)"
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
        assert notifier.status("degraded: camera not ok")
        assert server.recv(4096) == b"STATUS=degraded: camera not ok"
        notifier.close()
    finally:
        server.close()


def test_without_systemd_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("x")


def test_a_vanished_socket_is_not_an_error(tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.send("WATCHDOG=1") is False
