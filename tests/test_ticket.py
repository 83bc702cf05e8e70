"""The GT1 ticket codec (gate.ticket): the spec's test vector, the claims rules, the text form.

Odd tickets are built with valid signatures (tests/helpers_core.py), so every ``Malformed``
here comes from the structure under test and not from a broken signature.
"""

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
    SPEC_PUBLIC_KEY,
    SPEC_TEXT,
    claims_map,
    cose_bytes_of,
    gt1_text,
    make_validator,
    public_key,
    sign1,
    signed_text,
    trusted,
)

from gate.cose import Malformed, decode_one
from gate.ticket import kid_for, mint_ticket, parse_ticket
from gate.validator import Reason

# The spec's test vector --------------------------------------------------------------------


def test_spec_key_is_rfc8032_test_key_1():
    assert public_key(ISSUER) == SPEC_PUBLIC_KEY


def test_spec_kid():
    assert kid_for(SPEC_PUBLIC_KEY) == SPEC_KID
    assert SPEC_KID.hex() == "21fe31dfa154a261"


def test_minting_the_spec_vector_gives_the_spec_text():
    text = mint_ticket(SPEC_CLAIMS, ISSUER)
    assert text == SPEC_TEXT
    assert len(text) == 238
    assert "\n" not in text and text.count(" ") == 2


def test_parsing_the_spec_vector_gives_its_claims():
    ticket = parse_ticket(SPEC_TEXT)
    assert ticket.kid == SPEC_KID
    assert ticket.claims == SPEC_CLAIMS
    assert ticket.claims.to_json() == {
        "iss": "metro-demo",
        "exp": 1798761600,
        "nbf": 1767225600,
        "iat": 1767225600,
        "cti": "00112233445566778899aabbccddeeff",
        "product": "multi",
        "zones": ["A", "B"],
        "uses": 10,
        "holder": None,
        "category": "adult",
    }
    assert ticket.message.verify(ISSUER.verify_key)
    assert not ticket.message.verify(OTHER_ISSUER.verify_key)


def test_spec_vector_envelope_is_the_issuer_form():
    data = cose_bytes_of(SPEC_TEXT)
    assert data[0] == 0xD2  # tag 18
    ticket = parse_ticket(SPEC_TEXT)
    assert ticket.message.protected == {1: -8, 4: SPEC_KID}
    assert ticket.message.protected_bytes == cbor2.dumps({1: -8, 4: SPEC_KID}, canonical=True)
    assert ticket.message.unprotected == {}


def test_spec_vector_is_accepted_by_the_validator():
    decision = make_validator(None, [trusted(ISSUER)]).decide(SPEC_TEXT, now=NOW)
    assert decision.reason is Reason.OK
    assert decision.claims == SPEC_CLAIMS


# Deterministic encoding --------------------------------------------------------------------


def test_minting_is_deterministic():
    assert mint_ticket(SPEC_CLAIMS, ISSUER) == mint_ticket(SPEC_CLAIMS, ISSUER)
    # Parsing and minting again gives the same text: the claims map round-trips exactly.
    assert mint_ticket(parse_ticket(SPEC_TEXT).claims, ISSUER) == SPEC_TEXT


def test_claims_map_is_encoded_with_sorted_keys():
    payload = parse_ticket(SPEC_TEXT).message.payload
    # RFC 8949 §4.2.1: keys sorted by their encoded bytes, so 1, 4, 5, 6, 7 before -1, -2, ...
    assert list(decode_one(payload, "payload")) == [1, 4, 5, 6, 7, -1, -2, -3, -5]
    assert payload == cbor2.dumps(SPEC_CLAIMS.to_map(), canonical=True)
    shuffled = dict(reversed(list(SPEC_CLAIMS.to_map().items())))
    assert cbor2.dumps(shuffled, canonical=True) == payload
    assert cbor2.dumps(shuffled) != payload  # the order above really is the canonical one


