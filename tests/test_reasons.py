"""Every GT1 reason code through Validator.decide, with a real GateStore, and the spec's
order when several reasons apply at once."""

from __future__ import annotations

import cbor2
import pytest
from helpers_core import (
    ISSUER,
    NOW,
    OTHER_ISSUER,
    THIRD_ISSUER,
    claims_map,
    gt1_text,
    kid_of,
    make_validator,
    public_key,
    sign1,
    signed_text,
    trusted,
)

from gate.cose import encode_sign1
from gate.store import GateStore
from gate.ticket import Claims, mint_ticket, parse_ticket
from gate.trust import TrustedKey, TrustStore
from gate.validator import Reason

SKEW = 30
DAY = 86_400
CTI = bytes.fromhex("a1a2a3a4a5a6a7a8")


@pytest.fixture
def store(tmp_path):
    with GateStore.in_state_dir(tmp_path) as gate_store:
        yield gate_store


@pytest.fixture
def validator(store):
    return make_validator(store, [trusted(ISSUER)], clock_skew=SKEW)


def ticket(signing_key=ISSUER, **fields) -> str:
    values = {"cti": CTI, "exp": NOW + DAY, "product": "single", "nbf": NOW - DAY}
    values.update(fields)
    return mint_ticket(Claims(**values), signing_key)


def revoke(store: GateStore, tickets=(), keys=()) -> None:
    held = store.revocation_state().version
    store.replace_revocations((held or 0) + 1, None, list(tickets), list(keys), expect_version=held)


# One reason at a time ----------------------------------------------------------------------


def test_ok_admits_and_records(validator, store):
    decision = validator.decide(ticket(), now=NOW)
    assert decision.reason is Reason.OK
    assert decision.accepted and decision.decision == "accept"
    assert decision.consumed and decision.admission_seq is not None
    assert decision.key.public_key == public_key(ISSUER)
    assert store.admission_count() == 1
    assert decision.to_json()["reason"] == "ok"
    assert decision.to_json()["decision"] == "accept"


@pytest.mark.parametrize(
    "text", ["", "GT1:", "hello", "GT1:GGW", "GT1:" + "0" * 997, "gt1:" + ticket()[4:]]
)
def test_malformed(validator, store, text):
    decision = validator.decide(text, now=NOW)
    assert decision.reason is Reason.MALFORMED
    assert not decision.accepted and decision.decision == "reject"
    assert decision.kid is None and decision.claims is None
    assert decision.to_json()["reason"] == "malformed"
    assert store.admission_count() == 0


def test_unknown_key(validator):
    decision = validator.decide(ticket(OTHER_ISSUER), now=NOW)
    assert decision.reason is Reason.UNKNOWN_KEY
    assert decision.kid == kid_of(OTHER_ISSUER)
    assert kid_of(OTHER_ISSUER).hex() in decision.detail


def test_unknown_key_with_empty_trust_store(store):
    decision = make_validator(store, []).decide(ticket(), now=NOW)
    assert decision.reason is Reason.UNKNOWN_KEY


def test_bad_signature_when_the_kid_names_a_trusted_key_but_another_key_signed(validator):
    # Signed by OTHER_ISSUER, but claiming ISSUER's kid.
    payload = cbor2.dumps(claims_map(cti=CTI), canonical=True)
    data = encode_sign1({1: -8, 4: kid_of(ISSUER)}, payload, OTHER_ISSUER)
    text = gt1_text(data)
    decision = validator.decide(text, now=NOW)
    assert decision.reason is Reason.BAD_SIGNATURE
    assert decision.key is None


def test_bad_signature_when_signature_bytes_are_altered(validator):
    good = signed_text(claims_map(cti=CTI))
    bad = signed_text(claims_map(cti=CTI), signature=bytes(64))
    assert validator.decide(good, now=NOW, consume=False).reason is Reason.OK
    assert validator.decide(bad, now=NOW).reason is Reason.BAD_SIGNATURE


class ListedCandidates(TrustStore):
    """A trust store that offers a fixed list of candidates for every kid, as happens when
    two trusted keys share a kid (a SHA-256 prefix collision cannot be made on purpose)."""

    def __init__(self, candidates: list[TrustedKey]) -> None:
        super().__init__(candidates)
        self._listed = candidates

    def candidates(self, kid: bytes) -> list[TrustedKey]:
        return list(self._listed)


