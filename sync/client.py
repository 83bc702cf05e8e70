"""Signed HTTP requests from one gate to the collector, over httpx.

Every request is signed with the gate's device key (:mod:`sync.signing`) over the path and
query exactly as httpx will put them on the wire: the request is built first, its
``raw_path`` is signed, then it is sent. Every transport failure (refused or timed-out
connection, reset, a peer that hangs up before answering, a broken TLS handshake, an undecodable
answer) becomes :class:`CollectorUnreachable`, so callers only ever see this project's errors.

Timeouts are per phase (connect, then each read and write), not a whole-request deadline: a
collector that stops answering costs at most one read timeout; one that trickles bytes forever
is bounded only by the answer size limit.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import nacl.signing

from gate.errors import ConfigError, SyncError
from gate.signed import MAX_DOCUMENT_SIZE
from sync.signing import GATE_ID_PATTERN, sign_request


class CollectorUnreachable(SyncError):
    """The collector could not be reached or did not answer (network, timeout, protocol)."""


class CollectorRefused(SyncError):
    """The collector answered, but not with what the protocol promises."""


@dataclass(frozen=True)
class Reply:
    """One answer from the collector, read whole; ``sent_at``/``received_at`` by the clock."""

    method: str
    path: str
    status: int
    headers: httpx.Headers
    content: bytes
    sent_at: float
    received_at: float

    def refused(self, what: str) -> CollectorRefused:
        excerpt = self.content[:200].decode("utf-8", "replace").strip()
        detail = f": {excerpt}" if excerpt else ""
        return CollectorRefused(f"{self.method} {self.path}: {what} (HTTP {self.status}{detail})")

    def json_object(self) -> dict[str, Any]:
        """The answer as a JSON object, or :class:`CollectorRefused`."""
        try:
            value = json.loads(self.content)
        except ValueError as err:
            raise self.refused("the answer is not JSON") from err
        if not isinstance(value, dict):
            raise self.refused("the answer is not a JSON object")
        return value

    def whole_number(self, answer: Mapping[str, Any], name: str) -> int:
        """``answer[name]`` as a whole number >= 0, or :class:`CollectorRefused`."""
        value = answer.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.refused(f"{name} is {value!r}, not a whole number >= 0")
        return value


class CollectorClient:
    """One gate's connection to the collector: signs, sends, reads the answer whole."""

    def __init__(
        self,
        base_url: str,
        gate_id: str,
        signing_key: nacl.signing.SigningKey,
        *,
        timeout: tuple[float, float] = (3.0, 10.0),
        clock: Callable[[], float] = time.time,
        ca_file: Path | None = None,
        max_answer: int = MAX_DOCUMENT_SIZE,
    ) -> None:
        if not GATE_ID_PATTERN.match(gate_id):
            raise ConfigError(
                f"gate id {gate_id!r} cannot be used for sync: 1 to 64 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as err:
            raise ConfigError(f"collector URL {base_url!r}: {err}") from err
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"collector URL {base_url!r}: expected http(s)://host[:port]")
        self.base_url = str(url).rstrip("/")
        self.gate_id = gate_id
        self.clock = clock
        self.max_answer = max_answer
        self._key = signing_key
        connect, read = timeout
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        # trust_env off: a gate's proxy or CA settings come from its configuration, never
        # from whatever environment the service manager happens to pass.
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
            verify=verify,
            trust_env=False,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one signed request and read its answer; raises :class:`CollectorUnreachable`."""
        url = self.base_url + path + (f"?{urlencode(params)}" if params else "")
        try:
            request = self._http.build_request(method, url, content=body, headers=headers)
            signed_path = request.url.raw_path.decode("ascii")
            sent_at = self.clock()
            request.headers.update(
                sign_request(self._key, self.gate_id, method, signed_path, body, now=sent_at)
            )
            response = self._http.send(request, stream=True)
            try:
                content = self._read(response, f"{method} {path}")
            finally:
                response.close()
            received_at = self.clock()
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL, OSError) as err:
            raise CollectorUnreachable(f"{method} {path}: {_describe(err)}") from err
        return Reply(
            method, path, response.status_code, response.headers, content, sent_at, received_at
        )

    def _read(self, response: httpx.Response, what: str) -> bytes:
        too_big = CollectorRefused(f"{what}: the answer is over {self.max_answer} bytes")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_answer:
            raise too_big
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_answer:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    name = type(err).__name__
    return f"{name}: {text}" if text else name
