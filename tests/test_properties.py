"""Property tests: whatever is presented, Validator.decide answers (never raises), quickly,
and never accepts anything but the valid ticket itself.

Two validators see every input: one over a real GateStore (dry runs, so the valid ticket
stays valid) and one without usage records.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import base45
import pytest
from helpers_core import ISSUER, NOW, make_validator, signed_text, trusted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.store import GateStore
from gate.ticket import Claims, mint_ticket
from gate.validator import Decision, Reason

TIME_BOUND = 0.050  # seconds per decision
SKEW = 30  # the default clock_skew of make_validator
BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

VALID_TEXT = mint_ticket(
    Claims(
        cti=bytes.fromhex("0f0e0d0c0b0a09080706050403020100"),
        exp=NOW + 86_400,
        nbf=NOW - 86_400,
        product="single",
        zones=("A",),
        iss="props",
    ),
    ISSUER,
)
VALID_BYTES = base45.b45decode(VALID_TEXT[4:])
# The spec lets verifiers accept the untagged 4-element array too: dropping the leading
# tag-18 byte (0xd2) leaves a ticket that is still validly signed.
ACCEPTABLE_BYTES = {VALID_BYTES, VALID_BYTES[1:]}
assert VALID_BYTES[0] == 0xD2

# deadline=None: the time bound is measured per decision in check(), not per example.
PROPERTY_SETTINGS = settings(
    max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
MUTATION_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=1500)


@pytest.fixture(scope="module")
def validators():
    # tempfile rather than tmp_path: hypothesis refuses function-scoped fixtures.
    with tempfile.TemporaryDirectory(prefix="gate-props-") as state_dir:
        store = GateStore.in_state_dir(Path(state_dir))
        try:
            stateful = make_validator(store, [trusted(ISSUER)])
            stateless = make_validator(None, [trusted(ISSUER)])
            # Warm up (SQLite pages, lazy imports) so the time bound measures decisions only.
            for validator in (stateful, stateless):
                assert validator.decide(VALID_TEXT, now=NOW, consume=False).reason is Reason.OK
            yield stateful, stateless
            assert store.admission_count() == 0  # dry runs only: nothing was ever recorded
        finally:
            store.close()


def _decoded(text: object) -> bytes | None:
    """The bytes the gate's base45 decoder finds in a GT1 text, or None."""
    if not isinstance(text, str) or not text.startswith("GT1:"):
        return None
    try:
        return base45.b45decode(text[4:])
    except Exception:
        return None


def _timed(validator, text) -> tuple[Decision, float]:
    start = time.perf_counter()
    decision = validator.decide(text, now=NOW, consume=False)
    return decision, time.perf_counter() - start


def check(validators, text, *, forgeries: bool = True) -> list[Decision]:
    """Decide with both validators and check the properties; returns the decisions.

    With ``forgeries`` (the default) the input is derived from the valid ticket without the
    issuer key, so only the valid ticket's own bytes may be accepted.
    """
    decisions = []
    for validator in validators:
        decision, elapsed = _timed(validator, text)
        if elapsed > TIME_BOUND:  # one retry, so a scheduler hiccup is not a failure
            decision, elapsed = _timed(validator, text)
        assert elapsed <= TIME_BOUND, f"decision took {elapsed * 1000:.1f} ms for {text!r}"
        assert isinstance(decision, Decision)
        assert decision.reason in set(Reason)
        assert decision.decision in ("accept", "reject")
        assert decision.to_json()["reason"] == decision.reason.value
        if forgeries and decision.accepted:
            assert _decoded(text) in ACCEPTABLE_BYTES, f"accepted a mutated ticket: {text!r}"
        decisions.append(decision)
    return decisions


def test_the_valid_ticket_is_accepted(validators):
    # Guards the properties below against passing vacuously.
    assert all(d.accepted for d in check(validators, VALID_TEXT))
    untagged = "GT1:" + base45.b45encode(VALID_BYTES[1:]).decode()
    assert all(d.accepted for d in check(validators, untagged))


@PROPERTY_SETTINGS
@given(text=st.text(max_size=1200))
def test_arbitrary_text(validators, text):
    check(validators, text)


@PROPERTY_SETTINGS
@given(text=st.text(alphabet=BASE45_ALPHABET, max_size=1000))
def test_arbitrary_base45_after_the_prefix(validators, text):
    check(validators, "GT1:" + text)


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=700))
def test_arbitrary_bytes_as_gt1(validators, data):
    check(validators, "GT1:" + base45.b45encode(data).decode("ascii"))


