"""The trust store: which issuer public keys a gate accepts tickets from.

A gate learns its keys from a trust bundle signed by the office root key. Each key has a name,
and may carry a validity period and a list of zones that bound what its tickets can do. The
held bundle lives in the state directory and is verified again every time it is loaded.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from gate.errors import RollbackError, SignedDocumentError
from gate.signed import TRUST_BUNDLE, open_document
from gate.ticket import kid_for

PUBLIC_KEY_SIZE = 32


def parse_public_key(text: str) -> bytes:
    """A raw Ed25519 public key from 64 hex digits or base64 (standard or URL-safe)."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 2 * PUBLIC_KEY_SIZE:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != PUBLIC_KEY_SIZE:
        raise ValueError("expected a raw Ed25519 public key: 64 hex digits or 44 base64 characters")
    try:
        nacl.signing.VerifyKey(raw)
    except (nacl.exceptions.CryptoError, ValueError) as err:
        raise ValueError("not a valid Ed25519 public key") from err
    return raw


@dataclass(frozen=True)
class TrustedKey:
    """An issuer key a gate accepts, with the limits the office put on it."""

    name: str
    public_key: bytes
    not_before: int | None = None
    not_after: int | None = None
    zones: tuple[str, ...] | None = None
    verify_key: nacl.signing.VerifyKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verify_key", nacl.signing.VerifyKey(self.public_key))

    @property
    def kid(self) -> bytes:
        return kid_for(self.public_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kid": self.kid.hex(),
            "public_key": self.public_key.hex(),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "zones": list(self.zones) if self.zones is not None else None,
        }


class TrustStore:
    """Trusted issuer keys, looked up by kid. Several keys may share one kid."""

    def __init__(
        self, keys: Iterable[TrustedKey], version: int | None = None, issued_at: int | None = None
    ) -> None:
        self.keys = tuple(keys)
        self.version = version
        self.issued_at = issued_at
        self._by_kid: dict[bytes, list[TrustedKey]] = {}
        for key in self.keys:
            self._by_kid.setdefault(key.kid, []).append(key)

    def candidates(self, kid: bytes) -> list[TrustedKey]:
        """Every trusted key whose kid is ``kid``, in bundle order."""
        return self._by_kid.get(kid, [])

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_public_keys(cls, public_keys: Iterable[bytes]) -> TrustStore:
        """An ad-hoc store of raw keys without limits, for dry runs (``gatectl check --trust``)."""
        return cls(TrustedKey(name="given with --trust", public_key=key) for key in public_keys)

    @classmethod
    def from_bundle(cls, data: bytes, root_public_key: bytes) -> TrustStore:
        """Verify a signed trust bundle and build the store it describes."""
        body = open_document(data, root_public_key, TRUST_BUNDLE)
        return cls(_bundle_keys(body), version=body["version"], issued_at=body.get("issued_at"))


def _optional_int(entry: Mapping, name: str, where: str) -> int | None:
    value = entry.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise SignedDocumentError(f"trust bundle refused: {where}: {name} must be Unix seconds")
    return value


def _bundle_keys(body: Mapping) -> list[TrustedKey]:
    entries = body.get("keys")
    if not isinstance(entries, list | tuple):
        raise SignedDocumentError("trust bundle refused: 'keys' is not a list")
    keys = []
    for number, entry in enumerate(entries, 1):
        where = f"key #{number}"
        if not isinstance(entry, Mapping):
            raise SignedDocumentError(f"trust bundle refused: {where} is not a map")
        name, public_key, zones = entry.get("name"), entry.get("public_key"), entry.get("zones")
        if not isinstance(name, str) or not name:
            raise SignedDocumentError(f"trust bundle refused: {where} has no name")
        if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
            raise SignedDocumentError(f"trust bundle refused: {where} ({name}): bad public key")
        if zones is not None and (
            not isinstance(zones, list | tuple) or not all(isinstance(z, str) for z in zones)
        ):
            raise SignedDocumentError(f"trust bundle refused: {where} ({name}): bad zones")
        try:
            keys.append(
                TrustedKey(
                    name=name,
                    public_key=public_key,
                    not_before=_optional_int(entry, "not_before", where),
                    not_after=_optional_int(entry, "not_after", where),
                    zones=tuple(zones) if zones is not None else None,
                )
            )
        except (nacl.exceptions.CryptoError, ValueError) as err:
            raise SignedDocumentError(f"trust bundle refused: {where} ({name}): {err}") from err
    return keys


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    ``durable`` also fsyncs the file and its directory, for state that must survive a power
    cut; status files rewritten every second skip it (readers still never see half a file).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class HeldBundle:
    """The trust bundle a gate holds in its state directory, reloaded when the file changes."""

    FILE_NAME = "trust-bundle.cose"

    def __init__(self, state_dir: Path, root_public_key: bytes) -> None:
        self.path = Path(state_dir) / self.FILE_NAME
        self.root_public_key = root_public_key
        self._stamp: tuple[int, int] | None = None
        self._store = TrustStore(())
        self.error: str | None = None

    def store(self) -> TrustStore:
        """The current trust store; an empty one when no valid bundle is held."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self._store, self.error = TrustStore(()), None
            if stamp is None:
                self.error = f"no trust bundle held ({self.path} is missing)"
            else:
                try:
                    self._store = TrustStore.from_bundle(
                        self.path.read_bytes(), self.root_public_key
                    )
                except (OSError, SignedDocumentError) as err:
                    self.error = f"held trust bundle unusable: {err}"
        return self._store

    def install(self, data: bytes) -> TrustStore:
        """Verify ``data`` and make it the held bundle, refusing anything not newer."""
        new = TrustStore.from_bundle(data, self.root_public_key)
        held = self.store()
        if held.version is not None and new.version <= held.version:
            raise RollbackError(
                f"trust bundle refused: version {new.version} is not newer than the held "
                f"version {held.version} (rollback protection); the held bundle stays in force"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, data)
        return self.store()
