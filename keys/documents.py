"""Building the office's signed documents: trust bundles and revocation lists.

The gate side reads them with :mod:`gate.trust` and :mod:`gate.revocations`; both sides share
the envelope in :mod:`gate.signed`.
"""

from __future__ import annotations

import csv
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gate.errors import GateError
from gate.signed import REVOCATION_LIST, TRUST_BUNDLE, sign_document
from gate.ticket import CTI_MAX, CTI_MIN, KID_SIZE
from gate.trust import parse_public_key
from keys.keyfile import KeyPair, read_key_document
from keys.mint import MintError, parse_time

BUNDLE_KEY_FIELDS = {"name", "public_key", "key_file", "not_before", "not_after", "zones"}


class DocumentSpecError(ValueError):
    """A bundle specification or revocation entry that cannot be used; says where and why."""


def _key_entry(entry: Any, number: int, base_dir: Path) -> dict[str, Any]:
    where = f"key #{number}"
    if not isinstance(entry, dict):
        raise DocumentSpecError(f"{where}: must be a [[key]] table")
    unknown = set(entry) - BUNDLE_KEY_FIELDS
    if unknown:
        raise DocumentSpecError(
            f"{where}: unknown fields {sorted(unknown)}; accepted: {sorted(BUNDLE_KEY_FIELDS)}"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DocumentSpecError(f"{where}: name is required")
    if ("public_key" in entry) == ("key_file" in entry):
        raise DocumentSpecError(f"{where} ({name}): give exactly one of public_key or key_file")
    try:
        if "key_file" in entry:
            document = read_key_document(base_dir / str(entry["key_file"]))
            public_key = parse_public_key(document["public_key"])
        else:
            public_key = parse_public_key(str(entry["public_key"]))
    except (ValueError, KeyError, GateError) as err:
        raise DocumentSpecError(f"{where} ({name}): {err}") from err
    result: dict[str, Any] = {"name": name, "public_key": public_key}
    for field in ("not_before", "not_after"):
        if field in entry:
            try:
                result[field] = parse_time(str(entry[field]), field)
            except MintError as err:
                raise DocumentSpecError(f"{where} ({name}): {err}") from err
    if "zones" in entry:
        zones = entry["zones"]
        if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
            raise DocumentSpecError(f"{where} ({name}): zones must be a list of zone names")
        result["zones"] = zones
    return result


def build_trust_bundle(spec_path: Path, root: KeyPair, version: int | None = None) -> bytes:
    """Sign a trust bundle described by a TOML file (``version`` and ``[[key]]`` tables)."""
    try:
        spec = tomllib.loads(Path(spec_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise DocumentSpecError(f"{spec_path}: {err}") from err
    version = version if version is not None else spec.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DocumentSpecError(f"{spec_path}: version must be a positive whole number")
    entries = spec.get("key", [])
    if not isinstance(entries, list) or not entries:
        raise DocumentSpecError(f"{spec_path}: at least one [[key]] table is required")
    base_dir = Path(spec_path).parent
    try:
        keys = [_key_entry(entry, n, base_dir) for n, entry in enumerate(entries, 1)]
    except DocumentSpecError as err:
        raise DocumentSpecError(f"{spec_path}: {err}") from err
    return trust_bundle(keys, root, version)


def trust_bundle(keys: list[dict[str, Any]], root: KeyPair, version: int) -> bytes:
    """Sign a trust bundle from key entries (name, public_key, optional limits)."""
    body = {"type": TRUST_BUNDLE, "version": version, "issued_at": int(time.time()), "keys": keys}
    return sign_document(body, root.signing_key)


def parse_ticket_entry(text: str, default_kid: bytes | None = None) -> tuple[bytes, bytes]:
    """A revoked ticket as ``KID_HEX:CTI_HEX``, or ``CTI_HEX`` with a default kid."""
    kid_text, _, cti_text = text.strip().rpartition(":")
    try:
        kid = bytes.fromhex(kid_text) if kid_text else default_kid
        cti = bytes.fromhex(cti_text)
    except ValueError as err:
        raise DocumentSpecError(f"{text!r}: expected KID_HEX:TICKET_ID_HEX") from err
    if kid is None:
        raise DocumentSpecError(f"{text!r}: no kid; write KID_HEX:TICKET_ID_HEX or give --kid")
    if len(kid) != KID_SIZE or not CTI_MIN <= len(cti) <= CTI_MAX:
        raise DocumentSpecError(
            f"{text!r}: the kid is {KID_SIZE} bytes and a ticket id {CTI_MIN} to {CTI_MAX}"
        )
    return kid, cti


def ticket_entries_from_csv(path: Path, default_kid: bytes | None) -> list[tuple[bytes, bytes]]:
    """Revoked tickets from a CSV with a ``cti`` column and, optionally, a ``kid`` column
    (a minting manifest works, with ``--kid``)."""
    entries = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "cti" not in (reader.fieldnames or ()):
            raise DocumentSpecError(f"{path}: needs a 'cti' column (and 'kid', or give --kid)")
        for line, row in enumerate(reader, 2):
            entry = f"{row.get('kid') or ''}:{row['cti'] or ''}"
            try:
                entries.append(parse_ticket_entry(entry, default_kid))
            except DocumentSpecError as err:
                raise DocumentSpecError(f"{path}:{line}: {err}") from err
    return entries


def revocation_list(
    root: KeyPair,
    version: int,
    *,
    base: int | None = None,
    tickets: Iterable[tuple[bytes, bytes]] = (),
    keys: Iterable[bytes] = (),
    remove_tickets: Iterable[tuple[bytes, bytes]] = (),
    remove_keys: Iterable[bytes] = (),
    issued_at: int | None = None,
) -> bytes:
    """Sign a revocation list: full when ``base`` is None, else a delta on version ``base``."""
    body: dict[str, Any] = {
        "type": REVOCATION_LIST,
        "version": version,
        "issued_at": int(time.time()) if issued_at is None else issued_at,
        "tickets": [list(entry) for entry in tickets],
        "keys": list(keys),
    }
    if base is not None:
        if base >= version:
            raise DocumentSpecError("a delta's base version must be older than its version")
        body["base"] = base
        body["remove_tickets"] = [list(entry) for entry in remove_tickets]
        body["remove_keys"] = list(remove_keys)
    elif any(True for _ in remove_tickets) or any(True for _ in remove_keys):
        raise DocumentSpecError("only a delta (--base) can remove entries")
    return sign_document(body, root.signing_key)
