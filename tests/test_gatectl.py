"""gatectl check and status: the contract other tools rely on."""

from __future__ import annotations

import json
import time

import pytest
from helpers_cli import run_script

from gate.ticket import Claims, mint_ticket
from keys.keyfile import KeyPair

SPEC_PUBLIC_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
SPEC_TEXT = (
    "GT1:RRQT 9P60GO0HD4WD6ZHKYNK8CKU29280F$DKWEL2E6VCP$DFN0-ODJ+T1T0AEDKHNWY0AEDKHNR-0H00PE4XS8-"
    ".C4CHCQLK+PS9UD44V$D:VD3DDWLG.B8AG8VC1X CMVC:VD27B5MVDGA.ECS$IC9M9YF3YDSX2$W4QE7+XJ:$K4VT37"
    "JFKNH+S/H8ON0+WUX%6ORQL5E3.QA6GY71X8UOKSHONT:8LAV.6K336"
)
TRUST = ("--trust", SPEC_PUBLIC_KEY)


def check_json(*args: str):
    result = run_script("gatectl", "check", "--json", *args)
    return result, json.loads(result.stdout) if result.stdout else None


def test_acceptance_command_accepts_the_spec_vector():
    result, out = check_json("--zone", "A", "--at", "1780000000", *TRUST, "--", SPEC_TEXT)
    assert result.returncode == 0, result.stderr
    assert out["decision"] == "accept"
    assert out["reason"] == "ok"
    assert out["kid"] == "21fe31dfa154a261"
    assert out["key"]["public_key"] == SPEC_PUBLIC_KEY
    assert out["claims"]["cti"] == "00112233445566778899aabbccddeeff"
    assert out["claims"]["zones"] == ["A", "B"]
    assert out["consumed"] is False


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--zone", "C", "--at", "1780000000"), "wrong_zone"),
        (("--zone", "A", "--at", "1798761630"), "expired"),
        (("--zone", "A", "--at", "1798761629"), "ok"),
        (("--zone", "A", "--at", "1767225000"), "not_yet_valid"),
        (("--at", "1780000000", "--revoked", "00112233445566778899aabbccddeeff"), "revoked"),
        (
            (
                "--at",
                "1780000000",
                "--revoked",
                "21fe31dfa154a261:00112233445566778899aabbccddeeff",
            ),
            "revoked",
        ),
        (
            (
                "--at",
                "1780000000",
                "--revoked",
                "0000000000000000:00112233445566778899aabbccddeeff",
            ),
            "ok",
        ),
    ],
)
def test_rejections_exit_3_with_the_spec_reason(args, reason):
    result, out = check_json(*args, *TRUST, "--", SPEC_TEXT)
    assert out["reason"] == reason
    assert out["decision"] == ("accept" if reason == "ok" else "reject")
    assert result.returncode == (0 if reason == "ok" else 3)


def test_unknown_key_and_bad_signature():
    other = KeyPair.generate().public_key.hex()
    _, out = check_json("--trust", other, "--", SPEC_TEXT)
    assert out["reason"] == "unknown_key"
    forged = SPEC_TEXT[:-3] + ("337" if SPEC_TEXT[-3:] != "337" else "338")
    _, out = check_json(*TRUST, "--at", "1780000000", "--", forged)
    assert out["reason"] in ("bad_signature", "malformed")


@pytest.mark.parametrize(
    "text",
    ["", "hello", "GT1:", "GT1:%%%%", "gt1:" + SPEC_TEXT[4:], "x" * 5000, "GT1:" + "A" * 996],
)
def test_garbage_is_a_malformed_reject_not_a_crash(text):
    result, out = check_json(*TRUST, "--", text)
    assert result.returncode == 3, result.stderr
    assert out["decision"] == "reject"
    assert out["reason"] == "malformed"
    assert "Traceback" not in result.stderr


def test_text_from_stdin_keeps_inner_spaces_and_trims_only_the_terminator():
    assert " " in SPEC_TEXT
    for terminator in ("\n", "\r\n", "\r"):
        result = run_script(
            "gatectl",
            "check",
            "--json",
            "--at",
            "1780000000",
            *TRUST,
            "-",
            input=SPEC_TEXT + terminator,
        )
        assert json.loads(result.stdout)["reason"] == "ok", (terminator, result.stdout)
    # A space that is not part of the ticket is not silently trimmed away.
    result = run_script("gatectl", "check", "--json", *TRUST, "-", input=SPEC_TEXT + " \n")
    assert json.loads(result.stdout)["reason"] == "malformed"


def test_human_output_names_reason_claims_and_key():
    result = run_script("gatectl", "check", "--at", "1780000000", *TRUST, "--", SPEC_TEXT)
    assert result.returncode == 0
    for expected in (
        "decision  accept",
        "reason    ok",
        "kid       21fe31dfa154a261",
        "metro-demo",
    ):
        assert expected in result.stdout


def test_bad_trust_key_is_a_usage_error():
    result = run_script("gatectl", "check", "--trust", "nothex", "--", SPEC_TEXT)
    assert result.returncode == 2
    assert "--trust" in result.stderr


def test_check_against_the_gate_is_a_dry_run(gate):
    claims = Claims(cti=b"dry-run-0001", exp=int(time.time()) + 3600, product="single")
    text = mint_ticket(claims, gate.issuer.signing_key)
    for _ in range(3):
        result = gate.gatectl("check", "--json", "--", text)
        assert json.loads(result.stdout)["reason"] == "ok", result.stdout
    # consuming decision through gated, then check reports it as used
    result = run_script("gated", "--stdin", "--config", str(gate.config), input=text + "\n")
    assert json.loads(result.stdout)["reason"] == "ok"
    result = gate.gatectl("check", "--json", "--", text)
    assert json.loads(result.stdout)["reason"] == "used"
    assert result.returncode == 3


def test_status_reports_versions_counts_and_paths(gate):
    result = gate.gatectl("status", "--json")
    assert result.returncode == 5, result.stderr  # problems: gated never ran, no list
    status = json.loads(result.stdout)
    assert "no revocation list imported yet" in status["problems"]
    assert status["trust_bundle"]["version"] == 1
    assert status["trust_bundle"]["keys"][0]["name"] == "metro"
    assert status["trust_bundle"]["keys"][0]["kid"] == gate.issuer.kid.hex()
    assert status["trust_bundle"]["age_seconds"] >= 0
    assert status["revocations"]["version"] is None
    assert status["revocations"]["tickets"] == 0
    assert status["paths"]["database"].endswith("gate.db")
    assert status["admissions"] == 0
    human = gate.gatectl("status")
    assert "trust bundle  version 1" in human.stdout
    assert gate.issuer.kid.hex() in human.stdout


def test_status_without_configuration_is_one_clear_line(tmp_path):
    result = run_script("gatectl", "--config", str(tmp_path / "none.toml"), "status")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("gatectl: error:")
