"""Trust bundles and revocation lists: built by the office tools, refused or taken by a gate.

Each document is checked twice: through the library (:class:`~gate.trust.HeldBundle`,
:class:`~gate.revocations.RevocationList`) and through ``gatectl import`` on a gate whose
configuration and state live in ``tmp_path``. A refusal must say why, exit 1 with one
``gatectl: error:`` line, and leave the held document in force: ``gatectl status --json``
shows the same versions and tickets decide exactly as before.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import base45
import cbor2
import pytest
from click.testing import CliRunner

from gate.cli import cli as gatectl_cli
from gate.config import load_config
from gate.cose import ALG_EDDSA, COSE_SIGN1_TAG, HEADER_ALG, HEADER_KID, encode_sign1
from gate.errors import RollbackError, SignedDocumentError
from gate.revocations import RevocationList
from gate.signed import REVOCATION_LIST, sign_document
from gate.state import GateState
from gate.store import GateStore
from gate.ticket import Claims, mint_ticket
from gate.trust import HeldBundle, TrustStore
from keys.documents import (
    DocumentSpecError,
    build_trust_bundle,
    revocation_list,
    trust_bundle,
)
from keys.keyfile import KeyPair, save_key

GATECTL = Path(sys.executable).parent / "gatectl"
TIMEOUT = 30

ROOT = KeyPair.from_seed(bytes([0x10]) * 32)
OTHER_ROOT = KeyPair.from_seed(bytes([0x11]) * 32)
METRO = KeyPair.from_seed(bytes([0x20]) * 32)
BUS = KeyPair.from_seed(bytes([0x21]) * 32)
FERRY = KeyPair.from_seed(bytes([0x22]) * 32)
TRAM = KeyPair.from_seed(bytes([0x23]) * 32)

NOW = 1_780_000_000  # 2026-05-28 20:26:40 UTC
FAR = 1_900_000_000
SKEW = 30  # the gate's default clock_skew


def ticket(issuer: KeyPair, cti: str) -> str:
    """A single ticket with no nbf and no zones, so only key limits and revocations matter."""
    return mint_ticket(
        Claims(cti=bytes.fromhex(cti), exp=FAR, product="single"), issuer.signing_key
    )


M1 = ticket(METRO, "aa00000000000001")
M2 = ticket(METRO, "aa00000000000002")
B1 = ticket(BUS, "bb00000000000001")
F1 = ticket(FERRY, "cc00000000000001")
CTI_M1, CTI_M2 = bytes.fromhex("aa00000000000001"), bytes.fromhex("aa00000000000002")


def entry(name: str, pair: KeyPair) -> dict[str, Any]:
    return {"name": name, "public_key": pair.public_key}


def bundle(version: int, *names: str, root: KeyPair = ROOT) -> bytes:
    pairs = {"metro": METRO, "bus": BUS, "ferry": FERRY, "tram": TRAM}
    return trust_bundle([entry(n, pairs[n]) for n in names], root, version)


def body_of(data: bytes) -> dict[str, Any]:
    return cbor2.loads(cbor2.loads(data).value[2])


def reassemble(data: bytes, **parts: Any) -> bytes:
    """The COSE_Sign1 ``data`` with some of its four parts replaced (signature not renewed)."""
    names = ("protected", "unprotected", "payload", "signature")
    items = list(cbor2.loads(data).value)
    for name, value in parts.items():
        items[names.index(name)] = value
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, items))


def flip_signature_bit(data: bytes) -> bytes:
    signature = bytearray(cbor2.loads(data).value[3])
    signature[17] ^= 0x04
    return reassemble(data, signature=bytes(signature))


# A gate in tmp_path ----------------------------------------------------------------------


@dataclass
class Gate:
    dir: Path
    config: Path

    def gatectl(self, *args: object) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("GATE_CONFIG", "GATE_DEBUG")}
        return subprocess.run(
            [str(GATECTL), "--config", str(self.config), *map(str, args)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def import_(self, name: str, data: bytes) -> subprocess.CompletedProcess[str]:
        return self.gatectl("import", self.write(name, data))

    def status(self, *, own_process: bool = False) -> dict[str, Any]:
        """``gatectl status --json``; in-process through the same click command unless asked,
        since a gatectl process takes a good fraction of a second to start."""
        args = ["--config", str(self.config), "status", "--json"]
        if own_process:
            result = self.gatectl(*args[2:])
            assert result.returncode in (0, 5), result.stderr  # 5: problems listed
            return json.loads(result.stdout)
        outcome = CliRunner().invoke(gatectl_cli, args)
        assert outcome.exit_code in (0, 5), outcome.output
        return json.loads(outcome.stdout)

    def decide(self, text: str, *, zone: str | None = None, at: float = NOW) -> tuple[str, str]:
        """(reason, detail) of a dry run on this gate's state, in-process."""
        with GateState(load_config(self.config)) as state:
            decision = state.validator(zone).decide(text, at, consume=False)
        return decision.reason.value, decision.detail