def test_any_well_formed_claims_encoding_is_accepted():
    # Verifiers accept any well-formed encoding, since the signature covers the bytes as sent.
    shuffled = dict(reversed(list(SPEC_CLAIMS.to_map().items())))
    text = signed_text(shuffled, ISSUER)
    assert text != SPEC_TEXT
    assert parse_ticket(text).claims == SPEC_CLAIMS
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.OK


def test_indefinite_length_claims_map_is_accepted():
    entries = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in claims_map().items())
    payload = b"\xbf" + entries + b"\xff"  # indefinite-length map
    text = gt1_text(sign1(payload))
    assert parse_ticket(text).claims.cti == claims_map()[7]


# Claims: types and presence ----------------------------------------------------------------

MULTI = {"product": "multi", "uses": 3}

WRONG_TYPES = {
    "iss int": {"iss": 7},
    "iss bytes": {"iss": b"issuer"},
    "exp negative": {"exp": -1},
    "exp float": {"exp": float(NOW + 86_400)},
    "exp bool": {"exp": True},
    "exp text": {"exp": str(NOW + 86_400)},
    "exp null": {"exp": None},
    "nbf negative": {"nbf": -5},
    "nbf text": {"nbf": "yesterday"},
    "iat float": {"iat": 1.5},
    "cti 7 bytes": {"cti": bytes(7)},
    "cti 17 bytes": {"cti": bytes(17)},
    "cti empty": {"cti": b""},
    "cti text": {"cti": "0102030405060708"},
    "product unknown": {"product": "season"},
    "product upper case": {"product": "SINGLE"},
    "product bytes": {"product": b"single"},
    "zones empty": {"zones": []},
    "zones not a list": {"zones": "A"},
    "zones map": {"zones": {"A": True}},
    "zones list with an int": {"zones": ["A", 1]},
    "uses 0 for multi": {**MULTI, "uses": 0},
    "uses negative for multi": {**MULTI, "uses": -1},
    "uses text for multi": {**MULTI, "uses": "3"},
    "multi without uses": {**MULTI, "uses": ...},
    "uses text for single": {"uses": "3"},
    "holder 31 bytes": {"holder": bytes(31)},
    "holder 33 bytes": {"holder": bytes(33)},
    "holder text": {"holder": "k" * 32},
    "category bytes": {"category": b"adult"},
    "category int": {"category": 1},
}

MISSING = {
    "exp missing": {"exp": ...},
    "cti missing": {"cti": ...},
    "product missing": {"product": ...},
}

ACCEPTED_VARIANTS = {
    "minimal single": {"iss": ..., "nbf": ..., "iat": ...},
    "cti 8 bytes": {"cti": bytes(8)},
    "cti 16 bytes": {"cti": bytes(16)},
    "multi with uses 1": {**MULTI, "uses": 1},
    "pass": {"product": "pass"},
    "pass ignores uses 0": {"product": "pass", "uses": 0},
    "single ignores uses 0": {"uses": 0},
    "holder 32 bytes": {"holder": bytes(32)},
    "zones one": {"zones": ["A"]},
    "exp and nbf 0": {"exp": 0, "nbf": 0, "iat": 0},
    "category": {"category": "child"},
}


def test_claims_builder_control_is_accepted():
    # The builder below gives an accepted ticket when no claim is bent.
    decision = make_validator(None, [trusted(ISSUER)]).decide(signed_text(), now=NOW)
    assert decision.reason is Reason.OK


@pytest.mark.parametrize(
    "overrides",
    [*WRONG_TYPES.values(), *MISSING.values()],
    ids=[*WRONG_TYPES.keys(), *MISSING.keys()],
)
def test_wrong_or_missing_claim_is_malformed(overrides):
    text = signed_text(claims_map(**overrides))
    with pytest.raises(Malformed, match="claim"):
        parse_ticket(text)
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.MALFORMED


@pytest.mark.parametrize("overrides", ACCEPTED_VARIANTS.values(), ids=ACCEPTED_VARIANTS.keys())
def test_valid_claim_variants_parse(overrides):
    wanted = claims_map(**overrides)
    claims = parse_ticket(signed_text(wanted)).claims
    assert claims.cti == wanted[7]
    assert claims.exp == wanted[4]
    assert claims.product == wanted[-1]
    assert claims.uses == wanted.get(-3)
    assert claims.holder == wanted.get(-4)
    assert claims.zones == (tuple(wanted[-2]) if -2 in wanted else None)


