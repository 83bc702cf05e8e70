"""gate.cose against public vectors (COSE WG, RFC 9285) and the GT1 structural rules."""

from __future__ import annotations

import json

import base45
import cbor2
import nacl.signing
import pytest
from helpers_core import (
    FIXTURES,
    ISSUER,
    NOW,
    THIRD_ISSUER,
    claims_map,
    gt1_text,
    kid_of,
    make_validator,
    sign1,
    trusted,
)

from gate.cose import Malformed, check_eddsa, decode_sign1, encode_sign1
from gate.ticket import parse_ticket
from gate.validator import Reason

VECTOR = json.loads((FIXTURES / "cose-wg-eddsa-sig-01.json").read_text())
VECTOR_BYTES = bytes.fromhex(VECTOR["output"]["cbor"])
VECTOR_KEY = VECTOR["input"]["sign0"]["key"]
VECTOR_VERIFY_KEY = nacl.signing.VerifyKey(bytes.fromhex(VECTOR_KEY["x_hex"]))
VECTOR_PLAINTEXT = VECTOR["input"]["plaintext"].encode()
SIGNATURE_SIZE = 64
BIT_FLIPS = (0x01, 0x80, 0xFF)


# The COSE WG vector ------------------------------------------------------------------------


def test_cose_wg_vector_verifies():
    message = decode_sign1(VECTOR_BYTES)
    assert message.payload == VECTOR_PLAINTEXT
    assert message.protected == {1: -8, 3: 0}
    check_eddsa(message)  # alg EdDSA, 64-byte signature
    assert message.verify(VECTOR_VERIFY_KEY)


def test_cose_wg_vector_to_be_signed_matches_intermediate():
    message = decode_sign1(VECTOR_BYTES)
    assert message.to_be_signed() == bytes.fromhex(VECTOR["intermediates"]["ToBeSign_hex"])


def test_cose_wg_vector_kid_is_found_in_the_unprotected_header():
    message = decode_sign1(VECTOR_BYTES)
    assert 4 not in message.protected
    assert message.unprotected == {4: b"11"}
    assert message.kid == b"11" == VECTOR_KEY["kid"].encode()


def test_cose_wg_vector_signature_is_what_the_private_key_makes():
    # Ed25519 is deterministic: the private key of the vector must reproduce its signature.
    message = decode_sign1(VECTOR_BYTES)
    signing_key = nacl.signing.SigningKey(bytes.fromhex(VECTOR_KEY["d_hex"]))
    assert bytes(signing_key.verify_key) == bytes(VECTOR_VERIFY_KEY)
    assert signing_key.sign(message.to_be_signed()).signature == message.signature


def test_cose_wg_vector_does_not_verify_with_another_key():
    assert not decode_sign1(VECTOR_BYTES).verify(THIRD_ISSUER.verify_key)


def _flipped(data: bytes, position: int, mask: int) -> bytes:
    mutated = bytearray(data)
    mutated[position] ^= mask
    return bytes(mutated)


def test_cose_wg_vector_fails_after_any_signature_byte_changes():
    signature_start = len(VECTOR_BYTES) - SIGNATURE_SIZE
    assert VECTOR_BYTES[signature_start:] == decode_sign1(VECTOR_BYTES).signature
    checked = 0
    for position in range(signature_start, len(VECTOR_BYTES)):
        for mask in BIT_FLIPS:
            message = decode_sign1(_flipped(VECTOR_BYTES, position, mask))
            assert len(message.signature) == SIGNATURE_SIZE
            assert not message.verify(VECTOR_VERIFY_KEY), (position, mask)
            checked += 1
    assert checked == SIGNATURE_SIZE * len(BIT_FLIPS)


def test_cose_wg_vector_fails_after_any_payload_byte_changes():
    payload_start = VECTOR_BYTES.index(VECTOR_PLAINTEXT)
    checked = 0
    for offset in range(len(VECTOR_PLAINTEXT)):
        for mask in BIT_FLIPS:
            message = decode_sign1(_flipped(VECTOR_BYTES, payload_start + offset, mask))
            assert message.payload != VECTOR_PLAINTEXT
            assert not message.verify(VECTOR_VERIFY_KEY), (offset, mask)
            checked += 1
    assert checked == len(VECTOR_PLAINTEXT) * len(BIT_FLIPS)