def make_gate(directory: Path) -> Gate:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "gate.toml"
    config.write_text(
        "[gate]\n"
        'id = "doc-gate"\n'
        'zone = "A"\n'
        'state_dir = "state"\n'
        f'root_public_key = "{ROOT.public_key.hex()}"\n'
    )
    return Gate(directory, config)


@pytest.fixture
def empty_gate(tmp_path) -> Gate:
    return make_gate(tmp_path / "gate")


@pytest.fixture
def held_gate(tmp_path) -> Gate:
    """A gate holding trust bundle v2 (metro, bus) and revocation list v5 (ticket M1)."""
    gate = make_gate(tmp_path / "gate")
    with GateState(load_config(gate.config)) as state:
        state.import_document(gate.write("trust-v2.cose", bundle(2, "metro", "bus")))
        rl = revocation_list(ROOT, 5, tickets=[(METRO.kid, CTI_M1)])
        state.import_document(gate.write("revocations-v5.cose", rl))
    return gate


def assert_held_unchanged(gate: Gate) -> None:
    """The held documents of ``held_gate`` are still in force."""
    status = gate.status()
    trust, revocations = status["trust_bundle"], status["revocations"]
    assert trust["version"] == 2
    assert trust["error"] is None
    assert [k["name"] for k in trust["keys"]] == ["metro", "bus"]
    assert (revocations["version"], revocations["tickets"], revocations["keys"]) == (5, 1, 0)
    assert gate.decide(M1)[0] == "revoked"
    assert gate.decide(M2)[0] == "ok"
    assert gate.decide(B1)[0] == "ok"
    assert gate.decide(F1)[0] == "unknown_key"


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, *fragments: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "imported" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"gatectl: error: {path}: "
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0].removeprefix(prefix)
    for fragment in fragments:
        assert fragment in message, lines[0]
    return message


# Trust bundles: building and importing ---------------------------------------------------


