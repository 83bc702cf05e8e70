"""Issuer and root key files through the real ``gate-keys`` console script.

Every test runs the installed script as a subprocess, so what is checked is what an operator
sees: the file on disk, its mode, the printed kid, and one ``gate-keys: error:`` line (never a
traceback) when something is wrong. Sealing uses Argon2id, so sealed keys are made once per
module.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_core import SPEC_KID, SPEC_PUBLIC_KEY, SPEC_SEED

from gate.errors import KeyFileError
from gate.ticket import parse_ticket
from keys.keyfile import KeyPair, load_key, read_key_document

GATE_KEYS = Path(sys.executable).parent / "gate-keys"
PASSPHRASE = "correct horse battery staple"
TIMEOUT = 30


def environment(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would change gate-keys' behaviour."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GATE_KEY_PASSPHRASE", "GATE_DEBUG", "GATE_CONFIG")
    }
    env.update(extra)
    return env


def gate_keys(
    *args: object, cwd: Path, env: dict[str, str] | None = None, **options
) -> subprocess.CompletedProcess[str]:
    options.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [str(GATE_KEYS), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **options,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 1 and exactly one ``gate-keys: error:`` line on stderr holding every fragment."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gate-keys: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def kid_hex(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:8].hex()


def issue_single(key: Path, out: Path, cwd: Path, env: dict[str, str] | None = None, *extra):
    return gate_keys(
        "issue",
        "--key",
        key,
        "--out",
        out,
        "--product",
        "single",
        "--exp",
        "2030-01-01",
        *extra,
        cwd=cwd,
        env=env,
    )


# gate-keys new -------------------------------------------------------------------------------


def test_new_writes_a_0600_key_file_and_prints_its_kid(tmp_path):
    # A permissive umask must not widen the mode of a private key.
    result = gate_keys("new", "issuer.key", cwd=tmp_path, preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "issuer.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    public_key = bytes.fromhex(document["public_key"])
    assert len(public_key) == 32
    assert result.stdout == kid_hex(public_key) + "\n"
    assert document["kid"] == kid_hex(public_key)
    assert document["format"] == "gate-key-v1"
    # The seed in the file is the private half of the public key it lists.
    pair = KeyPair.from_seed(bytes.fromhex(document["seed"]))
    assert pair.public_key == public_key
    assert load_key(path).public_key == public_key
    assert document["public_key"] in result.stderr


def test_new_json_reports_the_same_kid_and_public_key(tmp_path):
    result = gate_keys("new", "k.key", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    document = read_key_document(tmp_path / "k.key")
    assert info == {
        "kid": document["kid"],
        "public_key": document["public_key"],
        "file": "k.key",
        "sealed": False,
    }
    assert info["kid"] == kid_hex(bytes.fromhex(info["public_key"]))


def test_new_makes_a_fresh_key_each_time(tmp_path):
    first = gate_keys("new", "a.key", cwd=tmp_path)
    second = gate_keys("new", "b.key", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert first.stdout != second.stdout
    seeds = {read_key_document(tmp_path / name)["seed"] for name in ("a.key", "b.key")}
    assert len(seeds) == 2


@pytest.mark.parametrize("seed_option", [[], ["--seed", SPEC_SEED.hex()]])
def test_new_refuses_to_overwrite_an_existing_file(tmp_path, seed_option):
    path = tmp_path / "issuer.key"
    assert gate_keys("new", path, cwd=tmp_path).returncode == 0
    before = path.read_bytes()
    result = gate_keys("new", path, *seed_option, cwd=tmp_path)
    assert_one_error_line(result, str(path), "already exists", "refusing to overwrite")
    assert result.stdout == ""
    assert path.read_bytes() == before


def test_new_refuses_to_replace_a_file_that_is_not_a_key(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("keep me\n")
    assert_one_error_line(gate_keys("new", path, cwd=tmp_path), "already exists")
    assert path.read_text() == "keep me\n"


def test_new_seed_imports_the_rfc8032_test_key(tmp_path):
    result = gate_keys("new", "spec.key", "--seed", SPEC_SEED.hex(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "21fe31dfa154a261\n"
    assert result.stdout.strip() == SPEC_KID.hex()
    document = read_key_document(tmp_path / "spec.key")
    assert document["public_key"] == SPEC_PUBLIC_KEY.hex()
    assert document["seed"] == SPEC_SEED.hex()
    pair = load_key(tmp_path / "spec.key")
    assert bytes(pair.signing_key) == SPEC_SEED
    assert pair.kid == SPEC_KID
    shown = gate_keys("show", "spec.key", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout) == {
        "kid": SPEC_KID.hex(),
        "public_key": SPEC_PUBLIC_KEY.hex(),
        "sealed": False,
    }


@pytest.mark.parametrize(
    "seed",
    [
        "zz" * 32,  # not hex
        "00" * 31,  # one byte short
        "00" * 33,  # one byte long
        SPEC_SEED.hex()[:-1],  # odd number of digits
    ],
)
def test_new_rejects_a_bad_seed_without_writing_a_file(tmp_path, seed):
    result = gate_keys("new", "bad.key", "--seed", seed, cwd=tmp_path)
    assert_one_error_line(result, "seed")
    assert not (tmp_path / "bad.key").exists()


# Passphrase-protected keys ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_keys(tmp_path_factory) -> dict[str, Path]:
    """The RFC 8032 test key sealed twice: passphrase from the environment and from a file."""
    directory = tmp_path_factory.mktemp("sealed")
    (directory / "passphrase.txt").write_text(PASSPHRASE + "\n")
    by_env = gate_keys(
        "new",
        "env.key",
        "--seed",
        SPEC_SEED.hex(),
        cwd=directory,
        env=environment(GATE_KEY_PASSPHRASE=PASSPHRASE),
    )
    by_file = gate_keys(
        "new",
        "file.key",
        "--seed",
        SPEC_SEED.hex(),
        "--passphrase-file",
        "passphrase.txt",
        "--json",
        cwd=directory,
    )
    assert by_env.returncode == 0, by_env.stderr
    assert by_file.returncode == 0, by_file.stderr
    assert by_env.stdout == SPEC_KID.hex() + "\n"
    assert json.loads(by_file.stdout)["sealed"] is True
    return {"env": directory / "env.key", "file": directory / "file.key"}


@pytest.mark.parametrize("how", ["env", "file"])
def test_sealed_key_file_does_not_hold_the_seed_in_clear(sealed_keys, how):
    path = sealed_keys[how]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    text = raw.decode()
    for form in (SPEC_SEED.hex(), SPEC_SEED.hex().upper()):
        assert form not in text
    assert SPEC_SEED not in raw
    assert PASSPHRASE not in text
    document = json.loads(text)
    assert "seed" not in document
    assert document["sealed"]["kdf"] == "argon2id13"
    # The public parts stay readable without the passphrase.
    assert document["public_key"] == SPEC_PUBLIC_KEY.hex()
    assert document["kid"] == SPEC_KID.hex()


def test_the_two_sealings_use_different_salts(sealed_keys):
    salts = {read_key_document(p)["sealed"]["salt"] for p in sealed_keys.values()}
    boxes = {read_key_document(p)["sealed"]["box"] for p in sealed_keys.values()}
    assert len(salts) == 2
    assert len(boxes) == 2


def test_sealed_key_loads_with_the_right_passphrase(sealed_keys):
    pair = load_key(sealed_keys["file"], PASSPHRASE)
    assert bytes(pair.signing_key) == SPEC_SEED


def test_sealed_key_refuses_a_wrong_passphrase_in_the_library(sealed_keys):
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key(sealed_keys["env"], PASSPHRASE + "!")
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        load_key(sealed_keys["env"])


def test_issue_with_a_sealed_key_and_the_passphrase_in_the_environment(sealed_keys, tmp_path):
    out = tmp_path / "out"
    env = environment(GATE_KEY_PASSPHRASE=PASSPHRASE)
    result = issue_single(sealed_keys["env"], out, tmp_path, env)
    assert result.returncode == 0, result.stderr
    ticket = parse_ticket(result.stdout.rstrip("\n"))
    assert ticket.kid == SPEC_KID
    assert ticket.message.verify(KeyPair.from_seed(SPEC_SEED).signing_key.verify_key)


def test_issue_with_a_sealed_key_and_a_passphrase_file(sealed_keys, tmp_path):
    # A passphrase file written with a trailing newline still opens the key.
    (tmp_path / "pass").write_text(PASSPHRASE + "\r\n")
    out = tmp_path / "out"
    result = issue_single(sealed_keys["env"], out, tmp_path, None, "--passphrase-file", "pass")
    assert result.returncode == 0, result.stderr
    assert parse_ticket(result.stdout.rstrip("\n")).kid == SPEC_KID


@pytest.mark.parametrize("how", ["env", "file"])
def test_issue_with_a_wrong_passphrase_fails_clearly(sealed_keys, tmp_path, how):
    out = tmp_path / "out"
    if how == "env":
        result = issue_single(
            sealed_keys["file"], out, tmp_path, environment(GATE_KEY_PASSPHRASE="wrong")
        )
    else:
        (tmp_path / "pass").write_text("wrong\n")
        result = issue_single(sealed_keys["file"], out, tmp_path, None, "--passphrase-file", "pass")
    assert_one_error_line(result, str(sealed_keys["file"]), "wrong passphrase")
    assert result.stdout == ""
    assert not out.exists()


def test_issue_with_an_empty_passphrase_says_how_to_give_one(sealed_keys, tmp_path):
    result = issue_single(
        sealed_keys["env"], tmp_path / "out", tmp_path, environment(GATE_KEY_PASSPHRASE="")
    )
    assert_one_error_line(result, "passphrase-protected", "--passphrase-file")


def _close_stdin() -> None:
    os.close(0)


@pytest.mark.parametrize(
    "stdin_options",
    [
        pytest.param({"stdin": subprocess.DEVNULL}, id="stdin-devnull"),
        pytest.param({"stdin": subprocess.DEVNULL, "preexec_fn": _close_stdin}, id="stdin-closed"),
    ],
)
def test_issue_with_a_sealed_key_and_no_passphrase_errors_instead_of_hanging(
    sealed_keys, tmp_path, stdin_options
):
    # A new session has no controlling terminal, like a cron job or a systemd unit; the
    # prompt must not wait for input that can never come.
    out = tmp_path / "out"
    result = gate_keys(
        "issue",
        "--key",
        sealed_keys["env"],
        "--out",
        out,
        "--product",
        "single",
        "--exp",
        "2030-01-01",
        cwd=tmp_path,
        start_new_session=True,
        **stdin_options,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "gate-keys: " in result.stderr
    assert result.stdout.count("GT1:") == 0
    assert not out.exists()


# Damaged key files -----------------------------------------------------------------------

GOOD = KeyPair.from_seed(bytes(range(32)))
OTHER = KeyPair.from_seed(bytes(range(1, 33)))


def _key_json(**fields) -> str:
    document = {
        "format": "gate-key-v1",
        "kid": GOOD.kid.hex(),
        "public_key": GOOD.public_key.hex(),
        "seed": bytes(GOOD.signing_key).hex(),
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not None})


DAMAGED = {
    "empty": (b"", "not a readable key file"),
    "not-json": (b"{format: gate-key-v1", "not a readable key file"),
    "binary": (bytes(range(256)), "not a readable key file"),
    "json-list": (b'["gate-key-v1"]', "not a gate-key-v1 key file"),
    "wrong-format": (_key_json(format="gate-key-v0").encode(), "not a gate-key-v1 key file"),
    "no-format": (_key_json(format=None).encode(), "not a gate-key-v1 key file"),
    "seed-not-hex": (_key_json(seed="xyz").encode(), "not hex"),
    "seed-a-number": (_key_json(seed=42).encode(), "not hex"),
    "no-seed": (_key_json(seed=None).encode(), "seed is missing"),
    "seed-too-short": (_key_json(seed="00" * 31).encode(), "32 bytes"),
    "public-key-of-another-key": (
        _key_json(public_key=OTHER.public_key.hex()).encode(),
        "public key does not match",
    ),
    "sealed-unknown-kdf": (
        _key_json(seed=None, sealed={"kdf": "scrypt"}).encode(),
        "unsupported key derivation",
    ),
    "sealed-missing-salt": (
        _key_json(seed=None, sealed={"kdf": "argon2id13", "box": "00"}).encode(),
        "sealed key is malformed",
    ),
    "sealed-not-a-map": (_key_json(seed=None, sealed="abc").encode(), "sealed key is malformed"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_key_file_gives_one_error_line(tmp_path, name):
    content, fragment = DAMAGED[name]
    path = tmp_path / "damaged.key"
    path.write_bytes(content)
    out = tmp_path / "out"
    env = environment(GATE_KEY_PASSPHRASE=PASSPHRASE)  # reaches the sealed ones' checks
    result = issue_single(path, out, tmp_path, env)
    assert_one_error_line(result, fragment)
    assert result.stdout == ""
    assert not out.exists()


def test_a_sealed_key_with_a_damaged_box_is_refused(sealed_keys, tmp_path):
    document = read_key_document(sealed_keys["env"])
    box = bytearray(bytes.fromhex(document["sealed"]["box"]))
    box[-1] ^= 0x01
    document["sealed"]["box"] = box.hex()
    path = tmp_path / "damaged.key"
    path.write_text(json.dumps(document))
    result = issue_single(
        path, tmp_path / "out", tmp_path, environment(GATE_KEY_PASSPHRASE=PASSPHRASE)
    )
    assert_one_error_line(result, "wrong passphrase, or the key file is damaged")


def test_a_missing_key_file_is_named(tmp_path):
    result = issue_single(tmp_path / "nowhere.key", tmp_path / "out", tmp_path)
    assert_one_error_line(result, "nowhere.key", "no such key file")


def test_show_reports_a_damaged_key_file_in_one_line(tmp_path):
    (tmp_path / "bad.key").write_text("not json at all\n")
    assert_one_error_line(gate_keys("show", "bad.key", cwd=tmp_path), "not a readable key file")