def test_cose_wg_vector_fails_after_any_protected_header_byte_changes():
    message = decode_sign1(VECTOR_BYTES)
    start = VECTOR_BYTES.index(message.protected_bytes)
    for offset in range(len(message.protected_bytes)):
        for mask in BIT_FLIPS:
            try:
                mutated = decode_sign1(_flipped(VECTOR_BYTES, start + offset, mask))
            except Malformed:
                continue
            assert not mutated.verify(VECTOR_VERIFY_KEY), (offset, mask)


# RFC 9285 base45 ---------------------------------------------------------------------------

RFC9285_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]
RFC9285_INVALID = ["GGW", ":::"]


@pytest.mark.parametrize(("raw", "encoded"), RFC9285_EXAMPLES)
def test_base45_rfc9285_examples(raw, encoded):
    assert base45.b45encode(raw) == encoded.encode("ascii")
    assert base45.b45decode(encoded) == raw


@pytest.mark.parametrize("encoded", RFC9285_INVALID)
def test_base45_rfc9285_invalid_examples(encoded):
    with pytest.raises(ValueError):
        base45.b45decode(encoded)


@pytest.mark.parametrize("encoded", RFC9285_INVALID)
def test_ticket_with_invalid_base45_is_malformed(encoded):
    with pytest.raises(Malformed, match="base45"):
        parse_ticket("GT1:" + encoded)
    decision = make_validator(None, [trusted(ISSUER)]).decide("GT1:" + encoded, now=NOW)
    assert decision.reason is Reason.MALFORMED


@pytest.mark.parametrize(("raw", "encoded"), RFC9285_EXAMPLES)
def test_ticket_of_valid_base45_but_not_cose_is_malformed(raw, encoded):
    # Valid base45 gets past the text layer, and then fails as CBOR/COSE, not as base45.
    with pytest.raises(Malformed) as caught:
        parse_ticket("GT1:" + encoded)
    assert "base45" not in str(caught.value)


# COSE_Sign1 structure ----------------------------------------------------------------------

PAYLOAD = cbor2.dumps(claims_map())
KID = kid_of(ISSUER)


def test_well_formed_control_parses_and_verifies():
    # The builder used below makes a valid, accepted ticket when nothing is bent.
    data = sign1(PAYLOAD)
    assert data == encode_sign1({1: -8, 4: KID}, PAYLOAD, ISSUER)
    assert decode_sign1(data).verify(ISSUER.verify_key)
    decision = make_validator(None, [trusted(ISSUER)]).decide(gt1_text(data), now=NOW)
    assert decision.reason is Reason.OK


def test_untagged_four_element_array_is_accepted():
    data = sign1(PAYLOAD, tag=None)
    assert data[0] == 0x84
    message = decode_sign1(data)
    assert message.payload == PAYLOAD
    assert message.verify(ISSUER.verify_key)
    assert parse_ticket(gt1_text(data)).kid == KID
    decision = make_validator(None, [trusted(ISSUER)]).decide(gt1_text(data), now=NOW)
    assert decision.reason is Reason.OK


def test_kid_in_the_unprotected_header_is_used_when_the_protected_one_has_none():
    data = sign1(PAYLOAD, protected={1: -8}, unprotected={4: KID})
    assert parse_ticket(gt1_text(data)).kid == KID
    decision = make_validator(None, [trusted(ISSUER)]).decide(gt1_text(data), now=NOW)
    assert decision.reason is Reason.OK


def test_protected_kid_wins_over_unprotected_kid():
    data = sign1(PAYLOAD, protected={1: -8, 4: KID}, unprotected={4: b"\xaa" * 8})
    assert decode_sign1(data).kid == KID


# Each entry: COSE_Sign1 bytes whose signature (where there is one) is valid for ISSUER.
STRUCTURE_CASES = {
    "trailing byte after the COSE item": sign1(PAYLOAD) + b"\x00",
    "trailing COSE item after the COSE item": sign1(PAYLOAD) + sign1(PAYLOAD),
    "wrong tag 98": sign1(PAYLOAD, tag=98),
    "wrong tag 17": sign1(PAYLOAD, tag=17),
    "tag 18 on tag 18": cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(sign1(PAYLOAD)))),
    "three-element array": sign1(PAYLOAD, drop_elements=1),
    "five-element array": sign1(PAYLOAD, extra_elements=[b""]),
    "not an array": cbor2.dumps(cbor2.CBORTag(18, {"p": b""})),
    "protected header not a bstr": sign1(PAYLOAD, protected_bytes={1: -8, 4: KID}),
    "protected bstr not a map": sign1(PAYLOAD, protected_bytes=cbor2.dumps([1, -8, 4, KID])),
    "protected with trailing bytes": sign1(
        PAYLOAD, protected_bytes=cbor2.dumps({1: -8, 4: KID}) + b"\x00"
    ),
    "protected bstr not CBOR": sign1(PAYLOAD, protected_bytes=b"\xff\xff"),
    "unprotected header not a map": sign1(PAYLOAD, unprotected=[4, KID]),
    "payload not a bstr": cbor2.dumps(
        cbor2.CBORTag(18, [cbor2.dumps({1: -8, 4: KID}), {}, claims_map(), bytes(64)])
    ),
    "signature not a bstr": sign1(PAYLOAD, signature="x" * 64),  # type: ignore[arg-type]
}

