"""COSE_Sign1 (RFC 9052 §4.2) with EdDSA over Ed25519: the envelope of every GT1 ticket,
trust bundle and revocation list.

Decoding is strict and bounded: the input must be exactly one CBOR item, the protected header
exactly one CBOR map, and nothing here trusts a length it has not checked. Every failure is a
:class:`Malformed` with a short, human-readable message.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_CONTENT_TYPE = 3
HEADER_KID = 4
ALG_EDDSA = -8
SIGNATURE_SIZE = 64


class Malformed(ValueError):
    """Input that does not have the structure it must have."""


def decode_one(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item from ``data``; trailing bytes are an error."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as err:  # cbor2 raises a wide range of errors on hostile input
        raise Malformed(f"{what}: not valid CBOR ({err})") from err
    if stream.tell() != len(data):
        raise Malformed(f"{what}: {len(data) - stream.tell()} trailing bytes after the CBOR item")
    return item


def _declared_map_size(data: bytes) -> int | None:
    """The entry count in a definite-length CBOR map header, else None."""
    major, info = data[0] >> 5, data[0] & 0x1F
    if major != 5:
        return None
    if info < 24:
        return info
    if info <= 27:
        width = 1 << (info - 24)
        return int.from_bytes(data[1 : 1 + width], "big")
    return None  # indefinite length


def decode_map(data: bytes, what: str) -> dict:
    """Decode exactly one CBOR map whose labels are integers or text.

    Duplicate labels are malformed (RFC 9052 §1.4). Labels of other types (floats, booleans)
    are never COSE or CWT labels and are dropped, so ``true`` cannot stand in for ``1``.
    """
    if not data:
        raise Malformed(f"{what}: empty")
    item = decode_one(data, what)
    if not isinstance(item, Mapping):
        raise Malformed(f"{what}: not a CBOR map")
    declared = _declared_map_size(data)
    if declared is not None and declared != len(item):
        raise Malformed(f"{what}: duplicate map labels")
    return {key: value for key, value in item.items() if type(key) in (int, str)}


@dataclass(frozen=True)
class Sign1:
    """A decoded COSE_Sign1 message; ``protected_bytes`` and ``payload`` are exactly as sent."""

    protected_bytes: bytes
    protected: Mapping
    unprotected: Mapping
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes | None:
        """The key id: protected header first, then unprotected, as RFC 9052 allows."""
        kid = self.protected.get(HEADER_KID, self.unprotected.get(HEADER_KID))
        return kid

    @property
    def alg(self) -> Any:
        return self.protected.get(HEADER_ALG)

    def to_be_signed(self, external_aad: bytes = b"") -> bytes:
        """The CBOR-encoded Sig_structure that the signature covers."""
        return cbor2.dumps(["Signature1", self.protected_bytes, external_aad, self.payload])

    def verify(self, key: nacl.signing.VerifyKey) -> bool:
        """True when ``key`` made this signature over this message."""
        try:
            key.verify(self.to_be_signed(), self.signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


def decode_sign1(data: bytes) -> Sign1:
    """Parse COSE_Sign1 bytes (tag 18 or untagged) without verifying anything yet."""
    item = decode_one(data, "COSE_Sign1")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise Malformed(f"COSE_Sign1: CBOR tag {item.tag}, expected {COSE_SIGN1_TAG}")
        item = item.value
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise Malformed("COSE_Sign1: not a 4-element array")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise Malformed("COSE_Sign1: protected header is not a byte string")
    if not isinstance(unprotected, Mapping):
        raise Malformed("COSE_Sign1: unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise Malformed("COSE_Sign1: payload is not a byte string (detached payloads are not used)")
    if not isinstance(signature, bytes):
        raise Malformed("COSE_Sign1: signature is not a byte string")
    protected = decode_map(protected_bytes, "protected header") if protected_bytes else {}
    if HEADER_CRIT in protected:
        raise Malformed("protected header: critical headers are not supported")
    return Sign1(protected_bytes, protected, unprotected, payload, signature)


def check_eddsa(message: Sign1) -> None:
    """Require alg EdDSA in the protected header and a 64-byte signature."""
    if HEADER_ALG not in message.protected:
        raise Malformed("protected header: alg is missing")
    alg = message.alg
    if type(alg) is not int or alg != ALG_EDDSA:
        raise Malformed(f"protected header: alg {alg!r} is not EdDSA (-8)")
    if len(message.signature) != SIGNATURE_SIZE:
        raise Malformed(f"signature: {len(message.signature)} bytes, expected {SIGNATURE_SIZE}")


def encode_sign1(
    protected: dict, payload: bytes, signing_key: nacl.signing.SigningKey, *, unprotected=None
) -> bytes:
    """Sign ``payload`` and return the tagged COSE_Sign1 bytes (deterministic encoding)."""
    protected_bytes = cbor2.dumps(protected, canonical=True)
    unsigned = Sign1(protected_bytes, protected, unprotected or {}, payload, b"")
    signature = signing_key.sign(unsigned.to_be_signed()).signature
    body = [protected_bytes, unprotected or {}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, body), canonical=True)
