"""gate-collector: the service gates upload their scan logs to, and its offline tools.

Exit codes: 0 success, 1 error, 2 usage error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from gate.cli_errors import entry_point
from gate.trust import parse_public_key
from sync.collector.storage import masked_url, open_store
from sync.signing import GATE_ID_PATTERN

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
DB_ENV = "GATE_COLLECTOR_DB"
TOKEN_ENV = "GATE_COLLECTOR_TOKEN"
ROOT_KEY_ENV = "GATE_COLLECTOR_ROOT_PUBLIC_KEY"

_db_option = click.option(
    "--db",
    "db_url",
    envvar=DB_ENV,
    required=True,
    help=f"sqlite:///file.db, a plain path, or postgresql://... (default: ${DB_ENV}).",
)


@click.group()
def cli() -> None:
    """Collects the gates' scan logs; serves them revocation lists and trust bundles.

    Add --debug to any command to see a traceback on errors.
    """


def _read_token(token: str | None, token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise click.BadParameter(f"{token_file}: {err}", param_hint="--token-file") from err
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    if not token:
        raise click.UsageError(
            f"the office token is needed: --token-file FILE, --token TOKEN or ${TOKEN_ENV}"
        )
    return token


def _public_key(value: str | None, param: str) -> bytes | None:
    if value is None:
        return None
    try:
        return parse_public_key(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=param) from err


@cli.command()
@_db_option
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar=TOKEN_ENV, help=f"The office API token (or ${TOKEN_ENV}).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the office token from this file (keeps it out of the process list).",
)
@click.option(
    "--root-public-key",
    envvar=ROOT_KEY_ENV,
    help="The office root public key (hex); published documents are checked against it.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(db_url, host, port, token, token_file, root_public_key, log_level) -> None:
    """Run the collector's HTTP API (gates and office) until stopped.

    Without --root-public-key the collector still takes scans but refuses to publish
    documents. The OpenAPI description is served at /docs and /openapi.json.

    Example: gate-collector serve --db sqlite:///collector.db --token-file office.token
    --root-public-key 3b6a27bc...0c1d
    """
    import uvicorn

    from sync.collector.app import create_app

    office_token = _read_token(token, token_file)
    root = _public_key(root_public_key, "--root-public-key")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    store = open_store(db_url)
    app = create_app(store, token=office_token, root_public_key=root)
    click.echo(
        f"gate-collector: serving http://{host}:{port} (database {masked_url(store.url)})", err=True
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
    )


@cli.command()
@_db_option
@click.argument("gate_id")
@click.argument("public_key")
@click.option("--replace", is_flag=True, help="Replace a different key the gate holds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def enrol(db_url, gate_id, public_key, replace, as_json) -> None:
    """Enrol a gate's public key directly in the database (no server needed).

    PUBLIC_KEY is what `gatectl provision` printed: 64 hex digits or base64.

    Example: gate-collector enrol north-01 9f3c...e2a1 --db sqlite:///collector.db
    """
    if not GATE_ID_PATTERN.match(gate_id):
        raise click.BadParameter(
            "1-64 characters: letters, digits, '.', '_', '-'", param_hint="GATE_ID"
        )
    key = _public_key(public_key, "PUBLIC_KEY")
    with open_store(db_url) as store:
        result = store.enrol(gate_id, key, replace=replace)
    if as_json:
        click.echo(json.dumps({"gate_id": gate_id, "result": result}))
    else:
        click.echo(f"gate {gate_id}: {result}")


@cli.command()
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list.")
def gates(db_url, as_json) -> None:
    """List the enrolled gates: last seen, last seq, backlog, clock offset, chain status.

    Example: gate-collector gates --db sqlite:///collector.db --json
    """
    with open_store(db_url) as store:
        fleet = store.gates()
    if as_json:
        for gate in fleet:
            gate["health"] = json.loads(gate["health"]) if gate["health"] else None
        click.echo(json.dumps(fleet))
        return
    if not fleet:
        click.echo("no gates enrolled")
    for gate in fleet:
        offset = gate["clock_offset"]
        click.echo(
            f"{gate['gate_id']:20} last_seq {gate['last_seq']:<8} backlog "
            f"{gate['backlog'] if gate['backlog'] is not None else '-':<6} clock offset "
            f"{f'{offset:+.1f} s' if offset is not None else '-':<10} chain {gate['chain_status']}"
        )


main = entry_point(cli, "gate-collector")

if __name__ == "__main__":
    main()