def test_every_key_sharing_a_kid_is_tried(store):
    wrong, right = trusted(OTHER_ISSUER, "wrong"), trusted(ISSUER, "right")
    validator = make_validator(store, ListedCandidates([wrong, right]))
    decision = validator.decide(ticket(), now=NOW)
    assert decision.reason is Reason.OK
    assert decision.key.name == "right"


def test_order_of_keys_sharing_a_kid_does_not_matter(store):
    wrong, right = trusted(OTHER_ISSUER, "wrong"), trusted(ISSUER, "right")
    validator = make_validator(store, ListedCandidates([right, wrong]))
    assert validator.decide(ticket(), now=NOW).key.name == "right"


def test_bad_signature_when_no_key_sharing_the_kid_verifies(store):
    first, second = trusted(OTHER_ISSUER, "first"), trusted(THIRD_ISSUER, "second")
    validator = make_validator(store, ListedCandidates([first, second]))
    decision = validator.decide(ticket(), now=NOW)
    assert decision.reason is Reason.BAD_SIGNATURE
    assert "first" in decision.detail and "second" in decision.detail


def test_revoked_by_ticket_id(validator, store):
    revoke(store, tickets=[(kid_of(ISSUER), CTI)])
    assert validator.decide(ticket(), now=NOW).reason is Reason.REVOKED
    assert validator.decide(ticket(cti=CTI[::-1]), now=NOW).reason is Reason.OK


def test_revoked_ticket_id_is_per_issuer_kid(store):
    validator = make_validator(store, [trusted(ISSUER), trusted(OTHER_ISSUER, "other")])
    revoke(store, tickets=[(kid_of(OTHER_ISSUER), CTI)])
    assert validator.decide(ticket(ISSUER), now=NOW).reason is Reason.OK
    assert validator.decide(ticket(OTHER_ISSUER), now=NOW).reason is Reason.REVOKED


def test_revoked_by_whole_key(validator, store):
    revoke(store, keys=[public_key(ISSUER)])
    assert validator.decide(ticket(), now=NOW).reason is Reason.REVOKED
    assert validator.decide(ticket(cti=CTI[::-1]), now=NOW).reason is Reason.REVOKED


def test_not_yet_valid_at_the_skew_boundary(validator):
    nbf = NOW + 1000
    text = ticket(nbf=nbf)
    assert validator.decide(text, now=nbf - SKEW - 1, consume=False).reason is (
        Reason.NOT_YET_VALID
    )
    assert validator.decide(text, now=nbf - SKEW - 0.001, consume=False).reason is (
        Reason.NOT_YET_VALID
    )
    assert validator.decide(text, now=nbf - SKEW, consume=False).reason is Reason.OK


def test_expired_at_the_skew_boundary(validator):
    exp = NOW + 1000
    text = ticket(exp=exp)
    assert validator.decide(text, now=exp + SKEW - 1, consume=False).reason is Reason.OK
    assert validator.decide(text, now=exp + SKEW - 0.001, consume=False).reason is Reason.OK
    assert validator.decide(text, now=exp + SKEW, consume=False).reason is Reason.EXPIRED
    assert validator.decide(text, now=exp + SKEW + DAY, consume=False).reason is Reason.EXPIRED


def test_no_skew_tolerance(store):
    validator = make_validator(store, [trusted(ISSUER)], clock_skew=0)
    text = ticket(nbf=NOW, exp=NOW + 10)
    assert validator.decide(text, now=NOW - 1, consume=False).reason is Reason.NOT_YET_VALID
    assert validator.decide(text, now=NOW, consume=False).reason is Reason.OK
    assert validator.decide(text, now=NOW + 9, consume=False).reason is Reason.OK
    assert validator.decide(text, now=NOW + 10, consume=False).reason is Reason.EXPIRED


def test_ticket_without_nbf_is_valid_from_the_start(validator):
    text = ticket(nbf=None)
    assert validator.decide(text, now=0, consume=False).reason is Reason.OK


def test_issuer_key_not_before(store):
    start = NOW + 1000
    validator = make_validator(store, [trusted(ISSUER, not_before=start)], clock_skew=SKEW)
    text = ticket(nbf=None)
    assert validator.decide(text, now=start - SKEW - 1, consume=False).reason is (
        Reason.NOT_YET_VALID
    )
    assert validator.decide(text, now=start - SKEW, consume=False).reason is Reason.OK


