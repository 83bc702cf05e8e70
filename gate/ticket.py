"""The GT1 ticket codec: text form, COSE_Sign1 envelope and CWT claims, exactly as the GT1
specification (docs/ticket-format.md) lays them out.

One implementation serves both sides: the gate parses with :func:`parse_ticket` and the issuer
tools mint with :func:`mint_ticket`. Parsing checks every size and structure limit before any
signature work and raises :class:`~gate.cose.Malformed`; it never looks at keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import base45
import cbor2
import nacl.signing

from gate.cose import (
    ALG_EDDSA,
    HEADER_ALG,
    HEADER_KID,
    Malformed,
    Sign1,
    check_eddsa,
    decode_map,
    decode_sign1,
    encode_sign1,
)

PREFIX = "GT1:"
MAX_TEXT_LENGTH = 1000
KID_SIZE = 8
CTI_MIN, CTI_MAX = 8, 16
HOLDER_SIZE = 32
PRODUCTS = ("single", "multi", "pass")
BASE45_ALPHABET = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")

CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI = 1, 4, 5, 6, 7
CLAIM_PRODUCT, CLAIM_ZONES, CLAIM_USES, CLAIM_HOLDER, CLAIM_CATEGORY = -1, -2, -3, -4, -5


def kid_for(public_key: bytes) -> bytes:
    """The GT1 key id: the first 8 bytes of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key).digest()[:KID_SIZE]


@dataclass(frozen=True)
class Claims:
    """The claims of a GT1 ticket. Times are Unix seconds."""

    cti: bytes
    exp: int
    product: str
    iss: str | None = None
    nbf: int | None = None
    iat: int | None = None
    zones: tuple[str, ...] | None = None
    uses: int | None = None
    holder: bytes | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if not CTI_MIN <= len(self.cti) <= CTI_MAX:
            raise ValueError(f"cti must be {CTI_MIN} to {CTI_MAX} bytes, not {len(self.cti)}")
        if self.product not in PRODUCTS:
            raise ValueError(f"product must be one of {', '.join(PRODUCTS)}, not {self.product!r}")
        if self.product == "multi" and (self.uses is None or self.uses < 1):
            raise ValueError("a multi ticket needs uses >= 1")
        if self.zones is not None and not self.zones:
            raise ValueError("zones, when given, must name at least one zone")
        if self.holder is not None and len(self.holder) != HOLDER_SIZE:
            raise ValueError(f"holder must be a {HOLDER_SIZE}-byte public key")

    def to_map(self) -> dict[int, Any]:
        """The CWT claims map, ready for deterministic CBOR encoding."""
        pairs = {
            CLAIM_ISS: self.iss,
            CLAIM_EXP: self.exp,
            CLAIM_NBF: self.nbf,
            CLAIM_IAT: self.iat,
            CLAIM_CTI: self.cti,
            CLAIM_PRODUCT: self.product,
            CLAIM_ZONES: list(self.zones) if self.zones is not None else None,
            CLAIM_USES: self.uses,
            CLAIM_HOLDER: self.holder,
            CLAIM_CATEGORY: self.category,
        }
        return {key: value for key, value in pairs.items() if value is not None}

    def to_json(self) -> dict[str, Any]:
        """The claims as JSON-friendly values (byte strings in hex)."""
        return {
            "iss": self.iss,
            "exp": self.exp,
            "nbf": self.nbf,
            "iat": self.iat,
            "cti": self.cti.hex(),
            "product": self.product,
            "zones": list(self.zones) if self.zones is not None else None,
            "uses": self.uses,
            "holder": self.holder.hex() if self.holder is not None else None,
            "category": self.category,
        }


@dataclass(frozen=True)
class Ticket:
    """A structurally valid GT1 ticket whose signature has not been checked yet."""

    kid: bytes
    claims: Claims
    message: Sign1 = field(repr=False)


def _uint(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"claim {name}: expected an unsigned integer, got {type(value).__name__}")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"claim {name}: expected a text string, got {type(value).__name__}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise Malformed(f"claim {name}: expected a byte string, got {type(value).__name__}")
    return value


