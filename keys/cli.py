"""gate-keys: the issuer and office tools.

Key pairs, tickets (text, QR code as PNG and SVG, manifest), trust bundles and revocation lists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from gate.cli_errors import entry_point
from gate.errors import KeyFileError
from gate.ticket import KID_SIZE
from gate.trust import parse_public_key, write_atomically
from keys.documents import (
    build_trust_bundle,
    parse_ticket_entry,
    revocation_list,
    ticket_entries_from_csv,
)
from keys.keyfile import PASSPHRASE_ENV, KeyPair, is_sealed, load_key, read_key_document, save_key
from keys.mint import build_claims, claims_from_csv, mint_to_directory


def _passphrase(passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise KeyFileError(f"{passphrase_file}: cannot read the passphrase: {err}") from err
    return os.environ.get(PASSPHRASE_ENV)


def _load(path: Path, passphrase_file: Path | None) -> KeyPair:
    passphrase = _passphrase(passphrase_file)
    if passphrase is None and is_sealed(path) and sys.stdin is not None and sys.stdin.isatty():
        passphrase = click.prompt(f"Passphrase for {path}", hide_input=True)
    return load_key(path, passphrase)


passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"File holding the key's passphrase (or set ${PASSPHRASE_ENV}).",
)


root_option = click.option(
    "--root",
    "root_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The office root key file.",
)


@click.group()
def cli() -> None:
    """Issuer and office tools: keys, tickets, trust bundles, revocation lists.

    Add --debug to any command to see a traceback on errors.
    """


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", help="Import an existing Ed25519 seed (64 hex digits) instead.")
@passphrase_option
@click.option("--ask-passphrase", is_flag=True, help="Prompt for a passphrase to seal the key.")
@click.option("--json", "as_json", is_flag=True, help="Print the kid and public key as JSON.")
def new(out, seed, passphrase_file, ask_passphrase, as_json) -> None:
    """Create a key pair file OUT (mode 0600) and print its kid.

    The same command makes issuer keys and the office root key.

    Example: gate-keys new issuer.key --ask-passphrase
    """
    if seed:
        try:
            pair = KeyPair.from_seed(bytes.fromhex(seed))
        except ValueError as err:
            raise KeyFileError("--seed: expected 64 hex digits") from err
    else:
        pair = KeyPair.generate()
    passphrase = _passphrase(passphrase_file)
    if ask_passphrase:
        passphrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True)
    save_key(pair, out, passphrase or None)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "kid": pair.kid.hex(),
                    "public_key": pair.public_key.hex(),
                    "file": str(out),
                    "sealed": bool(passphrase),
                }
            )
        )
    else:
        click.echo(pair.kid.hex())
        click.echo(f"public key {pair.public_key.hex()} written to {out}", err=True)


@cli.command()
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(key_file, as_json) -> None:
    """Show a key file's kid and public key (no passphrase needed).

    Example: gate-keys show issuer.key
    """
    document = read_key_document(key_file)
    public_key = parse_public_key(document.get("public_key", ""))
    info = {
        "kid": document.get("kid"),
        "public_key": public_key.hex(),
        "sealed": "sealed" in document,
    }
    if as_json:
        click.echo(json.dumps(info))
    else:
        for name, value in info.items():
            click.echo(f"{name:11} {value}")


@cli.command()
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The issuer key file.",
)
@passphrase_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the .txt, .png and .svg files and manifest.csv.",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Mint a batch: one ticket per row (columns product, exp, nbf, iat, zones, "
    "uses, category, iss, cti).",
)
@click.option("--product", type=click.Choice(["single", "multi", "pass"]))
@click.option("--exp", help="Expiry: Unix seconds or ISO 8601 (UTC), e.g. 2026-12-31T23:59.")
@click.option("--nbf", help="Not valid before: Unix seconds or ISO 8601.")
@click.option("--iat", help="Issue time (default: now).")
@click.option("--zones", help="Zones where the ticket is valid, e.g. 'A,B' (default: all).")
@click.option("--uses", type=int, help="Admissions of a multi ticket.")
@click.option("--category", help="Fare class shown to staff: adult, child, staff, ...")
@click.option("--iss", help="Issuer name.")
@click.option("--cti", help="Ticket id in hex (8-16 bytes; default: random 16 bytes).")
@click.option("--scale", default=8, show_default=True, help="QR module size in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per ticket.")
def issue(
    key_file,
    passphrase_file,
    out_dir,
    csv_file,
    product,
    exp,
    nbf,
    iat,
    zones,
    uses,
    category,
    iss,
    cti,
    scale,
    as_json,
) -> None:
    """Mint tickets: prints each GT1 text; writes text, PNG, SVG and a manifest to --out.

    Example: gate-keys issue --key issuer.key --out tickets --product single
    --exp 2026-12-31 --zones A

    Example: gate-keys issue --key issuer.key --out batch --csv tickets.csv
    """
    if csv_file is not None:
        if product or exp:
            raise click.UsageError("give either --csv or --product/--exp, not both")
        claims_list = list(claims_from_csv(csv_file))
    else:
        if not product or not exp:
            raise click.UsageError("--product and --exp are required (or use --csv)")
        claims_list = [
            build_claims(
                product=product,
                exp=exp,
                nbf=nbf,
                iat=iat or str(int(time.time())),
                zones=zones,
                uses=uses,
                category=category,
                iss=iss,
                cti=cti,
            )
        ]
    pair = _load(key_file, passphrase_file)
    for ticket in mint_to_directory(pair, claims_list, out_dir, scale=scale):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "cti": ticket.claims.cti.hex(),
                        "text": ticket.text,
                        "png": str(ticket.png_path),
                        "svg": str(ticket.svg_path),
                    }
                )
            )
        else:
            click.echo(ticket.text)
    click.echo(
        f"{len(claims_list)} ticket(s) in {out_dir}, manifest {out_dir / 'manifest.csv'}", err=True
    )


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@root_option
@passphrase_option
@click.option("--version", type=int, help="Bundle version (overrides the spec's).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def bundle(spec, root_file, passphrase_file, version, out) -> None:
    """Sign a trust bundle described by a TOML SPEC.

    \b
    version = 3
    [[key]]
    name = "metro"
    key_file = "issuer.key"            # or public_key = "<hex or base64>"
    not_after = "2027-12-31"           # optional; also not_before
    zones = ["A", "B"]                 # optional

    Example: gate-keys bundle bundle.toml --root root.key --out trust-v3.cose
    """
    data = build_trust_bundle(spec, _load(root_file, passphrase_file), version)
    write_atomically(out, data)
    click.echo(f"trust bundle written to {out} ({len(data)} bytes)", err=True)


def _public_key_or_file(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        return parse_public_key(read_key_document(path)["public_key"])
    return parse_public_key(text)


@cli.command()
@root_option
@passphrase_option
@click.option("--version", type=int, required=True, help="This list's version.")
@click.option("--base", type=int, help="Make a delta on top of this version.")
@click.option("--ticket", "tickets", multiple=True, help="Revoke KID_HEX:TICKET_ID_HEX.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Revoke the tickets in a CSV (columns cti and kid; a manifest works).",
)
@click.option("--kid", help="Kid (hex) for tickets given without one.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Revoke a whole issuer key (public key hex/base64, or its key file).",
)
@click.option(
    "--remove-ticket",
    "remove_tickets",
    multiple=True,
    help="In a delta: take KID_HEX:TICKET_ID_HEX off the list.",
)
@click.option(
    "--remove-key",
    "remove_keys",
    multiple=True,
    help="In a delta: take a whole-key revocation off the list.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def revoke(
    root_file,
    passphrase_file,
    version,
    base,
    tickets,
    csv_file,
    kid,
    keys,
    remove_tickets,
    remove_keys,
    out,
) -> None:
    """Sign a revocation list (full, or a delta with --base).

    Example: gate-keys revoke --root root.key --version 7 --base 6
    --ticket 21fe31dfa154a261:00112233445566778899aabbccddeeff --out revocations-v7.cose
    """
    default_kid = None
    if kid:
        try:
            default_kid = bytes.fromhex(kid)
        except ValueError as err:
            raise click.BadParameter("expected hex", param_hint="--kid") from err
        if len(default_kid) != KID_SIZE:
            raise click.BadParameter(f"a kid is {KID_SIZE} bytes", param_hint="--kid")
    entries = [parse_ticket_entry(text, default_kid) for text in tickets]
    if csv_file is not None:
        entries += ticket_entries_from_csv(csv_file, default_kid)
    data = revocation_list(
        _load(root_file, passphrase_file),
        version,
        base=base,
        tickets=entries,
        keys=[_public_key_or_file(k) for k in keys],
        remove_tickets=[parse_ticket_entry(t, default_kid) for t in remove_tickets],
        remove_keys=[_public_key_or_file(k) for k in remove_keys],
    )
    write_atomically(out, data)
    kind = f"delta {base}->{version}" if base is not None else f"full list version {version}"
    click.echo(
        f"revocation {kind} written to {out} ({len(entries)} ticket(s), {len(keys)} key(s))",
        err=True,
    )


main = entry_point(cli, "gate-keys")