def test_issuer_key_not_after(store):
    end = NOW + 1000
    validator = make_validator(store, [trusted(ISSUER, not_after=end)], clock_skew=SKEW)
    text = ticket(exp=end + DAY)
    assert validator.decide(text, now=end + SKEW - 1, consume=False).reason is Reason.OK
    assert validator.decide(text, now=end + SKEW, consume=False).reason is Reason.EXPIRED


def test_wrong_zone_by_ticket_zones(store):
    validator = make_validator(store, [trusted(ISSUER)], zone="C")
    assert validator.decide(ticket(zones=("A", "B")), now=NOW).reason is Reason.WRONG_ZONE
    assert validator.decide(ticket(zones=("B", "C")), now=NOW).reason is Reason.OK


def test_ticket_without_zones_is_valid_in_every_zone(store):
    validator = make_validator(store, [trusted(ISSUER)], zone="Z")
    assert validator.decide(ticket(zones=None), now=NOW).reason is Reason.OK


def test_gate_without_a_zone_ignores_ticket_zones(store):
    validator = make_validator(store, [trusted(ISSUER)], zone=None)
    assert validator.decide(ticket(zones=("Q",)), now=NOW).reason is Reason.OK


def test_zones_are_compared_exactly(store):
    validator = make_validator(store, [trusted(ISSUER)], zone="A")
    assert validator.decide(ticket(zones=("a", "A ")), now=NOW).reason is Reason.WRONG_ZONE


def test_wrong_zone_by_issuer_key_zones(store):
    validator = make_validator(store, [trusted(ISSUER, zones=("B",))], zone="A")
    assert validator.decide(ticket(zones=None), now=NOW).reason is Reason.WRONG_ZONE
    assert validator.decide(ticket(zones=("A",)), now=NOW).reason is Reason.WRONG_ZONE
    allowed = make_validator(store, [trusted(ISSUER, zones=("A", "B"))], zone="A")
    assert allowed.decide(ticket(zones=None), now=NOW).reason is Reason.OK


def test_single_ticket_used_twice(validator, store):
    text = ticket(product="single")
    assert validator.decide(text, now=NOW).reason is Reason.OK
    second = validator.decide(text, now=NOW + 3600)
    assert second.reason is Reason.USED
    assert not second.consumed
    assert store.admission_count() == 1


def test_multi_ticket_uses(validator, store):
    text = ticket(product="multi", uses=3)
    for use in range(3):
        assert validator.decide(text, now=NOW + use).reason is Reason.OK, use
    assert validator.decide(text, now=NOW + 3).reason is Reason.USED
    assert store.admission_count() == 3


def test_used_is_shared_between_gates_on_one_store(store):
    first = make_validator(store, [trusted(ISSUER)], gate_id="g1", passback_group="north")
    second = make_validator(store, [trusted(ISSUER)], gate_id="g2", passback_group="south")
    text = ticket(product="single")
    assert first.decide(text, now=NOW).reason is Reason.OK
    assert second.decide(text, now=NOW + 1).reason is Reason.USED


def test_usage_is_per_ticket_id(validator):
    assert validator.decide(ticket(cti=bytes(8)), now=NOW).reason is Reason.OK
    assert validator.decide(ticket(cti=bytes(9)), now=NOW).reason is Reason.OK
    assert validator.decide(ticket(cti=bytes(8)), now=NOW).reason is Reason.USED


WINDOW = 600


def test_passback_within_the_window(store):
    validator = make_validator(store, [trusted(ISSUER)], passback_window=WINDOW)
    text = ticket(product="pass")
    assert validator.decide(text, now=NOW).reason is Reason.OK
    assert validator.decide(text, now=NOW + 1).reason is Reason.PASSBACK
    assert validator.decide(text, now=NOW + WINDOW - 1).reason is Reason.PASSBACK
    assert validator.decide(text, now=NOW + WINDOW).reason is Reason.OK
    assert validator.decide(text, now=NOW + WINDOW + 1).reason is Reason.PASSBACK
    assert store.admission_count() == 2


def test_pass_in_another_group_is_not_passback(store):
    north = make_validator(store, [trusted(ISSUER)], passback_group="north", gate_id="n1")
    south = make_validator(store, [trusted(ISSUER)], passback_group="south", gate_id="s1")
    text = ticket(product="pass")
    assert north.decide(text, now=NOW).reason is Reason.OK
    assert south.decide(text, now=NOW + 1).reason is Reason.OK
    assert north.decide(text, now=NOW + 2).reason is Reason.PASSBACK
    assert south.decide(text, now=NOW + 3).reason is Reason.PASSBACK