def _optional(claims: Mapping, key: int, check, name: str):
    return check(claims[key], name) if key in claims else None


def claims_from_map(claims: Any) -> Claims:
    """Check the type of every known claim and build :class:`Claims`; unknown keys are ignored."""
    if not isinstance(claims, Mapping):
        raise Malformed("payload: the claims are not a CBOR map")
    for key, name in ((CLAIM_EXP, "exp"), (CLAIM_CTI, "cti"), (CLAIM_PRODUCT, "product")):
        if key not in claims:
            raise Malformed(f"claim {name} is missing")
    cti = _bytes(claims[CLAIM_CTI], "cti")
    if not CTI_MIN <= len(cti) <= CTI_MAX:
        raise Malformed(f"claim cti: {len(cti)} bytes, expected {CTI_MIN} to {CTI_MAX}")
    product = _text(claims[CLAIM_PRODUCT], "product")
    if product not in PRODUCTS:
        raise Malformed(f"claim product: {product[:20]!r} is not one of {', '.join(PRODUCTS)}")
    zones = None
    if CLAIM_ZONES in claims:
        raw_zones = claims[CLAIM_ZONES]
        if not isinstance(raw_zones, list | tuple) or not raw_zones:
            raise Malformed("claim zones: expected a non-empty array of text strings")
        zones = tuple(_text(zone, "zones") for zone in raw_zones)
    uses = _optional(claims, CLAIM_USES, _uint, "uses")
    if product == "multi" and (uses is None or uses < 1):
        raise Malformed("claim uses: a multi ticket needs uses >= 1")
    holder = _optional(claims, CLAIM_HOLDER, _bytes, "holder")
    if holder is not None and len(holder) != HOLDER_SIZE:
        raise Malformed(f"claim holder: {len(holder)} bytes, expected {HOLDER_SIZE}")
    return Claims(
        cti=cti,
        exp=_uint(claims[CLAIM_EXP], "exp"),
        product=product,
        iss=_optional(claims, CLAIM_ISS, _text, "iss"),
        nbf=_optional(claims, CLAIM_NBF, _uint, "nbf"),
        iat=_optional(claims, CLAIM_IAT, _uint, "iat"),
        zones=zones,
        uses=uses,
        holder=holder,
        category=_optional(claims, CLAIM_CATEGORY, _text, "category"),
    )


def parse_ticket(text: str) -> Ticket:
    """Parse GT1 text into a :class:`Ticket`, checking structure only (no keys, no clock).

    Raises :class:`Malformed` for anything that is not a well-formed GT1 ticket.
    """
    if not isinstance(text, str):
        raise Malformed("ticket text is not a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise Malformed(f"text is {len(text)} characters, over the {MAX_TEXT_LENGTH} limit")
    if not text.startswith(PREFIX):
        raise Malformed("not a GT1 ticket (the text does not start with 'GT1:')")
    encoded = text[len(PREFIX) :]
    if not BASE45_ALPHABET.issuperset(encoded):
        raise Malformed("payload has characters outside the base45 alphabet")
    try:
        data = base45.b45decode(encoded)
    except Exception as err:  # the base45 package raises ValueError, or worse on odd input
        raise Malformed("payload is not valid base45") from err
    message = decode_sign1(data)
    check_eddsa(message)
    kid = message.kid
    if not isinstance(kid, bytes):
        raise Malformed("kid: missing, or not a byte string")
    claims = claims_from_map(decode_map(message.payload, "payload"))
    return Ticket(kid=kid, claims=claims, message=message)


def mint_ticket(claims: Claims, signing_key: nacl.signing.SigningKey) -> str:
    """Sign ``claims`` with an issuer key and return the GT1 text (deterministic)."""
    kid = kid_for(bytes(signing_key.verify_key))
    payload = cbor2.dumps(claims.to_map(), canonical=True)
    data = encode_sign1({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid}, payload, signing_key)
    return PREFIX + base45.b45encode(data).decode("ascii")
