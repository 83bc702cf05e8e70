"""Ed25519 key files for issuers and the office root.

A key file is JSON, written atomically with mode 0600. The 32-byte seed is stored either in
the clear (``"seed"``) or sealed with a passphrase: Argon2id (libsodium ``pwhash``) derives a
key that opens a ``secretbox`` holding the seed. The public key and kid sit in the clear so
tools can show which key a file holds without the passphrase.

    {"format": "gate-key-v1", "kid": "...", "public_key": "...", "seed": "..."}
    {"format": "gate-key-v1", "kid": "...", "public_key": "...",
     "sealed": {"kdf": "argon2id13", "opslimit": 2, "memlimit": 67108864,
                "salt": "...", "box": "..."}}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from gate.errors import KeyFileError
from gate.ticket import kid_for

FORMAT = "gate-key-v1"
SEED_SIZE = 32
PASSPHRASE_ENV = "GATE_KEY_PASSPHRASE"


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 signing key with its public half and GT1 kid."""

    signing_key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def kid(self) -> bytes:
        return kid_for(self.public_key)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != SEED_SIZE:
            raise KeyFileError(f"an Ed25519 seed is {SEED_SIZE} bytes, not {len(seed)}")
        return cls(nacl.signing.SigningKey(seed))


def _seal(seed: bytes, passphrase: str) -> dict[str, Any]:
    kdf = nacl.pwhash.argon2id
    salt = nacl.utils.random(kdf.SALTBYTES)
    opslimit, memlimit = kdf.OPSLIMIT_INTERACTIVE, kdf.MEMLIMIT_INTERACTIVE
    key = kdf.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit, memlimit)
    box = nacl.secret.SecretBox(key).encrypt(seed)
    return {
        "kdf": "argon2id13",
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": salt.hex(),
        "box": bytes(box).hex(),
    }


def _unseal(sealed: dict[str, Any], passphrase: str, path: Path) -> bytes:
    try:
        if sealed["kdf"] != "argon2id13":
            raise KeyFileError(f"{path}: unsupported key derivation {sealed['kdf']!r}")
        salt = bytes.fromhex(sealed["salt"])
        key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode(),
            salt,
            int(sealed["opslimit"]),
            int(sealed["memlimit"]),
        )
        return nacl.secret.SecretBox(key).decrypt(bytes.fromhex(sealed["box"]))
    except nacl.exceptions.CryptoError as err:
        raise KeyFileError(f"{path}: wrong passphrase, or the key file is damaged") from err
    except (KeyError, ValueError, TypeError) as err:
        raise KeyFileError(f"{path}: the sealed key is malformed ({err})") from err


def save_key(pair: KeyPair, path: Path, passphrase: str | None = None) -> None:
    """Write a key file with mode 0600; refuse to overwrite an existing file."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "kid": pair.kid.hex(),
        "public_key": pair.public_key.hex(),
    }
    seed = bytes(pair.signing_key)
    if passphrase:
        document["sealed"] = _seal(seed, passphrase)
    else:
        document["seed"] = seed.hex()
    data = (json.dumps(document, indent=2) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from err
    except OSError as err:
        raise KeyFileError(f"{path}: cannot create: {err}") from err
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, 0o600)


def read_key_document(path: Path) -> dict[str, Any]:
    """The key file's JSON, checked for shape (public parts only are trusted from here)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise KeyFileError(f"{path}: no such key file") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KeyFileError(f"{path}: not a readable key file ({err})") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f"{path}: not a {FORMAT} key file")
    return document


def is_sealed(path: Path) -> bool:
    return "sealed" in read_key_document(path)


def load_key(path: Path, passphrase: str | None = None) -> KeyPair:
    """Read a key file, opening it with ``passphrase`` when it is sealed."""
    path = Path(path)
    document = read_key_document(path)
    if "sealed" in document:
        if not passphrase:
            raise KeyFileError(
                f"{path}: the key is passphrase-protected; give --passphrase-file or "
                f"set ${PASSPHRASE_ENV}"
            )
        seed = _unseal(document["sealed"], passphrase, path)
    else:
        try:
            seed = bytes.fromhex(document["seed"])
        except (KeyError, ValueError, TypeError) as err:
            raise KeyFileError(f"{path}: the seed is missing or not hex") from err
    try:
        pair = KeyPair.from_seed(seed)
    except KeyFileError as err:
        raise KeyFileError(f"{path}: {err}") from err
    if document.get("public_key") != pair.public_key.hex():
        raise KeyFileError(f"{path}: the public key does not match the private key")
    return pair
