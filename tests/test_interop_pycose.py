"""Interoperability with an independent COSE implementation (pycose, a test-only dependency):
pycose verifies our tickets, and our validator accepts tickets pycose signs."""

from __future__ import annotations

import base45
import cbor2
import pytest
from helpers_core import (
    ISSUER,
    NOW,
    OTHER_ISSUER,
    SPEC_CLAIMS,
    SPEC_KID,
    SPEC_TEXT,
    claims_map,
    cose_bytes_of,
    gt1_text,
    kid_of,
    make_validator,
    public_key,
    trusted,
)
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage, Sign1Message

from gate.store import GateStore
from gate.ticket import Claims, mint_ticket, parse_ticket
from gate.validator import Reason


def pycose_decode(data: bytes) -> Sign1Message:
    """Decode a tagged COSE_Sign1 with pycose.

    pycose 1.1's ``CoseMessage.decode`` expects the tag content to decode as a list and the
    unprotected header as a dict, but cbor2 >= 6 decodes tag contents immutably (tuple,
    frozendict). ``from_cose_obj`` is the code path ``decode`` takes after its checks, so hand
    it the same array thawed.
    """
    try:
        message = CoseMessage.decode(data)
    except TypeError:
        item = cbor2.loads(data)
        assert isinstance(item, cbor2.CBORTag) and item.tag == 18
        protected, unprotected, payload, signature = item.value
        cose_obj = [protected, dict(unprotected), payload, signature]
        message = Sign1Message.from_cose_obj(cose_obj, True)
    assert isinstance(message, Sign1Message)
    return message


def okp_public(signing_key) -> OKPKey:
    return OKPKey(crv=Ed25519, x=public_key(signing_key))


def okp_private(signing_key) -> OKPKey:
    return OKPKey(crv=Ed25519, x=public_key(signing_key), d=bytes(signing_key))


# pycose verifies what gate.ticket mints ----------------------------------------------------


def test_pycose_verifies_the_spec_vector():
    message = pycose_decode(cose_bytes_of(SPEC_TEXT))
    assert message.phdr[Algorithm] is EdDSA
    assert message.phdr[KID] == SPEC_KID
    assert cbor2.loads(message.payload) == SPEC_CLAIMS.to_map()
    message.key = okp_public(ISSUER)
    assert message.verify_signature()


@pytest.mark.parametrize("product", ["single", "multi", "pass"])
def test_pycose_verifies_minted_tickets(product):
    claims = Claims(
        cti=bytes(range(12)),
        exp=NOW + 3600,
        product=product,
        uses=2 if product == "multi" else None,
        holder=bytes(32),
        zones=("north", "south"),
    )
    message = pycose_decode(cose_bytes_of(mint_ticket(claims, OTHER_ISSUER)))
    message.key = okp_public(OTHER_ISSUER)
    assert message.verify_signature()
    assert message.phdr[KID] == kid_of(OTHER_ISSUER)


def test_pycose_rejects_a_minted_ticket_under_another_key():
    message = pycose_decode(cose_bytes_of(SPEC_TEXT))
    message.key = okp_public(OTHER_ISSUER)
    assert not message.verify_signature()


def test_pycose_rejects_a_minted_ticket_with_an_altered_payload():
    message = pycose_decode(cose_bytes_of(SPEC_TEXT))
    payload = bytearray(message.payload)
    payload[-1] ^= 0x01
    message.payload = bytes(payload)
    message.key = okp_public(ISSUER)
    assert not message.verify_signature()


# gate accepts what pycose signs ------------------------------------------------------------


def pycose_ticket(claims: dict, signing_key=ISSUER, *, kid_in="protected") -> str:
    phdr = {Algorithm: EdDSA}
    uhdr = {}
    (phdr if kid_in == "protected" else uhdr)[KID] = kid_of(signing_key)
    message = Sign1Message(phdr=phdr, uhdr=uhdr, payload=cbor2.dumps(claims))
    message.key = okp_private(signing_key)
    return gt1_text(message.encode())


def test_validator_accepts_a_pycose_ticket():
    claims = claims_map(product="multi", uses=2, zones=["A"], category="adult")
    text = pycose_ticket(claims)
    assert parse_ticket(text).message.protected == {1: -8, 4: kid_of(ISSUER)}
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.OK
    assert decision.claims.cti == claims[7]
    assert decision.claims.uses == 2
    assert decision.claims.category == "adult"


def test_validator_accepts_and_consumes_a_pycose_ticket(tmp_path):
    with GateStore.in_state_dir(tmp_path) as store:
        validator = make_validator(store, [trusted(ISSUER)])
        text = pycose_ticket(claims_map(product="single"))
        assert validator.decide(text, now=NOW).reason is Reason.OK
        assert validator.decide(text, now=NOW + 1).reason is Reason.USED
        assert store.admission_count() == 1


def test_pycose_ticket_of_the_spec_claims_is_the_spec_text():
    # Same key, same claims, keys in RFC 8949 §4.2.1 order (bytewise by encoded key): pycose
    # produces the spec's text byte for byte.
    claims = dict(sorted(SPEC_CLAIMS.to_map().items(), key=lambda item: cbor2.dumps(item[0])))
    text = pycose_ticket(claims)
    assert text == SPEC_TEXT
    assert parse_ticket(text).claims == SPEC_CLAIMS


def test_validator_accepts_a_pycose_ticket_with_kid_in_the_unprotected_header():
    text = pycose_ticket(claims_map(), kid_in="unprotected")
    assert parse_ticket(text).message.unprotected == {4: kid_of(ISSUER)}
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.OK


def test_validator_rejects_a_pycose_ticket_from_an_untrusted_key():
    text = pycose_ticket(claims_map(), OTHER_ISSUER)
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.UNKNOWN_KEY


def test_validator_rejects_a_pycose_ticket_signed_by_another_key_under_a_trusted_kid():
    phdr = {Algorithm: EdDSA, KID: kid_of(ISSUER)}
    message = Sign1Message(phdr=phdr, payload=cbor2.dumps(claims_map()))
    message.key = okp_private(OTHER_ISSUER)
    text = gt1_text(message.encode())
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.BAD_SIGNATURE


def test_validator_applies_the_claims_of_a_pycose_ticket():
    text = pycose_ticket(claims_map(exp=NOW - 86_400, nbf=...))
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.EXPIRED


def test_untagged_pycose_ticket_is_accepted():
    message = Sign1Message(
        phdr={Algorithm: EdDSA, KID: kid_of(ISSUER)}, payload=cbor2.dumps(claims_map())
    )
    message.key = okp_private(ISSUER)
    data = message.encode(tag=False)
    assert data[0] == 0x84
    text = "GT1:" + base45.b45encode(data).decode()
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.OK