def test_payload_that_is_not_a_map_is_malformed():
    for payload in (cbor2.dumps([1, 2, 3]), cbor2.dumps("claims"), b"", b"\xa1\x01"):
        with pytest.raises(Malformed):
            parse_ticket(gt1_text(sign1(payload)))


def test_payload_with_trailing_bytes_is_malformed():
    payload = cbor2.dumps(claims_map()) + b"\x00"
    with pytest.raises(Malformed, match="trailing"):
        parse_ticket(gt1_text(sign1(payload)))


def test_unknown_claim_keys_are_ignored():
    plain = parse_ticket(signed_text(claims_map())).claims
    extended = {
        **claims_map(),
        2: "subject",
        8: b"\x00",
        99: [1, 2, {"x": None}],
        -6: {"nested": [True]},
        -99: 3.5,
        "text-key": 1,
        b"bytes-key": "v",
    }
    text = signed_text(extended)
    assert parse_ticket(text).claims == plain
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.OK


# The text form -----------------------------------------------------------------------------


def _text_of_length(length: int) -> str:
    """A validly signed ticket whose GT1 text is exactly ``length`` characters."""
    for pad in range(2000):
        text = signed_text({**claims_map(), 99: b"\x00" * pad})
        if len(text) == length:
            return text
        if len(text) > length:
            break
    raise AssertionError(f"no padding gives {length} characters")


def test_text_of_1000_characters_is_accepted():
    text = _text_of_length(1000)
    assert parse_ticket(text).claims.cti == claims_map()[7]


def test_text_over_1000_characters_is_malformed():
    # Base45 lengths skip 1001 (3 characters per 2 bytes, 2 for a last odd byte).
    text = _text_of_length(1002)
    with pytest.raises(Malformed, match="1000"):
        parse_ticket(text)
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.MALFORMED
    # A valid ticket followed by one character over the limit fails on the length alone.
    with pytest.raises(Malformed, match="1000"):
        parse_ticket(_text_of_length(1000) + "0")


@pytest.mark.parametrize(
    "prefix", ["gt1:", "Gt1:", "GT1", "GT1;", "GT2:", "HC1:", " GT1:", "GT1: ", ""]
)
def test_prefix_must_be_exactly_GT1(prefix):
    text = prefix + SPEC_TEXT.removeprefix("GT1:")
    with pytest.raises(Malformed):
        parse_ticket(text)
    decision = make_validator(None, [trusted(ISSUER)]).decide(text, now=NOW)
    assert decision.reason is Reason.MALFORMED


def test_spaces_inside_the_payload_are_part_of_the_base45():
    assert parse_ticket(SPEC_TEXT).claims == SPEC_CLAIMS
    with pytest.raises(Malformed):
        parse_ticket(SPEC_TEXT.replace(" ", ""))


@pytest.mark.parametrize("text", [b"GT1:", None, 42, ["GT1:"]])
def test_non_text_input_is_malformed(text):
    with pytest.raises(Malformed):
        parse_ticket(text)


def test_empty_payload_is_malformed():
    with pytest.raises(Malformed):
        parse_ticket("GT1:")


def test_base45_of_the_spec_vector_round_trips():
    data = cose_bytes_of(SPEC_TEXT)
    assert "GT1:" + base45.b45encode(data).decode() == SPEC_TEXT


# Known deviations from the GT1 rules (see the report in the test-suite hand-over) ----------


@pytest.mark.parametrize("suffix", ["\n", "\n\n\n"], ids=["LF", "3LF"])
def test_trailing_newline_is_not_base45(suffix):
    with pytest.raises(Malformed):
        parse_ticket(SPEC_TEXT + suffix)


def test_claim_under_a_float_key_is_not_that_claim():
    claims = claims_map(exp=...)
    claims[4.0] = NOW + 86_400
    with pytest.raises(Malformed, match="exp"):
        parse_ticket(signed_text(claims))
