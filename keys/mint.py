"""Minting tickets: claims from options or a CSV file, GT1 text, QR codes and a manifest."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import segno

from gate.ticket import CTI_MAX, CTI_MIN, PRODUCTS, Claims, mint_ticket
from keys.keyfile import KeyPair

CSV_COLUMNS = ("product", "exp", "nbf", "iat", "zones", "uses", "category", "iss", "cti")
MANIFEST_COLUMNS = (
    "cti",
    "product",
    "exp",
    "nbf",
    "zones",
    "uses",
    "category",
    "text",
    "png",
    "svg",
)


class MintError(ValueError):
    """A ticket request that cannot be minted; the message says which field and why."""


def parse_time(value: str, field: str) -> int:
    """Unix seconds, or an ISO 8601 date or date-time (UTC when no offset is given)."""
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise MintError(f"{field}: {value!r} is neither Unix seconds nor an ISO 8601 date") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def new_ticket_id() -> bytes:
    return os.urandom(CTI_MAX)


def build_claims(
    *,
    product: str,
    exp: str,
    nbf: str | None = None,
    iat: str | None = None,
    zones: str | Iterable[str] | None = None,
    uses: str | int | None = None,
    category: str | None = None,
    iss: str | None = None,
    cti: str | None = None,
) -> Claims:
    """Claims from text fields as a person types them (CSV cells or command options)."""
    if product not in PRODUCTS:
        raise MintError(f"product: {product!r} is not one of {', '.join(PRODUCTS)}")
    if isinstance(zones, str):
        zones = [z for z in zones.replace(",", " ").replace("|", " ").split() if z]
    zone_tuple = tuple(zones) if zones else None
    uses_value = None
    if uses not in (None, ""):
        try:
            uses_value = int(uses)
        except ValueError as err:
            raise MintError(f"uses: {uses!r} is not a whole number") from err
    if cti:
        try:
            ticket_id = bytes.fromhex(cti)
        except ValueError as err:
            raise MintError(f"cti: {cti!r} is not hex") from err
        if not CTI_MIN <= len(ticket_id) <= CTI_MAX:
            raise MintError(f"cti: must be {CTI_MIN} to {CTI_MAX} bytes")
    else:
        ticket_id = new_ticket_id()
    try:
        return Claims(
            cti=ticket_id,
            exp=parse_time(exp, "exp"),
            product=product,
            iss=iss or None,
            nbf=parse_time(nbf, "nbf") if nbf else None,
            iat=parse_time(iat, "iat") if iat else None,
            zones=zone_tuple,
            uses=uses_value,
            category=category or None,
        )
    except ValueError as err:
        raise MintError(str(err)) from err


def claims_from_csv(path: Path) -> Iterator[Claims]:
    """One :class:`Claims` per CSV row; the header names the columns (see CSV_COLUMNS).

    Errors name the file and the line; a ticket id used twice is an error.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            yield from _claims_from_rows(csv.DictReader(handle), path)
    except UnicodeDecodeError as err:
        raise MintError(f"{path}: not UTF-8 text ({err.reason})") from err
    except csv.Error as err:
        raise MintError(f"{path}: not a readable CSV file ({err})") from err


def _claims_from_rows(reader: csv.DictReader, path: Path) -> Iterator[Claims]:
    unknown = set(reader.fieldnames or ()) - set(CSV_COLUMNS)
    if unknown or not reader.fieldnames:
        raise MintError(
            f"{path}:1: unknown columns {sorted(unknown)}; accepted: {', '.join(CSV_COLUMNS)}"
        )
    seen: set[bytes] = set()
    for row in reader:
        line = reader.line_num
        if None in row:
            raise MintError(f"{path}:{line}: more cells than columns (quote cells with commas)")
        fields = {key: (value or "").strip() for key, value in row.items()}
        if not fields.get("product") or not fields.get("exp"):
            raise MintError(f"{path}:{line}: product and exp are required")
        optional = {k: fields.get(k) or None for k in CSV_COLUMNS[2:]}
        try:
            claims = build_claims(product=fields["product"], exp=fields["exp"], **optional)
        except MintError as err:
            raise MintError(f"{path}:{line}: {err}") from err
        if claims.cti in seen:
            raise MintError(f"{path}:{line}: ticket id {claims.cti.hex()} appears twice")
        seen.add(claims.cti)
        yield claims


def make_qr(text: str) -> segno.QRCode:
    """The QR code for a GT1 text: alphanumeric mode, error correction M."""
    return segno.make_qr(text, mode="alphanumeric", error="m", boost_error=False)


@dataclass(frozen=True)
class MintedTicket:
    claims: Claims
    text: str
    text_path: Path
    png_path: Path
    svg_path: Path


def mint_to_directory(
    pair: KeyPair, claims_list: Iterable[Claims], out_dir: Path, *, scale: int = 8
) -> list[MintedTicket]:
    """Mint each ticket, write its text, PNG and SVG, and a manifest.csv of them all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    minted = []
    for claims in claims_list:
        text = mint_ticket(claims, pair.signing_key)
        stem = out_dir / claims.cti.hex()
        text_path, png_path, svg_path = (stem.with_suffix(s) for s in (".txt", ".png", ".svg"))
        text_path.write_text(text + "\n", encoding="ascii")
        qr = make_qr(text)
        qr.save(png_path, scale=scale, border=4)
        qr.save(svg_path, scale=scale, border=4)
        minted.append(MintedTicket(claims, text, text_path, png_path, svg_path))
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for ticket in minted:
            c = ticket.claims
            writer.writerow(
                [
                    c.cti.hex(),
                    c.product,
                    c.exp,
                    c.nbf or "",
                    " ".join(c.zones or ()),
                    c.uses or "",
                    c.category or "",
                    ticket.text_path.name,
                    ticket.png_path.name,
                    ticket.svg_path.name,
                ]
            )
    return minted
