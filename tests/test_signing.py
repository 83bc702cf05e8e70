"""Signed gate requests: unsigned, wrongly signed, replayed, stale and other-gate requests
are rejected; a gate's identity is made once at provisioning."""

from __future__ import annotations

import json
import os

import pytest
from helpers_cli import run_script

from keys.keyfile import KeyPair
from sync.signing import RequestRejected, sign_request, verify_request

NOW = 1_795_600_000.0


class Registry:
    def __init__(self, **keys: KeyPair) -> None:
        self.keys = {name: pair.public_key for name, pair in keys.items()}
        self.nonces: set[tuple[str, str]] = set()

    def public_key_of(self, gate_id: str) -> bytes | None:
        return self.keys.get(gate_id)

    def remember(self, gate_id: str, nonce: str, expires: int) -> bool:
        if (gate_id, nonce) in self.nonces:
            return False
        self.nonces.add((gate_id, nonce))
        return True

    def verify(self, headers, body=b"batch", path="/v1/gates/north-01/scans", **kwargs):
        kwargs.setdefault("now", NOW)
        return verify_request(
            headers, "POST", path, body, self.public_key_of, self.remember, **kwargs
        )


@pytest.fixture
def gates():
    north, south = KeyPair.generate(), KeyPair.generate()
    return north, south, Registry(**{"north-01": north, "south-02": south})


def signed(pair, gate_id="north-01", body=b"batch", path="/v1/gates/north-01/scans", now=NOW):
    return sign_request(pair.signing_key, gate_id, "POST", path, body, now=now)


def test_a_signed_request_is_accepted(gates):
    north, _, registry = gates
    assert registry.verify(signed(north), expected_gate="north-01") == "north-01"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda h: {}, "unsigned"),
        (lambda h: {k: v for k, v in h.items() if k != "X-Gate-Signature"}, "unsigned"),
        (lambda h: h | {"X-Gate-Signature": "00" * 64}, "bad signature"),
        (lambda h: h | {"X-Gate-Signature": "zz"}, "malformed"),
        (lambda h: h | {"X-Gate-Nonce": os.urandom(16).hex()}, "bad signature"),
        (lambda h: h | {"X-Gate-Timestamp": str(int(NOW) + 1)}, "bad signature"),
        (lambda h: h | {"X-Gate-Id": "ghost-9"}, "not enrolled"),
        (lambda h: h | {"X-Gate-Id": "../../etc"}, "malformed gate id"),
    ],
)
def test_tampered_or_unsigned_requests_are_rejected(gates, mangle, message):
    north, _, registry = gates
    with pytest.raises(RequestRejected, match=message):
        registry.verify(mangle(signed(north)))


def test_altered_body_or_path_is_rejected(gates):
    north, _, registry = gates
    headers = signed(north)
    with pytest.raises(RequestRejected, match="bad signature"):
        registry.verify(headers, body=b"batch with one record less")
    with pytest.raises(RequestRejected, match="bad signature"):
        registry.verify(headers, path="/v1/gates/north-01/health")


def test_replay_is_rejected(gates):
    north, _, registry = gates
    headers = signed(north)
    registry.verify(headers)
    with pytest.raises(RequestRejected, match="replayed"):
        registry.verify(headers)


def test_stale_and_future_requests_are_rejected(gates):
    north, _, registry = gates
    with pytest.raises(RequestRejected, match="stale"):
        registry.verify(signed(north, now=NOW - 301))
    with pytest.raises(RequestRejected, match="stale"):
        registry.verify(signed(north, now=NOW + 301))
    assert registry.verify(signed(north, now=NOW - 299))


def test_a_gate_cannot_speak_for_another(gates):
    north, south, registry = gates
    # south signs correctly as itself, but for north's URL
    headers = signed(south, gate_id="south-02")
    with pytest.raises(RequestRejected, match="for gate 'north-01'") as caught:
        registry.verify(headers, expected_gate="north-01")
    assert caught.value.status == 403
    # north's key claiming to be south
    with pytest.raises(RequestRejected, match="bad signature"):
        registry.verify(signed(north, gate_id="south-02"))


def test_provision_makes_the_identity_once(gate):
    first = gate.gatectl("provision", "--json")
    assert first.returncode == 0, first.stderr
    identity = json.loads(first.stdout)
    assert identity["created"] is True and identity["gate_id"] == "test-gate"
    key_file = gate.dir / "state" / "device.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = json.loads(gate.gatectl("provision", "--json").stdout)
    assert again["created"] is False and again["public_key"] == identity["public_key"]
    human = gate.gatectl("provision")
    assert "gate-office enrol test-gate " + identity["public_key"] in human.stdout


def test_provision_without_configuration_is_a_clear_error(tmp_path):
    result = run_script("gatectl", "--config", str(tmp_path / "none.toml"), "provision")
    assert result.returncode == 1 and result.stderr.startswith("gatectl: error:")