def test_window_zero_never_passback(store):
    validator = make_validator(store, [trusted(ISSUER)], passback_window=0)
    text = ticket(product="pass")
    for second in range(5):
        assert validator.decide(text, now=NOW).reason is Reason.OK, second
    assert store.admission_count() == 5


def test_single_and_multi_are_not_subject_to_passback(store):
    validator = make_validator(store, [trusted(ISSUER)], passback_window=WINDOW)
    text = ticket(product="multi", uses=2)
    assert validator.decide(text, now=NOW).reason is Reason.OK
    assert validator.decide(text, now=NOW + 1).reason is Reason.OK


# Several reasons at once: the first in the spec's order wins ------------------------------


def test_malformed_claim_beats_unknown_key(validator):
    text = signed_text(claims_map(exp="soon"), OTHER_ISSUER)
    assert validator.decide(text, now=NOW).reason is Reason.MALFORMED


def test_unknown_key_beats_expired(validator, store):
    revoke(store, tickets=[(kid_of(OTHER_ISSUER), CTI)], keys=[public_key(OTHER_ISSUER)])
    text = ticket(OTHER_ISSUER, exp=NOW - DAY, nbf=None)
    assert validator.decide(text, now=NOW).reason is Reason.UNKNOWN_KEY


def test_bad_signature_beats_revoked(validator, store):
    revoke(store, tickets=[(kid_of(ISSUER), CTI)], keys=[public_key(ISSUER)])
    text = signed_text(claims_map(cti=CTI, exp=NOW - DAY), signature=bytes(64))
    assert validator.decide(text, now=NOW).reason is Reason.BAD_SIGNATURE


def test_revoked_beats_expired(validator, store):
    revoke(store, tickets=[(kid_of(ISSUER), CTI)])
    text = ticket(exp=NOW - DAY, nbf=None)
    assert validator.decide(text, now=NOW).reason is Reason.REVOKED


def test_revoked_beats_not_yet_valid(validator, store):
    revoke(store, keys=[public_key(ISSUER)])
    assert validator.decide(ticket(nbf=NOW + DAY), now=NOW).reason is Reason.REVOKED


def test_not_yet_valid_beats_expired(validator):
    # nbf in the future and exp in the past at once.
    text = ticket(nbf=NOW + DAY, exp=NOW - DAY)
    assert validator.decide(text, now=NOW).reason is Reason.NOT_YET_VALID


def test_expired_beats_wrong_zone(store):
    validator = make_validator(store, [trusted(ISSUER)], zone="A")
    text = ticket(exp=NOW - DAY, nbf=None, zones=("B",))
    assert validator.decide(text, now=NOW).reason is Reason.EXPIRED


def test_wrong_zone_beats_used(store):
    anywhere = make_validator(store, [trusted(ISSUER)], zone=None)
    zone_c = make_validator(store, [trusted(ISSUER)], zone="C")
    text = ticket(zones=("A",))
    assert anywhere.decide(text, now=NOW).reason is Reason.OK
    assert anywhere.decide(text, now=NOW + 1).reason is Reason.USED
    assert zone_c.decide(text, now=NOW + 2).reason is Reason.WRONG_ZONE


def test_expired_beats_used(validator):
    text = ticket(exp=NOW + 10)
    assert validator.decide(text, now=NOW).reason is Reason.OK
    assert validator.decide(text, now=NOW + 10 + SKEW).reason is Reason.EXPIRED


def test_revoked_beats_passback(validator, store):
    text = ticket(product="pass")
    assert validator.decide(text, now=NOW).reason is Reason.OK
    revoke(store, tickets=[(kid_of(ISSUER), CTI)])
    assert validator.decide(text, now=NOW + 1).reason is Reason.REVOKED


# Dry runs and what gets written ------------------------------------------------------------


def test_dry_run_never_records(validator, store):
    text = ticket(product="single")
    for _ in range(2):
        decision = validator.decide(text, now=NOW, consume=False)
        assert decision.reason is Reason.OK
        assert not decision.consumed and decision.admission_seq is None
    assert store.admission_count() == 0
    consumed = validator.decide(text, now=NOW)
    assert consumed.reason is Reason.OK and consumed.consumed
    assert store.admission_count() == 1
    assert validator.decide(text, now=NOW, consume=False).reason is Reason.USED


