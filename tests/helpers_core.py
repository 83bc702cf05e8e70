"""Shared test material for the GT1 core tests: the spec's test vector, issuer keys, and
builders for COSE_Sign1 messages and GT1 texts that carry *valid* signatures over whatever
structure a test wants, so that a ``malformed`` verdict can only come from that structure.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import base45
import cbor2
import nacl.signing

from gate.cose import COSE_SIGN1_TAG
from gate.revocations import MemoryRevocations
from gate.store import GateStore
from gate.ticket import Claims, kid_for
from gate.trust import TrustedKey, TrustStore
from gate.validator import Policy, Validator

FIXTURES = Path(__file__).parent / "fixtures"

# The GT1 specification's test vector (docs/ticket-format.md, "Test vector"), copied verbatim.
SPEC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SPEC_PUBLIC_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
SPEC_KID = bytes.fromhex("21fe31dfa154a261")
SPEC_CLAIMS = Claims(
    iss="metro-demo",
    exp=1798761600,
    nbf=1767225600,
    iat=1767225600,
    cti=bytes.fromhex("00112233445566778899aabbccddeeff"),
    product="multi",
    zones=("A", "B"),
    uses=10,
    category="adult",
)
SPEC_TEXT = (
    "GT1:RRQT 9P60GO0HD4WD6ZHKYNK8CKU29280F$DKWEL2E6VCP$DFN0-ODJ+T1T0AEDKHNWY0AEDKHNR-0H00PE4XS8-"
    ".C4CHCQLK+PS9UD44V$D:VD3DDWLG.B8AG8VC1X CMVC:VD27B5MVDGA.ECS$IC9M9YF3YDSX2$W4QE7+XJ:$K4VT37"
    "JFKNH+S/H8ON0+WUX%6ORQL5E3.QA6GY71X8UOKSHONT:8LAV.6K336"
)

ISSUER = nacl.signing.SigningKey(SPEC_SEED)
OTHER_ISSUER = nacl.signing.SigningKey(bytes([2]) * 32)
THIRD_ISSUER = nacl.signing.SigningKey(bytes([3]) * 32)

# A moment inside the spec ticket's validity (nbf 2026-01-01, exp 2027-01-01).
NOW = 1_780_000_000


def public_key(signing_key: nacl.signing.SigningKey) -> bytes:
    return bytes(signing_key.verify_key)


def kid_of(signing_key: nacl.signing.SigningKey) -> bytes:
    return kid_for(public_key(signing_key))


def gt1_text(cose_bytes: bytes) -> str:
    """The GT1 text form of raw COSE_Sign1 bytes."""
    return "GT1:" + base45.b45encode(cose_bytes).decode("ascii")


def cose_bytes_of(text: str) -> bytes:
    """The COSE_Sign1 bytes inside a GT1 text."""
    assert text.startswith("GT1:")
    return base45.b45decode(text[4:])


def claims_map(**overrides: Any) -> dict[Any, Any]:
    """A valid GT1 claims map (a ``single`` ticket valid around NOW); a value of ``...``
    removes that claim. Keys are the claim names of the spec."""
    labels = {
        "iss": 1,
        "exp": 4,
        "nbf": 5,
        "iat": 6,
        "cti": 7,
        "product": -1,
        "zones": -2,
        "uses": -3,
        "holder": -4,
        "category": -5,
    }
    values: dict[str, Any] = {
        "iss": "test-issuer",
        "exp": NOW + 86_400,
        "nbf": NOW - 86_400,
        "iat": NOW - 86_400,
        "cti": bytes.fromhex("0102030405060708"),
        "product": "single",
    }
    values.update(overrides)
    return {labels[name]: value for name, value in values.items() if value is not ...}


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected_bytes, b"", payload])


def sign1(
    payload: bytes,
    signing_key: nacl.signing.SigningKey = ISSUER,
    *,
    protected: Any = None,
    protected_bytes: bytes | None = None,
    unprotected: Any = None,
    tag: int | None = COSE_SIGN1_TAG,
    signature: bytes | None = None,
    extra_elements: Iterable[Any] = (),
    drop_elements: int = 0,
) -> bytes:
    """Build a COSE_Sign1 whose signature is valid over ``protected_bytes`` and ``payload``.

    ``protected`` defaults to ``{alg: EdDSA, kid: kid of signing_key}``; ``protected_bytes``
    overrides its encoding. ``signature`` replaces the computed one. ``tag`` None leaves the
    array untagged. ``extra_elements`` / ``drop_elements`` bend the array's length.
    """
    if protected is None:
        protected = {1: -8, 4: kid_of(signing_key)}
    if protected_bytes is None:
        protected_bytes = cbor2.dumps(protected)
    if unprotected is None:
        unprotected = {}
    if signature is None:
        signature = signing_key.sign(sig_structure(protected_bytes, payload)).signature
    body: list[Any] = [protected_bytes, unprotected, payload, signature, *extra_elements]
    if drop_elements:
        body = body[:-drop_elements]
    item: Any = body if tag is None else cbor2.CBORTag(tag, body)
    return cbor2.dumps(item)


def signed_text(
    claims: dict[Any, Any] | None = None,
    signing_key: nacl.signing.SigningKey = ISSUER,
    **sign1_options: Any,
) -> str:
    """GT1 text of ``claims`` (default: :func:`claims_map`) encoded as given, validly signed."""
    payload = cbor2.dumps(claims_map() if claims is None else claims)
    return gt1_text(sign1(payload, signing_key, **sign1_options))


def trusted(signing_key: nacl.signing.SigningKey, name: str = "issuer", **limits) -> TrustedKey:
    return TrustedKey(name=name, public_key=public_key(signing_key), **limits)


def make_validator(
    store: GateStore | None,
    keys: Iterable[TrustedKey] | TrustStore = (),
    **policy: Any,
) -> Validator:
    """A validator over ``store`` (usage records and revocations) and the given trusted keys.

    With ``store`` None it runs stateless and nothing is revoked.
    """
    trust = keys if isinstance(keys, TrustStore) else TrustStore(keys)
    settings = {
        "gate_id": "gate-1",
        "zone": "A",
        "passback_group": "north",
        "passback_window": 600,
        "clock_skew": 30,
    }
    settings.update(policy)
    revocations = store if store is not None else MemoryRevocations()
    return Validator(trust, revocations, store, Policy(**settings))
