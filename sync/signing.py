"""Signed requests between a gate and the collector (scheme ``GT-SYNC-1``).

A gate signs every request with its own Ed25519 key. The signature covers the method, the
path (with query), the gate id, a timestamp, a random nonce and the SHA-256 of the body, so a
request cannot be altered, replayed, delayed past the allowed skew, or passed off as another
gate's. Headers:

    X-Gate-Id:         north-01
    X-Gate-Timestamp:  1795600000          (Unix seconds)
    X-Gate-Nonce:      32 hex digits        (16 random bytes)
    X-Gate-Signature:  128 hex digits       (Ed25519 over the signing string below)

    signing string = "GT-SYNC-1\\n" METHOD "\\n" PATH "\\n" GATE_ID "\\n" TIMESTAMP "\\n" NONCE
                     "\\n" hex(SHA-256(body))
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping

import nacl.exceptions
import nacl.signing

SCHEME = "GT-SYNC-1"
MAX_SKEW_SECONDS = 300
HEADER_GATE, HEADER_TIME = "X-Gate-Id", "X-Gate-Timestamp"
HEADER_NONCE, HEADER_SIGNATURE = "X-Gate-Nonce", "X-Gate-Signature"
GATE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RequestRejected(Exception):
    """A request that must not be served; ``reason`` is safe to return to the caller."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def signing_string(
    method: str, path: str, gate_id: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(
        (SCHEME, method.upper(), path, gate_id, str(timestamp), nonce, digest)
    ).encode()


def sign_request(
    key: nacl.signing.SigningKey,
    gate_id: str,
    method: str,
    path: str,
    body: bytes = b"",
    now: float | None = None,
) -> dict[str, str]:
    """The headers that authenticate one request from this gate."""
    timestamp = int(time.time() if now is None else now)
    nonce = os.urandom(16).hex()
    message = signing_string(method, path, gate_id, timestamp, nonce, body)
    return {
        HEADER_GATE: gate_id,
        HEADER_TIME: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: key.sign(message).signature.hex(),
    }


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    public_key_of: Callable[[str], bytes | None],
    remember_nonce: Callable[[str, str, int], bool],
    *,
    expected_gate: str | None = None,
    now: float | None = None,
    max_skew: int = MAX_SKEW_SECONDS,
) -> str:
    """Check a signed request and return the gate id, or raise :class:`RequestRejected`.

    ``public_key_of(gate_id)`` gives an enrolled gate's key (None if unknown);
    ``remember_nonce(gate_id, nonce, expires_at)`` records a nonce and returns False if it
    was already seen (a replay). ``expected_gate`` is the gate id named in the URL.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    gate_id = lowered.get(HEADER_GATE.lower())
    timestamp_text = lowered.get(HEADER_TIME.lower())
    nonce = lowered.get(HEADER_NONCE.lower())
    signature_hex = lowered.get(HEADER_SIGNATURE.lower())
    if not (gate_id and timestamp_text and nonce and signature_hex):
        raise RequestRejected(
            "unsigned request: X-Gate-Id, -Timestamp, -Nonce and -Signature needed"
        )
    if not GATE_ID_PATTERN.match(gate_id):
        raise RequestRejected("malformed gate id", 400)
    if expected_gate is not None and gate_id != expected_gate:
        raise RequestRejected(f"signed by gate {gate_id!r} for gate {expected_gate!r}", 403)
    try:
        timestamp = int(timestamp_text)
        signature = bytes.fromhex(signature_hex)
        nonce_bytes = bytes.fromhex(nonce)
    except ValueError as err:
        raise RequestRejected("malformed signature headers", 400) from err
    if len(nonce_bytes) != 16 or len(signature) != 64:
        raise RequestRejected("malformed signature headers", 400)
    now = time.time() if now is None else now
    if abs(now - timestamp) > max_skew:
        raise RequestRejected(f"stale request: timestamp {timestamp} is more than {max_skew} s off")
    public_key = public_key_of(gate_id)
    if public_key is None:
        raise RequestRejected(f"gate {gate_id!r} is not enrolled", 403)
    message = signing_string(method, path, gate_id, timestamp, nonce, body)
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as err:
        raise RequestRejected("bad signature") from err
    if not remember_nonce(gate_id, nonce, timestamp + max_skew):
        raise RequestRejected("replayed request (nonce already used)")
    return gate_id
