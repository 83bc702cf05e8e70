"""Office-signed documents: trust bundles and revocation lists.

Both travel as a COSE_Sign1 (the same envelope as a ticket) whose payload is a CBOR map with
a ``"type"`` and a ``"version"``. The office root key signs them; a gate holds only the root's
public key and refuses anything it does not verify. Reading a document never trusts its
content before the signature has been checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2
import nacl.signing

from gate.cose import (
    ALG_EDDSA,
    HEADER_ALG,
    HEADER_KID,
    Malformed,
    check_eddsa,
    decode_one,
    decode_sign1,
    encode_sign1,
)
from gate.errors import SignedDocumentError
from gate.ticket import kid_for

TRUST_BUNDLE = "gate-trust-bundle"
REVOCATION_LIST = "gate-revocation-list"
KINDS = {TRUST_BUNDLE: "trust bundle", REVOCATION_LIST: "revocation list"}
MAX_DOCUMENT_SIZE = 1 << 30
MAX_NUMBER = 1 << 63  # versions and times must fit SQLite's INTEGER


def sign_document(body: Mapping[str, Any], root_key: nacl.signing.SigningKey) -> bytes:
    """Sign a document body with the office root key; the body names its own type."""
    if body.get("type") not in KINDS:
        raise ValueError(f"unknown document type {body.get('type')!r}")
    kid = kid_for(bytes(root_key.verify_key))
    payload = cbor2.dumps(dict(body), canonical=True)
    return encode_sign1({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid}, payload, root_key)


def document_kind(data: bytes) -> str:
    """Peek at a document's type without verifying it, to route an import; never trust it."""
    try:
        body = decode_one(decode_sign1(data).payload, "payload")
    except Malformed as err:
        try:
            plain = decode_one(data, "document")
        except Malformed:
            plain = None
        if isinstance(plain, Mapping) and plain.get("type") in KINDS:
            raise SignedDocumentError(
                f"{KINDS[plain['type']]} refused: unsigned (plain CBOR without the office "
                "signature envelope)"
            ) from err
        raise SignedDocumentError(f"not a signed trust bundle or revocation list: {err}") from err
    kind = body.get("type") if isinstance(body, Mapping) else None
    if kind not in KINDS:
        raise SignedDocumentError(f"unknown document type {kind!r}")
    return kind


def open_document(data: bytes, root_public_key: bytes, kind: str) -> dict[str, Any]:
    """Verify a signed document against the office root key and return its body.

    Raises :class:`SignedDocumentError` saying whether the file is unsigned, signed by
    another key, carries a bad signature, or is not the expected kind of document.
    """
    name = KINDS[kind]
    if len(data) > MAX_DOCUMENT_SIZE:
        raise SignedDocumentError(f"{name} refused: file is over {MAX_DOCUMENT_SIZE} bytes")
    try:
        message = decode_sign1(data)
    except Malformed as err:
        try:
            decode_one(data, "document")
        except Malformed:
            raise SignedDocumentError(f"{name} refused: not a COSE_Sign1 document ({err})") from err
        raise SignedDocumentError(
            f"{name} refused: unsigned (plain CBOR without the office signature envelope)"
        ) from err
    if not message.signature:
        raise SignedDocumentError(f"{name} refused: unsigned (the signature is empty)")
    try:
        check_eddsa(message)
    except Malformed as err:
        raise SignedDocumentError(f"{name} refused: {err}") from err
    root_kid = kid_for(root_public_key)
    if message.kid != root_kid:
        kid = message.kid.hex() if isinstance(message.kid, bytes) else repr(message.kid)
        raise SignedDocumentError(
            f"{name} refused: signed by key {kid}, not by this gate's office root key "
            f"{root_kid.hex()}"
        )
    if not message.verify(nacl.signing.VerifyKey(root_public_key)):
        raise SignedDocumentError(
            f"{name} refused: the signature does not verify with the office root key "
            f"{root_kid.hex()} (altered or forged)"
        )
    try:
        body = decode_one(message.payload, "payload")
    except Malformed as err:
        raise SignedDocumentError(f"{name} refused: {err}") from err
    if not isinstance(body, Mapping) or body.get("type") != kind:
        found = body.get("type") if isinstance(body, Mapping) else type(body).__name__
        raise SignedDocumentError(f"{name} refused: the document is a {found!r}, not a {name}")
    for field in ("version", "issued_at"):
        value = body.get(field)
        if value is None and field == "issued_at":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < MAX_NUMBER:
            raise SignedDocumentError(f"{name} refused: {field} must be a whole number 1 to 2^63-1")
    return dict(body)