def test_dry_run_reports_passback_without_recording(validator, store):
    text = ticket(product="pass")
    assert validator.decide(text, now=NOW).reason is Reason.OK
    assert validator.decide(text, now=NOW + 1, consume=False).reason is Reason.PASSBACK
    assert store.admission_count() == 1


def test_stateless_validator_never_reports_used(store):
    stateless = make_validator(None, [trusted(ISSUER)])
    text = ticket(product="single")
    for _ in range(3):
        assert stateless.decide(text, now=NOW).reason is Reason.OK
    assert store.admission_count() == 0


def _reject_cases(store: GateStore):
    """(validator, text, expected reason) for every kind of reject."""
    plain = make_validator(store, [trusted(ISSUER)], clock_skew=SKEW, zone="A")
    used = ticket(cti=b"used-tkt", product="single")
    passback = ticket(cti=b"pass-tkt", product="pass")
    assert plain.decide(used, now=NOW).reason is Reason.OK
    assert plain.decide(passback, now=NOW).reason is Reason.OK
    revoke(store, tickets=[(kid_of(ISSUER), b"revoked!")])
    return [
        (plain, "GT1:GGW", Reason.MALFORMED),
        (plain, ticket(OTHER_ISSUER), Reason.UNKNOWN_KEY),
        (plain, signed_text(claims_map(cti=CTI), signature=bytes(64)), Reason.BAD_SIGNATURE),
        (plain, ticket(cti=b"revoked!"), Reason.REVOKED),
        (plain, ticket(nbf=NOW + DAY), Reason.NOT_YET_VALID),
        (plain, ticket(exp=NOW - DAY, nbf=None), Reason.EXPIRED),
        (plain, ticket(zones=("B",)), Reason.WRONG_ZONE),
        (plain, used, Reason.USED),
        (plain, passback, Reason.PASSBACK),
    ]


def test_rejected_decisions_never_write_an_admission(store):
    cases = _reject_cases(store)
    before = store.admission_count()
    assert before == 2
    seen = set()
    for validator, text, expected in cases:
        for consume in (True, False):
            decision = validator.decide(text, now=NOW + 1, consume=consume)
            assert decision.reason is expected, (expected, decision.detail)
            assert not decision.accepted and not decision.consumed
            assert decision.admission_seq is None
            assert store.admission_count() == before
        seen.add(expected)
    assert seen == set(Reason) - {Reason.OK}


def test_decide_ticket_on_a_parsed_ticket_gives_what_decide_gives(store):
    cases = [case for case in _reject_cases(store) if case[2] is not Reason.MALFORMED]
    for validator, text, expected in cases:
        parsed = validator.decide_ticket(parse_ticket(text), NOW + 1, consume=True)
        assert parsed.reason is expected is validator.decide(text, now=NOW + 1).reason
        assert not parsed.consumed
    validator = cases[0][0]
    fresh = parse_ticket(ticket(cti=b"parsed-1"))
    first = validator.decide_ticket(fresh, NOW)
    assert first.reason is Reason.OK and first.consumed and first.admission_seq is not None
    assert validator.decide_ticket(fresh, NOW).reason is Reason.USED
    assert validator.decide(ticket(cti=b"parsed-1"), now=NOW).reason is Reason.USED


def test_sign1_builder_untagged_is_still_a_ticket(validator):
    # The untagged form carries the same admission as the tagged one.
    payload = cbor2.dumps(claims_map(cti=CTI))
    tagged = gt1_text(sign1(payload))
    untagged = gt1_text(sign1(payload, tag=None))
    assert validator.decide(tagged, now=NOW).reason is Reason.OK
    assert validator.decide(untagged, now=NOW).reason is Reason.USED


# Known deviations (see the report in the test-suite hand-over) -----------------------------


@pytest.mark.parametrize(
    "nbf",
    [1767225600 * 10**9, 10**17, 2**63, 2**64 - 1],
    ids=["2026 in nanoseconds", "1e17", "2**63", "2**64-1"],
)
def test_far_future_nbf_is_not_yet_valid_and_does_not_raise(validator, nbf):
    text = ticket(nbf=nbf, exp=2**64 - 1)
    assert validator.decide(text, now=NOW).reason is Reason.NOT_YET_VALID