@st.composite
def byte_mutations(draw) -> bytes:
    data = bytearray(VALID_BYTES)
    position = draw(st.integers(0, len(data) - 1))
    operation = draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
    if operation == "flip":
        data[position] ^= 1 << draw(st.integers(0, 7))
    elif operation == "insert":
        data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
    elif operation == "delete":
        del data[position]
    else:
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


@MUTATION_SETTINGS
@given(data=byte_mutations())
def test_byte_mutations_of_a_valid_ticket(validators, data):
    decisions = check(validators, "GT1:" + base45.b45encode(data).decode("ascii"))
    if data in ACCEPTABLE_BYTES:  # e.g. a byte replaced by itself
        assert all(d.accepted for d in decisions)


def test_every_single_bit_flip_is_rejected(validators):
    # Exhaustive over positions and bits: no change to a ticket byte is accepted.
    for position in range(len(VALID_BYTES)):
        for bit in range(8):
            data = bytearray(VALID_BYTES)
            data[position] ^= 1 << bit
            for decision in check(validators, "GT1:" + base45.b45encode(bytes(data)).decode()):
                assert not decision.accepted, (position, bit)


@st.composite
def text_mutations(draw) -> str:
    text = list(VALID_TEXT)
    alphabet = st.one_of(
        st.sampled_from(BASE45_ALPHABET + "abcxyz\n\r\t\x00#_"), st.characters(codec="utf-8")
    )
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
        position = draw(st.integers(0, len(text) - 1))
        if operation == "insert":
            text.insert(draw(st.integers(0, len(text))), draw(alphabet))
        elif operation == "delete" and len(text) > 1:
            del text[position]
        elif operation == "replace":
            text[position] = draw(alphabet)
        else:
            other = draw(st.integers(0, len(text) - 1))
            text[position], text[other] = text[other], text[position]
    return "".join(text)


@MUTATION_SETTINGS
@given(text=text_mutations())
def test_character_mutations_of_a_valid_ticket(validators, text):
    decisions = check(validators, text)
    if text == VALID_TEXT:
        assert all(d.accepted for d in decisions)


@PROPERTY_SETTINGS
@given(text=st.text(alphabet=BASE45_ALPHABET + "\n", min_size=1, max_size=6))
def test_suffixes_after_a_valid_ticket(validators, text):
    check(validators, VALID_TEXT + text)


# Validly signed tickets with arbitrary claims: only the claims decide, and nothing raises.

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-10, 10) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=8,
)
# Claim values of the right type, near the boundaries that matter at NOW.
around_now = st.integers(NOW - 100, NOW + 100)
well_typed = {
    1: st.text(max_size=20),
    4: around_now | st.integers(0, 2**64 - 1),
    # nbf stays below 1e16: larger ones hit the known overflow in the not_yet_valid message
    # (test_reasons.py::test_far_future_nbf_is_not_yet_valid_and_does_not_raise).
    5: around_now | st.integers(0, 10**16),
    6: st.integers(0, 2**64 - 1),
    7: st.binary(min_size=8, max_size=16),
    -1: st.sampled_from(["single", "multi", "pass"]),
    -2: st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3),
    -3: st.integers(1, 5),
    -4: st.binary(min_size=32, max_size=32),
    -5: st.text(max_size=10),
}
OPTIONAL = {1, 5, 6, -2, -3, -4, -5}
NBF = 5


@st.composite
def signed_claims(draw) -> str:
    """A validly signed ticket whose claims are mostly well typed, some of them not."""
    claims = {}
    for key, typed in well_typed.items():
        choice = draw(st.sampled_from(["typed"] * 8 + ["any", "absent"]))
        if choice == "typed" or (
            choice == "absent" and key not in OPTIONAL and draw(st.booleans())
        ):
            claims[key] = draw(typed)
        elif choice == "any":
            value = draw(cbor_values)
            if key == NBF and isinstance(value, int) and value >= 10**16:
                value = 10**16
            claims[key] = value
    unknown = st.integers(8, 40) | st.integers(-40, -6) | st.text(max_size=3)
    claims.update(draw(st.dictionaries(unknown, cbor_values, max_size=3)))
    return signed_text(claims)


@PROPERTY_SETTINGS
@given(text=signed_claims())
def test_validly_signed_arbitrary_claims(validators, text):
    for decision in check(validators, text, forgeries=False):
        if decision.accepted:
            claims = decision.claims
            assert claims.product in ("single", "multi", "pass")
            assert 8 <= len(claims.cti) <= 16
            assert claims.exp + SKEW > NOW
            assert claims.nbf is None or claims.nbf - SKEW <= NOW
            assert claims.zones is None or "A" in claims.zones
            assert claims.product != "multi" or claims.uses >= 1