def test_a_bundle_from_a_toml_spec_imports_and_its_keys_are_trusted(empty_gate, tmp_path):
    save_key(METRO, tmp_path / "metro.key")
    standard_b64 = base64.b64encode(FERRY.public_key).decode()
    urlsafe_b64 = base64.urlsafe_b64encode(TRAM.public_key).decode().rstrip("=")
    spec = tmp_path / "bundle.toml"
    spec.write_text(
        "version = 3\n"
        '[[key]]\nname = "metro"\nkey_file = "metro.key"\n'
        f'[[key]]\nname = "bus"\npublic_key = "{BUS.public_key.hex().upper()}"\n'
        f'[[key]]\nname = "ferry"\npublic_key = "{standard_b64}"\n'
        f'[[key]]\nname = "tram"\npublic_key = "{urlsafe_b64}"\n'
    )
    data = build_trust_bundle(spec, ROOT)
    path = empty_gate.write("trust-v3.cose", data)
    result = empty_gate.gatectl("import", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: trust bundle imported: version 3, 4 key(s)\n"
    keys = empty_gate.status(own_process=True)["trust_bundle"]["keys"]
    assert [(k["name"], k["kid"], k["public_key"]) for k in keys] == [
        (name, pair.kid.hex(), pair.public_key.hex())
        for name, pair in (("metro", METRO), ("bus", BUS), ("ferry", FERRY), ("tram", TRAM))
    ]
    assert all(k["not_before"] is k["not_after"] is k["zones"] is None for k in keys)
    for text in (M1, B1, F1, ticket(TRAM, "dd00000000000001")):
        assert empty_gate.decide(text)[0] == "ok"
    assert empty_gate.decide(ticket(OTHER_ROOT, "ee00000000000001"))[0] == "unknown_key"
    # --version overrides the spec's version.
    assert TrustStore.from_bundle(build_trust_bundle(spec, ROOT, 9), ROOT.public_key).version == 9


KEY_X = 'version = 1\n[[key]]\nname = "x"\npublic_key = "{hex}"\n'
BAD_SPECS = {
    "no-version": ('[[key]]\nname = "x"\npublic_key = "{hex}"\n', "version must be a positive"),
    "version-zero": (KEY_X.replace("version = 1", "version = 0"), "version must be"),
    "no-keys": ("version = 1\n", "at least one [[key]]"),
    "no-public-key": ('version = 1\n[[key]]\nname = "x"\n', "exactly one of public_key"),
    "both-key-sources": (KEY_X + 'key_file = "x.key"\n', "exactly one of public_key"),
    "no-name": ('version = 1\n[[key]]\npublic_key = "{hex}"\n', "name is required"),
    "short-public-key": (KEY_X.replace("{hex}", "abcd"), "raw Ed25519 public key"),
    "zones-not-a-list": (KEY_X + 'zones = "A"\n', "zones must be a list"),
    "empty-zones": (KEY_X + "zones = []\n", "zones must be a list"),
    "unknown-field": (KEY_X + "expires = 1\n", "unknown fields ['expires']"),
    "bad-not-after": (KEY_X + 'not_after = "soon"\n', "not_after: 'soon'"),
    "not-toml": ("version = \n", "bundle.toml"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_bundle_spec_is_refused_with_its_reason(tmp_path, case):
    spec, fragment = BAD_SPECS[case]
    path = tmp_path / "bundle.toml"
    path.write_text(spec.replace("{hex}", METRO.public_key.hex()))
    with pytest.raises(DocumentSpecError) as caught:
        build_trust_bundle(path, ROOT)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


ROOT_AND_OUT = ("--root", "root.key", "--out", "trust.cose")


def test_gate_keys_bundle_reports_a_missing_key_file_in_one_line(tmp_path):
    save_key(ROOT, tmp_path / "root.key")
    (tmp_path / "bundle.toml").write_text(
        'version = 1\n[[key]]\nname = "x"\nkey_file = "gone.key"\n'
    )
    result = subprocess.run(
        [GATECTL.parent / "gate-keys", "bundle", "bundle.toml", *ROOT_AND_OUT],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("gate-keys: error: ")
    assert "gone.key" in result.stderr
    assert not (tmp_path / "trust.cose").exists()


def test_bundle_key_limits_come_through_and_decide(empty_gate, tmp_path):
    spec = tmp_path / "limits.toml"
    spec.write_text(
        "version = 4\n"
        f'[[key]]\nname = "future"\npublic_key = "{METRO.public_key.hex()}"\n'
        'not_before = "2026-06-30"\n'
        # A TOML date (not a string) works as well.
        f'[[key]]\nname = "retired"\npublic_key = "{BUS.public_key.hex()}"\n'
        "not_after = 2026-05-01\n"
        f'[[key]]\nname = "zoned"\npublic_key = "{FERRY.public_key.hex()}"\n'
        'zones = ["B", "C"]\n'
        f'[[key]]\nname = "window"\npublic_key = "{TRAM.public_key.hex()}"\n'
        'not_before = 2026-05-01T00:00:00Z\nnot_after = "2026-06-30T00:00+00:00"\nzones = ["A"]\n'
    )
    result = empty_gate.import_("limits.cose", build_trust_bundle(spec, ROOT))
    assert result.returncode == 0, result.stderr
    may_1, june_30 = 1_777_593_600, 1_782_777_600
    keys = {k["name"]: k for k in empty_gate.status()["trust_bundle"]["keys"]}
    assert (keys["future"]["not_before"], keys["future"]["not_after"]) == (june_30, None)
    assert (keys["retired"]["not_before"], keys["retired"]["not_after"]) == (None, may_1)
    assert keys["zoned"]["zones"] == ["B", "C"]
    assert (keys["window"]["not_before"], keys["window"]["not_after"]) == (may_1, june_30)
    assert keys["window"]["zones"] == ["A"]

    future, retired = ticket(METRO, "a1a1a1a1a1a1a1a1"), ticket(BUS, "b1b1b1b1b1b1b1b1")
    zoned, window = ticket(FERRY, "c1c1c1c1c1c1c1c1"), ticket(TRAM, "d1d1d1d1d1d1d1d1")
    assert empty_gate.decide(future) == (
        "not_yet_valid",
        "issuer key future valid from 2026-06-30 00:00:00 UTC",
    )
    assert empty_gate.decide(retired) == (
        "expired",
        "issuer key retired expired 2026-05-01 00:00:00 UTC",
    )
    assert empty_gate.decide(zoned) == (
        "wrong_zone",
        "issuer key zoned is not trusted in zone A",
    )
    assert empty_gate.decide(window) == ("ok", "valid (dry run)")
    # The limits bound the key, not the ticket: inside them, the same tickets pass.
    assert empty_gate.decide(zoned, zone="B")[0] == "ok"
    assert empty_gate.decide(future, at=june_30 - SKEW)[0] == "ok"
    assert empty_gate.decide(future, at=june_30 - SKEW - 1)[0] == "not_yet_valid"
    assert empty_gate.decide(retired, at=may_1 + SKEW - 1)[0] == "ok"
    assert empty_gate.decide(retired, at=may_1 + SKEW)[0] == "expired"
    assert empty_gate.decide(window, at=june_30 + SKEW)[0] == "expired"
    assert empty_gate.decide(window, zone="B")[0] == "wrong_zone"
    # gatectl check on the gate's own state reports the same, with the key's detail.
    check = empty_gate.gatectl("check", "--json", "--at", NOW, "--", retired)
    assert check.returncode == 3
    decision = json.loads(check.stdout)
    assert (decision["reason"], decision["key"]["name"]) == ("expired", "retired")
    assert decision["detail"].startswith("issuer key retired expired")


# Refusals: the envelope ------------------------------------------------------------------


def _document(kind: str, version: int, root: KeyPair = ROOT) -> bytes:
    """The candidate that a refusal must keep out: it would add ferry / revoke M2."""
    if kind == "bundle":
        return bundle(version, "metro", "bus", "ferry", root=root)
    return revocation_list(root, version, tickets=[(METRO.kid, CTI_M1), (METRO.kid, CTI_M2)])


def _unsigned_plain_cbor(kind: str) -> bytes:
    return cbor2.dumps(body_of(_document(kind, 6)), canonical=True)


def _empty_signature(kind: str) -> bytes:
    return reassemble(_document(kind, 6), signature=b"")


def _other_root(kind: str) -> bytes:
    return _document(kind, 6, OTHER_ROOT)


def _flipped_signature_bit(kind: str) -> bytes:
    return flip_signature_bit(_document(kind, 6))


def _altered_payload(kind: str) -> bytes:
    # The signature of a version-6 document over a payload that a forger swapped in.
    genuine = _document(kind, 6)
    body = body_of(genuine)
    body["version"] = 7
    return reassemble(genuine, payload=cbor2.dumps(body, canonical=True))


def _wrong_alg(kind: str) -> bytes:
    payload = cbor2.dumps(body_of(_document(kind, 6)), canonical=True)
    return encode_sign1({HEADER_ALG: -7, HEADER_KID: ROOT.kid}, payload, ROOT.signing_key)


ENVELOPE_REFUSALS = {
    "unsigned-plain-cbor": (_unsigned_plain_cbor, ["unsigned"]),
    "unsigned-empty-signature": (_empty_signature, ["unsigned", "signature is empty"]),
    "signed-by-another-root": (
        _other_root,
        [f"signed by key {OTHER_ROOT.kid.hex()}", f"office root key {ROOT.kid.hex()}"],
    ),
    "flipped-signature-bit": (_flipped_signature_bit, ["does not verify"]),
    "altered-payload": (_altered_payload, ["does not verify"]),
    "wrong-alg": (_wrong_alg, ["alg -7 is not EdDSA"]),
}
KIND_NAMES = {"bundle": "trust bundle", "revocations": "revocation list"}


@pytest.mark.parametrize("kind", ["bundle", "revocations"])
@pytest.mark.parametrize("case", list(ENVELOPE_REFUSALS))
def test_envelope_refusals_say_why_in_the_library(kind, case):
    make, fragments = ENVELOPE_REFUSALS[case]
    with pytest.raises(SignedDocumentError) as caught:
        if kind == "bundle":
            TrustStore.from_bundle(make(kind), ROOT.public_key)
        else:
            RevocationList.from_document(make(kind), ROOT.public_key)
    message = str(caught.value)
    assert message.startswith(f"{KIND_NAMES[kind]} refused: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("kind", ["bundle", "revocations"])
@pytest.mark.parametrize("case", list(ENVELOPE_REFUSALS))
def test_envelope_refusals_through_gatectl_import_keep_the_held_documents(held_gate, kind, case):
    make, fragments = ENVELOPE_REFUSALS[case]
    path = held_gate.write(f"{case}.cose", make(kind))
    assert_refused(held_gate.gatectl("import", path), path, *fragments)
    assert_held_unchanged(held_gate)


def test_the_genuine_candidates_would_have_been_taken(held_gate):
    # The control for the refusals above: the same documents, correctly signed, do change
    # what the gate holds and how it decides.
    for name, kind in (("trust-v6.cose", "bundle"), ("revocations-v6.cose", "revocations")):
        result = held_gate.import_(name, _document(kind, 6))
        assert result.returncode == 0, result.stderr
    status = held_gate.status()
    assert status["trust_bundle"]["version"] == 6
    assert status["revocations"]["version"] == 6
    assert held_gate.decide(F1)[0] == "ok"
    assert held_gate.decide(M2)[0] == "revoked"


def test_a_document_of_the_other_kind_is_refused_by_the_library():
    with pytest.raises(SignedDocumentError, match="is a 'gate-revocation-list', not a trust"):
        TrustStore.from_bundle(_document("revocations", 6), ROOT.public_key)
    with pytest.raises(SignedDocumentError, match="is a 'gate-trust-bundle', not a revocation"):
        RevocationList.from_document(_document("bundle", 6), ROOT.public_key)


# Refusals: rollback ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_a_bundle_not_newer_than_the_held_one_is_refused(held_gate, tmp_path, version):
    data = bundle(version, "metro", "bus", "ferry")
    held = HeldBundle(tmp_path / "library", ROOT.public_key)
    held.install(bundle(2, "metro", "bus"))
    before = held.path.read_bytes()
    with pytest.raises(RollbackError, match=f"version {version} is not newer than the held"):
        held.install(data)
    assert held.path.read_bytes() == before
    assert held.store().version == 2
    assert not held.store().candidates(FERRY.kid)

    path = held_gate.write(f"trust-v{version}.cose", data)
    assert_refused(
        held_gate.gatectl("import", path),
        path,
        f"version {version} is not newer than the held version 2",
        "rollback",
    )
    assert_held_unchanged(held_gate)


def test_a_newer_bundle_replaces_the_held_one(held_gate):
    result = held_gate.import_("trust-v3.cose", bundle(3, "ferry"))
    assert result.returncode == 0, result.stderr
    assert "version 3, 1 key(s)" in result.stdout
    assert held_gate.status()["trust_bundle"]["version"] == 3
    assert held_gate.decide(F1)[0] == "ok"
    assert held_gate.decide(M2)[0] == "unknown_key"


def test_a_tampered_held_bundle_is_not_trusted(held_gate):
    # The held bundle is verified again whenever it is loaded, not only on import.
    held = held_gate.dir / "state" / HeldBundle.FILE_NAME
    held.write_bytes(flip_signature_bit(held.read_bytes()))
    status = held_gate.status()
    assert status["trust_bundle"]["version"] is None
    assert "does not verify" in status["trust_bundle"]["error"]
    assert held_gate.decide(M2)[0] == "unknown_key"


# Revocation lists --------------------------------------------------------------------------


def test_a_full_list_imports_and_replaces_the_held_one(held_gate):
    path = held_gate.write(
        "revocations-v6.cose", revocation_list(ROOT, 6, tickets=[(METRO.kid, CTI_M2)])
    )
    result = held_gate.gatectl("import", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{path}: revocation list imported: full list version 6, 1 added, 0 removed\n"
    )
    revocations = held_gate.status()["revocations"]
    assert (revocations["version"], revocations["tickets"], revocations["keys"]) == (6, 1, 0)
    assert held_gate.decide(M1)[0] == "ok"  # not on the new full list any more
    assert held_gate.decide(M2) == ("revoked", "ticket aa00000000000002 is revoked")


def test_a_ticket_entry_is_bound_to_its_issuer_kid(held_gate):
    # Revoking ticket id X of metro does not revoke ticket id X of bus.
    same_id = ticket(BUS, "aa00000000000001")
    assert held_gate.decide(same_id)[0] == "ok"


def test_deltas_add_and_remove_tickets_and_whole_keys(held_gate):
    delta = revocation_list(
        ROOT,
        6,
        base=5,
        tickets=[(METRO.kid, CTI_M2)],
        keys=[BUS.public_key],
        remove_tickets=[(METRO.kid, CTI_M1)],
    )
    result = held_gate.import_("delta-5-6.cose", delta)
    assert result.returncode == 0, result.stderr
    assert "delta 5->6, 2 added, 1 removed" in result.stdout
    revocations = held_gate.status()["revocations"]
    assert (revocations["version"], revocations["tickets"], revocations["keys"]) == (6, 1, 1)
    assert held_gate.decide(M1)[0] == "ok"
    assert held_gate.decide(M2)[0] == "revoked"
    # Every ticket of a revoked key is refused, whatever its id.
    assert held_gate.decide(B1) == ("revoked", "issuer key bus is revoked")
    assert held_gate.decide(ticket(BUS, "bb00000000000099")) == (
        "revoked",
        "issuer key bus is revoked",
    )
    check = held_gate.gatectl("check", "--json", "--at", NOW, "--", B1)
    assert check.returncode == 3
    assert json.loads(check.stdout)["reason"] == "revoked"

    result = held_gate.import_(
        "delta-6-7.cose", revocation_list(ROOT, 7, base=6, remove_keys=[BUS.public_key])
    )
    assert result.returncode == 0, result.stderr
    revocations = held_gate.status()["revocations"]
    assert (revocations["version"], revocations["tickets"], revocations["keys"]) == (7, 1, 0)
    assert held_gate.decide(B1)[0] == "ok"
    assert held_gate.decide(M2)[0] == "revoked"


@pytest.mark.parametrize(("base", "version"), [(4, 6), (6, 7), (3, 4)])
def test_a_delta_on_the_wrong_base_is_refused_naming_both_versions(held_gate, base, version):
    delta = revocation_list(ROOT, version, base=base, tickets=[(METRO.kid, CTI_M2)])
    path = held_gate.write(f"delta-{base}-{version}.cose", delta)
    assert_refused(
        held_gate.gatectl("import", path),
        path,
        f"revocation delta {base}->{version} refused",
        f"applies on version {base}",
        "holds version 5",
    )
    assert_held_unchanged(held_gate)


def test_a_delta_is_not_applied_twice(held_gate):
    delta = revocation_list(ROOT, 6, base=5, tickets=[(METRO.kid, CTI_M2)])
    assert held_gate.import_("delta.cose", delta).returncode == 0
    again = held_gate.gatectl("import", held_gate.dir / "delta.cose")
    assert_refused(again, held_gate.dir / "delta.cose", "holds version 6")
    assert held_gate.status()["revocations"]["version"] == 6


def test_a_delta_on_a_gate_without_a_list_is_refused(empty_gate, tmp_path):
    delta = revocation_list(ROOT, 2, base=1, tickets=[(METRO.kid, CTI_M1)])
    with GateStore(tmp_path / "library.db") as store:
        with pytest.raises(RollbackError, match="holds no list"):
            RevocationList.from_document(delta, ROOT.public_key).apply_to(store)
        assert store.revocation_state().version is None
    path = empty_gate.write("delta.cose", delta)
    assert_refused(empty_gate.gatectl("import", path), path, "delta 1->2", "holds no list")
    assert empty_gate.status()["revocations"]["version"] is None


@pytest.mark.parametrize("version", [4, 5])
def test_a_full_list_not_newer_than_the_held_one_is_refused(held_gate, tmp_path, version):
    data = revocation_list(ROOT, version, tickets=[(METRO.kid, CTI_M2)])
    with GateStore(tmp_path / "library.db") as store:
        RevocationList.from_document(
            revocation_list(ROOT, 5, tickets=[(METRO.kid, CTI_M1)]), ROOT.public_key
        ).apply_to(store)
        with pytest.raises(RollbackError, match=f"version {version} is not newer"):
            RevocationList.from_document(data, ROOT.public_key).apply_to(store)
        assert store.revocation_state().version == 5
        assert store.revoked_by(METRO.kid, CTI_M1, METRO.public_key) == "ticket"
        assert store.revoked_by(METRO.kid, CTI_M2, METRO.public_key) is None
    path = held_gate.write(f"revocations-v{version}.cose", data)
    assert_refused(
        held_gate.gatectl("import", path),
        path,
        f"version {version} is not newer than the held version 5",
    )
    assert_held_unchanged(held_gate)


def _signed_revocations(**fields: Any) -> bytes:
    body = {"type": REVOCATION_LIST, "version": 6, "issued_at": NOW, "tickets": [], "keys": []}
    body.update(fields)
    return sign_document(body, ROOT.signing_key)


BAD_ENTRIES = {
    "kid-7-bytes": ({"tickets": [[b"k" * 7, CTI_M2]]}, "an entry of tickets"),
    "kid-9-bytes": ({"tickets": [[b"k" * 9, CTI_M2]]}, "an entry of tickets"),
    "cti-7-bytes": ({"tickets": [[METRO.kid, b"c" * 7]]}, "an entry of tickets"),
    "cti-17-bytes": ({"tickets": [[METRO.kid, b"c" * 17]]}, "an entry of tickets"),
    "ticket-not-a-pair": ({"tickets": [[METRO.kid, CTI_M2, CTI_M1]]}, "an entry of tickets"),
    "ticket-as-text": ({"tickets": [[METRO.kid.hex(), CTI_M2.hex()]]}, "an entry of tickets"),
    "key-31-bytes": ({"keys": [BUS.public_key[:31]]}, "an entry of keys"),
    "key-33-bytes": ({"keys": [BUS.public_key + b"\0"]}, "an entry of keys"),
    "tickets-not-a-list": ({"tickets": CTI_M2}, "tickets is not a list"),
    "remove-key-31-bytes": ({"base": 5, "remove_keys": [b"k" * 31]}, "an entry of remove_keys"),
    "remove-ticket-bad-kid": (
        {"base": 5, "remove_tickets": [[b"k", CTI_M1]]},
        "an entry of remove_tickets",
    ),
    "full-list-removing": ({"remove_tickets": [[METRO.kid, CTI_M1]]}, "cannot remove"),
    "base-not-older": ({"base": 6}, "base must be older"),
    "base-not-a-number": ({"base": "5"}, "base must be a version number"),
    "version-zero": ({"version": 0}, "version must be a whole number"),
    "version-text": ({"version": "6"}, "version must be a whole number"),
}


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_a_revocation_list_with_bad_entries_is_refused_by_the_library(case):
    fields, fragment = BAD_ENTRIES[case]
    with pytest.raises(SignedDocumentError) as caught:
        RevocationList.from_document(_signed_revocations(**fields), ROOT.public_key)
    assert str(caught.value).startswith("revocation list refused: ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("case", ["kid-7-bytes", "cti-17-bytes", "key-31-bytes"])
def test_a_revocation_list_with_bad_entry_sizes_is_refused_by_gatectl(held_gate, case):
    fields, fragment = BAD_ENTRIES[case]
    # The bad entry comes after a good one, so a partial import would show.
    fields = {**fields, "tickets": [[METRO.kid, CTI_M2], *fields.get("tickets", [])]}
    path = held_gate.write(f"{case}.cose", _signed_revocations(**fields))
    assert_refused(held_gate.gatectl("import", path), path, "revocation list refused", fragment)
    assert_held_unchanged(held_gate)


# Garbage -------------------------------------------------------------------------------


def _bundle_signed_as_a_revocation_list() -> bytes:
    body = body_of(bundle(6, "metro", "bus", "ferry"))
    body["type"] = REVOCATION_LIST
    return sign_document(body, ROOT.signing_key)


GARBAGE = {
    "random-bytes": (random.Random(20260528).randbytes(400), "not a signed"),
    "empty-file": (b"", "not a signed"),
    "huge-byte-string-length": (b"\x5b" + (1 << 62).to_bytes(8, "big") + b"xy", "not a signed"),
    "huge-array-length": (b"\xd2\x9b" + (1 << 62).to_bytes(8, "big"), "not a signed"),
    "huge-map-length": (b"\xbb" + (1 << 62).to_bytes(8, "big"), "not a signed"),
    "text-file": (b'version = 7\n[[key]]\nname = "metro"\n', "not a signed"),
    "utf8-bom-json": ('\ufeff{"type": "gate-revocation-list"}'.encode(), "not a signed"),
    "bundle-signed-as-revocation-list": (
        _bundle_signed_as_a_revocation_list(),
        "revocation list refused: an entry of keys is not a 32-byte public key",
    ),
    "ticket-instead-of-a-document": (
        base45.b45decode(M2[4:]),
        "unknown document type",
    ),
    "unknown-document-type": (
        encode_sign1(
            {HEADER_ALG: ALG_EDDSA, HEADER_KID: ROOT.kid},
            cbor2.dumps({"type": "gate-firmware", "version": 9}),
            ROOT.signing_key,
        ),
        "unknown document type 'gate-firmware'",
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_files_are_refused_without_a_traceback(held_gate, case):
    data, fragment = GARBAGE[case]
    path = held_gate.write(f"{case}.bin", data)
    started = time.monotonic()
    result = held_gate.gatectl("import", path)
    assert time.monotonic() - started < 10
    assert_refused(result, path, fragment)
    assert_held_unchanged(held_gate)


def test_unreadable_paths_are_refused_without_a_traceback(held_gate):
    missing, directory = held_gate.dir / "missing.cose", held_gate.dir
    result = held_gate.gatectl("import", missing, directory)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"gatectl: error: {missing}: ")
    assert lines[1].startswith(f"gatectl: error: {directory}: ")
    assert_held_unchanged(held_gate)


@pytest.mark.parametrize(
    "fields",
    [{"version": 1 << 63}, {"issued_at": 1 << 64}],
    ids=["version-2**63", "issued_at-2**64"],
)
def test_out_of_range_numbers_in_a_signed_list_are_refused_cleanly(held_gate, fields):
    path = held_gate.write("huge.cose", _signed_revocations(**fields))
    result = held_gate.gatectl("import", path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"gatectl: error: {path}: ")
    assert_held_unchanged(held_gate)


def test_import_goes_on_after_a_refusal_and_reports_each_file(held_gate):
    good_bundle = held_gate.write("trust-v3.cose", bundle(3, "metro", "bus", "ferry"))
    garbage = held_gate.write("garbage.bin", b"\x00" * 64)
    good_list = held_gate.write(
        "revocations-v6.cose", revocation_list(ROOT, 6, base=5, tickets=[(METRO.kid, CTI_M2)])
    )
    result = held_gate.gatectl("import", good_bundle, garbage, good_list)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{good_bundle}: trust bundle imported: version 3, 3 key(s)",
        f"{good_list}: revocation list imported: delta 5->6, 1 added, 0 removed",
    ]
    assert result.stderr.splitlines()[0].startswith(f"gatectl: error: {garbage}: ")
    status = held_gate.status()
    assert (status["trust_bundle"]["version"], status["revocations"]["version"]) == (3, 6)
    assert held_gate.decide(F1)[0] == "ok"
    assert held_gate.decide(M2)[0] == "revoked"
