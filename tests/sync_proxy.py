"""A fault-injecting TCP proxy for HTTP/1.1, to put between a gate's sync agent and the collector.

It listens on 127.0.0.1 and forwards to one upstream. It reads each request whole (head and
``Content-Length`` body, or a chunked body), then draws a fault for it from a seeded
:class:`random.Random` and acts it out. Faults are per **request**, not per connection:
httpx keeps a connection alive, and a proxy that judged only connections would let one
lucky connection carry a whole upload.

============== =======================================================================
fault          what happens
============== =======================================================================
``close``      the proxy hangs up (FIN) without forwarding anything
``reset``      the head and part of the body go upstream (part of the head, for a
               request without a body), then both ends are reset (``SO_LINGER`` 0:
               RST): the collector sees a request cut mid-body
``delay``      forwarded normally after a pause of up to ``max_delay`` seconds
``error_500``  the proxy answers ``HTTP/1.1 500`` itself; nothing goes upstream
``drop_reply`` forwarded and served, but the answer is swallowed and the client reset:
               the collector stored the batch, the gate never hears so
``truncate``   forwarded and served; part of the answer goes back, then a hang-up
``stall``      forwarded and served; the answer is held for ``stall`` seconds (past the
               client's read timeout) and then sent to a client that has given up
``pass``       forwarded untouched
============== =======================================================================

``proxy.faults = False`` turns every fault off (``pass`` from the next request on);
:attr:`FaultyProxy.counts` tells what was done how often, :attr:`FaultyProxy.log` to which
request (``("POST /v1/gates/north-01/scans", "reset")``, in the order drawn). Usage::

    with FaultyProxy(collector.url, seed=7) as proxy:
        agent = SyncAgent(..., proxy.url, ...)
        ...
        proxy.faults = False
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

#: weights of the faults when none are given: about half the requests go through untouched
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "pass": 50,
    "close": 8,
    "reset": 8,
    "delay": 10,
    "error_500": 8,
    "drop_reply": 8,
    "truncate": 6,
    "stall": 2,
}
FAULTS = tuple(DEFAULT_WEIGHTS)
CANNED_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\nproxy: injected fault"
)
MAX_HEAD = 64 * 1024
NO_BODY_STATUS = (204, 304)


class ConnectionEnded(Exception):
    """The peer closed before a whole message arrived."""


class _Reader:
    """Buffered reads of HTTP/1.1 messages from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def head(self) -> bytes | None:
        """The message head through its blank line; None on a clean EOF before any byte."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise ConnectionEnded("message head too large")
            if not self._fill():
                if self.buffer:
                    raise ConnectionEnded("EOF inside a message head")
                return None
        end = self.buffer.index(b"\r\n\r\n") + 4
        head, self.buffer = self.buffer[:end], self.buffer[end:]
        return head

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionEnded("EOF inside a message body")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionEnded("EOF inside a chunked body")
        end = self.buffer.index(b"\r\n") + 2
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def chunked(self) -> bytes:
        """A chunked body, as it was framed (so it can be forwarded verbatim)."""
        framed = []
        while True:
            size_line = self.line()
            framed.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the blank line
                    trailer = self.line()
                    framed.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(framed)
            framed.append(self.exactly(size + 2))

    def rest(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def read_request(reader: _Reader) -> tuple[bytes, bytes, dict[str, str]] | None:
    """(head, body, headers) of the next request, or None when the client is done."""
    head = reader.head()
    if head is None:
        return None
    _, fields = _headers(head)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return head, reader.chunked(), fields
    return head, reader.exactly(int(fields.get("content-length") or 0)), fields


def read_response(reader: _Reader, method: str) -> tuple[bytes, bool]:
    """The next response, framed as sent, and whether the connection ends after it."""
    head = reader.head()
    if head is None:
        raise ConnectionEnded("upstream closed without answering")
    status_line, fields = _headers(head)
    status = int(status_line.split()[1])
    closes = fields.get("connection", "").lower() == "close"
    if method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200:
        return head, closes
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return head + reader.chunked(), closes
    if "content-length" in fields:
        return head + reader.exactly(int(fields["content-length"])), closes
    return head + reader.rest(), True  # delimited by the end of the connection


def reset(sock: socket.socket | None) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def hang_up(sock: socket.socket | None) -> None:
    """An orderly close (FIN); shutdown first, so a recv blocked in another thread wakes."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class FaultyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_url`` that injects faults per request.

    ``weights`` maps fault names (:data:`FAULTS`) to relative weights; ``max_delay`` bounds a
    ``delay``; ``stall`` is how long a ``stall`` holds an answer (set it past the client's read
    timeout). ``counts`` counts what was done, ``log`` lists (request line, fault).
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        weights: Mapping[str, float] | None = None,
        max_delay: float = 0.2,
        stall: float = 1.5,
    ) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(weights) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self._names = list(weights)
        self._weights = [weights[name] for name in self._names]
        self.max_delay = max_delay
        self.stall = stall
        self.faults = True
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self.errors: list[str] = []  # unexpected proxy-side failures, for a test to show
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._thread = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed.set()
        hang_up(self._listener)
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            hang_up(sock)
        self._thread.join(timeout=2)

    # the draw ---------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return len(self.log)

    def _draw(self, request_line: str) -> tuple[str, float]:
        """The fault for a request and its random parameter (a fraction in [0, 1))."""
        with self._lock:
            fault = "pass"
            if self.faults:
                fault = self._rng.choices(self._names, self._weights)[0]
            fraction = self._rng.random()
            self.counts[fault] += 1
            self.log.append((request_line, fault))
        return fault, fraction

    # plumbing ---------------------------------------------------------------------------------

    def _track(self, sock: socket.socket | None, add: bool = True) -> None:
        if sock is None:
            return
        with self._lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket:
        upstream = socket.create_connection(self.upstream, timeout=30)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(upstream)
        return upstream

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        upstream_reader: _Reader | None = None
        reader = _Reader(client)
        ending = hang_up
        try:
            while not self._closed.is_set():
                request = read_request(reader)
                if request is None:
                    return
                head, body, _ = request
                method, path = head.decode("latin-1").split(" ", 2)[:2]
                fault, fraction = self._draw(f"{method} {path.partition('?')[0]}")
                if fault == "close":
                    return
                if fault == "error_500":
                    client.sendall(CANNED_500)
                    return
                if fault == "delay":
                    time.sleep(fraction * self.max_delay)
                if upstream is None:
                    upstream = self._connect()
                    upstream_reader = _Reader(upstream)
                if fault == "reset":
                    # mid-body (mid-head for a request without one): never served whole
                    if body:
                        upstream.sendall(head + body[: int(fraction * len(body))])
                    else:
                        upstream.sendall(head[: int(fraction * len(head))])
                    ending = reset
                    return
                upstream.sendall(head + body)
                answer, upstream_closes = read_response(upstream_reader, method)
                if fault == "drop_reply":
                    ending = reset
                    return
                if fault == "truncate":
                    client.sendall(answer[: max(1, int(fraction * (len(answer) - 1)))])
                    return
                if fault == "stall":
                    time.sleep(self.stall)
                client.sendall(answer)
                if upstream_closes:
                    return
        except (ConnectionEnded, OSError, ValueError, IndexError) as err:
            if not self._closed.is_set() and not isinstance(err, ConnectionEnded | OSError):
                self.errors.append(f"{type(err).__name__}: {err}")
        finally:
            self._track(client, add=False)
            self._track(upstream, add=False)
            ending(client)
            ending(upstream)