# The same, but only check_eddsa (alg and signature size) objects.
EDDSA_CASES = {
    "alg missing": sign1(PAYLOAD, protected={4: KID}),
    "empty protected header": sign1(PAYLOAD, protected_bytes=b"", unprotected={1: -8, 4: KID}),
    "alg -7 (ES256)": sign1(PAYLOAD, protected={1: -7, 4: KID}),
    "alg as text": sign1(PAYLOAD, protected={1: "EdDSA", 4: KID}),
    "alg true": sign1(PAYLOAD, protected={1: True, 4: KID}),
    "alg only in the unprotected header": sign1(PAYLOAD, protected={4: KID}, unprotected={1: -8}),
    "signature 63 bytes": sign1(PAYLOAD, signature=ISSUER.sign(b"x").signature[:63]),
    "signature 65 bytes": sign1(PAYLOAD, signature=ISSUER.sign(b"x").signature + b"\x00"),
    "signature empty": sign1(PAYLOAD, signature=b""),
}


@pytest.mark.parametrize("data", STRUCTURE_CASES.values(), ids=STRUCTURE_CASES.keys())
def test_bad_structure_is_malformed(data):
    with pytest.raises(Malformed):
        decode_sign1(data)
    with pytest.raises(Malformed):
        parse_ticket(gt1_text(data))


@pytest.mark.parametrize("data", EDDSA_CASES.values(), ids=EDDSA_CASES.keys())
def test_bad_alg_or_signature_size_is_malformed(data):
    message = decode_sign1(data)  # the envelope itself is well-formed
    with pytest.raises(Malformed):
        check_eddsa(message)
    with pytest.raises(Malformed):
        parse_ticket(gt1_text(data))


def test_wrong_alg_is_malformed_even_though_the_signature_verifies():
    data = EDDSA_CASES["alg -7 (ES256)"]
    assert decode_sign1(data).verify(ISSUER.verify_key)
    decision = make_validator(None, [trusted(ISSUER)]).decide(gt1_text(data), now=NOW)
    assert decision.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "data",
    [*STRUCTURE_CASES.values(), *EDDSA_CASES.values()],
    ids=[*STRUCTURE_CASES.keys(), *EDDSA_CASES.keys()],
)
def test_validator_reports_bad_structure_as_malformed(data):
    decision = make_validator(None, [trusted(ISSUER)]).decide(gt1_text(data), now=NOW)
    assert decision.reason is Reason.MALFORMED
    assert decision.decision == "reject"


def test_kid_missing_is_malformed():
    data = sign1(PAYLOAD, protected={1: -8})
    with pytest.raises(Malformed, match="kid"):
        parse_ticket(gt1_text(data))


def test_kid_not_a_byte_string_is_malformed():
    data = sign1(PAYLOAD, protected={1: -8, 4: 1234})
    with pytest.raises(Malformed, match="kid"):
        parse_ticket(gt1_text(data))


# Known deviations from the GT1 rules (see the report in the test-suite hand-over) ----------


def test_alg_as_float_is_malformed():
    data = sign1(PAYLOAD, protected={1: -8.0, 4: KID})
    with pytest.raises(Malformed):
        parse_ticket(gt1_text(data))


@pytest.mark.parametrize("label", [True, 1.0], ids=["true", "1.0"])
def test_alg_under_a_non_integer_label_is_missing(label):
    data = sign1(PAYLOAD, protected={label: -8, 4: KID})
    with pytest.raises(Malformed):
        parse_ticket(gt1_text(data))


def test_protected_header_with_duplicate_alg_label_is_malformed():
    # {1: -7, 1: -8, 4: kid}, hand-encoded: cbor2 cannot emit duplicate keys.
    protected_bytes = b"\xa3\x01\x26\x01\x27\x04\x48" + KID
    data = sign1(PAYLOAD, protected_bytes=protected_bytes)
    with pytest.raises(Malformed, match="duplicate"):
        parse_ticket(gt1_text(data))
