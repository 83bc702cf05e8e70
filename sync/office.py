"""gate-office: the office's tools against the collector.

Enrol gates, watch the fleet, publish revocations and trust bundles, and pull the scan log for
reports. Every request carries the office token (``Authorization: Bearer``); the collector's
address comes from ``--url`` or ``$GATE_COLLECTOR_URL``, the token from ``--token-file`` or
``$GATE_OFFICE_TOKEN``. See docs/sync-protocol.md for the office API.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import httpx

from gate.cli_errors import entry_point
from gate.cose import Malformed
from gate.errors import SyncError
from gate.scanlog import WIRE_FIELDS
from gate.signed import KINDS, TRUST_BUNDLE, document_kind
from gate.ticket import parse_ticket
from gate.trust import parse_public_key, write_atomically
from keys.documents import parse_ticket_entry, revocation_list
from keys.keyfile import PASSPHRASE_ENV, is_sealed, load_key, read_key_document

URL_ENV = "GATE_COLLECTOR_URL"
TOKEN_ENV = "GATE_OFFICE_TOKEN"
DEFAULT_TIMEOUT = 10.0
#: records asked for per request when pulling scans (the collector may send fewer)
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
DOCUMENT_TYPE = "application/cose"
#: the scan record's fields in docs/sync-protocol.md order, for a CSV's columns
SCAN_COLUMNS = ("gate_id", *WIRE_FIELDS)


class OfficeClient:
    """The collector's office API over HTTP.

    Every failure becomes a :class:`SyncError` whose message says what to do: the collector
    cannot be reached, did not answer in time, refused the token, or refused the request (with
    the collector's own reason).
    """

    def __init__(self, url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        try:
            self._http = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
            )
        except (httpx.InvalidURL, ValueError) as err:
            raise SyncError(f"--url {url!r} is not a usable collector URL: {err}") from err

    def __enter__(self) -> OfficeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; any answer but a success is an error."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise SyncError(
                f"the collector at {self.url} did not answer {method} {path} within "
                f"{self.timeout:g} s; try again, or raise --timeout"
            ) from err
        except httpx.UnsupportedProtocol as err:
            raise SyncError(f"--url {self.url!r} must start with http:// or https://") from err
        except httpx.TransportError as err:
            raise SyncError(
                f"cannot reach the collector at {self.url} ({err or type(err).__name__}); "
                f"check --url or ${URL_ENV}"
            ) from err
        except httpx.HTTPError as err:
            raise SyncError(f"talking to the collector at {self.url} failed: {err}") from err
        if response.status_code == 401:
            raise SyncError(
                f"the collector refused the office token (HTTP 401: {_reason(response)}); "
                f"check --token-file or ${TOKEN_ENV}"
            )
        if response.status_code >= 400:
            raise SyncError(
                f"the collector refused {method} {path} (HTTP {response.status_code}): "
                f"{_reason(response)}"
            )
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as err:
            raise SyncError(
                f"the collector at {self.url} answered {response.request.url.path} with "
                "something that is not JSON; is --url the collector?"
            ) from err

    def enrol(self, gate_id: str, public_key: bytes, replace: bool = False) -> dict[str, Any]:
        """Enrol a gate's public key, so the collector accepts the gate's signed requests.

        The answer's ``result`` is ``enrolled``, ``unchanged`` or ``replaced``.
        """
        response = self._request(
            "POST",
            "/v1/office/gates",
            params={"replace": "1"} if replace else None,
            json={"gate_id": gate_id, "public_key": public_key.hex()},
        )
        return self._json(response)

    def gates(self) -> list[dict[str, Any]]:
        """The fleet as the collector sees it, one mapping per enrolled gate."""
        answer = self._json(self._request("GET", "/v1/office/gates"))
        gates = answer.get("gates") if isinstance(answer, Mapping) else None
        if not isinstance(gates, list) or not all(isinstance(g, Mapping) for g in gates):
            raise SyncError("the collector's fleet answer is not a list of gates")
        return gates

    def latest_revocation_version(self) -> int | None:
        """The newest published revocation list version, or None when none is published."""
        answer = self._json(self._request("GET", "/v1/office/revocations"))
        documents = answer.get("documents") if isinstance(answer, Mapping) else None
        if not isinstance(documents, list):
            raise SyncError("the collector's list of revocation versions is not a list")
        versions = [d.get("version") for d in documents if isinstance(d, Mapping)]
        if not all(isinstance(v, int) for v in versions):
            raise SyncError("the collector's list of revocation versions has a bad version")
        return max(versions, default=None)

    def publish_revocations(self, data: bytes) -> dict[str, Any]:
        """Publish a signed revocation list (full or delta)."""
        return self._publish("/v1/office/revocations", data)

    def publish_trust_bundle(self, data: bytes) -> dict[str, Any]:
        """Publish a signed trust bundle."""
        return self._publish("/v1/office/trust-bundles", data)

    def _publish(self, path: str, data: bytes) -> dict[str, Any]:
        response = self._request(
            "POST", path, content=data, headers={"Content-Type": DOCUMENT_TYPE}
        )
        answer = self._json(response) if response.content else {}
        return answer if isinstance(answer, dict) else {}

    def scans(
        self, cursor: str | None, filters: Mapping[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], str | None, bool]:
        """One page of scan records after ``cursor`` (None: from the start), the cursor that
        continues after them, and whether the collector holds more right now."""
        params = {name: value for name, value in filters.items() if value is not None}
        if cursor is not None:
            params["cursor"] = cursor
        params["limit"] = limit
        answer = self._json(self._request("GET", "/v1/office/scans", params=params))
        records = answer.get("records") if isinstance(answer, Mapping) else None
        if not isinstance(records, list):
            raise SyncError("the collector's scans answer has no list of records")
        return records, answer.get("next_cursor"), bool(answer.get("more", records))


def _reason(response: httpx.Response) -> str:
    """The collector's own words for a refusal (its ``error``, FastAPI's ``detail``), else the
    start of the text."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, Mapping):
        for name in ("error", "detail"):
            if answer.get(name):
                value = answer[name]
                return value if isinstance(value, str) else json.dumps(value)
    text = " ".join(response.text.split())
    return text[:200] or response.reason_phrase or "no reason given"


# --- the command line ---


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise SyncError(f"{token_file}: cannot read the office token: {err}") from err
        where = str(token_file)
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        where = f"${TOKEN_ENV}"
        if not token:
            raise SyncError(f"no office token: give --token-file or set ${TOKEN_ENV}")
    if not token:
        raise SyncError(f"{where} is empty; it must hold the office token")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise SyncError(f"{where}: the office token must be printable ASCII without spaces")
    return token


@dataclass
class Connection:
    """Where the collector is and how to authenticate, from the command line and environment."""

    url: str | None
    token_file: Path | None
    timeout: float

    def open(self) -> OfficeClient:
        if not self.url:
            raise SyncError(f"no collector URL: give --url or set ${URL_ENV}")
        return OfficeClient(self.url, _token(self.token_file), self.timeout)


def connection_options(command):
    """--url, --token-file and --timeout, shared by every command."""
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for the collector.",
    )(command)
    command = click.option(
        "--token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"File holding the office token (or set ${TOKEN_ENV} to the token).",
    )(command)
    command = click.option(
        "--url", envvar=URL_ENV, help=f"The collector's base URL (default: ${URL_ENV})."
    )(command)
    return command


def _connection(kwargs: dict[str, Any]) -> Connection:
    return Connection(kwargs.pop("url"), kwargs.pop("token_file"), kwargs.pop("timeout"))


@click.group()
def cli() -> None:
    """The office's tools against the collector: enrol gates, watch the fleet, publish
    revocations and trust bundles, pull the scan log.

    The collector's URL comes from --url or $GATE_COLLECTOR_URL, the office token from
    --token-file or $GATE_OFFICE_TOKEN. Add --debug to any command to see a traceback on
    errors.
    """


@cli.command()
@click.argument("gate_id")
@click.argument("public_key")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace another key enrolled under GATE_ID (a gate whose key was made anew).",
)
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the collector's answer as JSON.")
def enrol(gate_id, public_key, replace, as_json, **kwargs) -> None:
    """Enrol gate GATE_ID with its PUBLIC_KEY (hex or base64, as 'gatectl provision' prints).

    Example: gate-office enrol north-01 3d4017...660c
    """
    try:
        key = parse_public_key(public_key)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="PUBLIC_KEY") from err
    with _connection(kwargs).open() as office:
        answer = office.enrol(gate_id, key, replace)
    if as_json:
        click.echo(json.dumps(answer))
        return
    done = {"unchanged": "already enrolled", "replaced": "replaced the key of"}
    click.echo(f"{done.get(answer.get('result'), 'enrolled')} gate {gate_id} ({key.hex()})")


def _age(seconds: float) -> str:
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _shown(value: Any, template: str = "{}") -> str:
    return "-" if value is None else template.format(value)


def fleet_rows(gates: list[Mapping[str, Any]], now: float) -> list[tuple[str, ...]]:
    """The fleet table's rows: gate, last seen (age), last seq, backlog, clock offset, chain."""
    return [
        (
            str(gate.get("gate_id")),
            "never" if gate.get("last_seen") is None else _age(now - gate["last_seen"]),
            _shown(gate.get("last_seq")),
            _shown(gate.get("backlog")),
            _shown(gate.get("clock_offset"), "{:+.1f} s"),
            _shown(gate.get("chain_status")),
        )
        for gate in gates
    ]


@cli.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the collector's list as JSON.")
def gates(as_json, **kwargs) -> None:
    """The fleet: each gate's last contact (age), last seq, backlog, clock offset and chain.

    The clock offset is the collector's clock minus the gate's at its last health report
    (positive: the gate's clock is behind); the chain is 'ok' or the first problem found in
    the gate's hash-chained scan log.

    Example: gate-office gates --url https://collector.example:8443 --token-file office.token
    """
    with _connection(kwargs).open() as office:
        fleet = office.gates()
    if as_json:
        click.echo(json.dumps(fleet))
        return
    header = ("GATE", "LAST SEEN", "LAST SEQ", "BACKLOG", "CLOCK OFFSET", "CHAIN")
    rows = [header, *fleet_rows(fleet, time.time())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    if not fleet:
        click.echo("no gates enrolled yet", err=True)


def _passphrase(passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise SyncError(f"{passphrase_file}: cannot read the passphrase: {err}") from err
    return os.environ.get(PASSPHRASE_ENV)


def _public_key_or_file(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        return parse_public_key(read_key_document(path)["public_key"])
    return parse_public_key(text)


def _ticket_from_text(text: str) -> tuple[bytes, bytes]:
    try:
        ticket = parse_ticket(text.strip())
    except Malformed as err:
        shown = text if len(text) <= 24 else text[:20] + "..."
        raise click.BadParameter(f"{shown!r}: {err}", param_hint="--ticket-text") from err
    return ticket.kid, ticket.claims.cti


@cli.command()
@click.option(
    "--root",
    "root_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The office root key file.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"File holding the root key's passphrase (or set ${PASSPHRASE_ENV}).",
)
@click.option("--ticket", "tickets", multiple=True, help="Revoke KID_HEX:TICKET_ID_HEX.")
@click.option(
    "--ticket-text",
    "ticket_texts",
    multiple=True,
    help="Revoke the ticket with this GT1 text (kid and ticket id are read from it).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Revoke a whole issuer key (public key hex/base64, or its key file).",
)
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print what was published as JSON.")
def revoke(root_file, passphrase_file, tickets, ticket_texts, keys, as_json, **kwargs) -> None:
    """Revoke tickets and issuer keys: sign a delta on the collector's newest revocation
    list with the office root key and publish it (a full list version 1 when none is
    published yet). Repeat --ticket, --ticket-text and --key as needed.

    A sealed root key's passphrase comes from --passphrase-file, $GATE_KEY_PASSPHRASE or a
    prompt.

    Example: gate-office revoke --root root.key
    --ticket 21fe31dfa154a261:00112233445566778899aabbccddeeff --ticket-text 'GT1:6BF...'
    """
    entries = [parse_ticket_entry(text) for text in tickets]
    entries += [_ticket_from_text(text) for text in ticket_texts]
    public_keys = [_public_key_or_file(text) for text in keys]
    if not entries and not public_keys:
        raise click.UsageError("nothing to revoke: give --ticket, --ticket-text or --key")
    passphrase = _passphrase(passphrase_file)
    if passphrase is None and is_sealed(root_file) and sys.stdin and sys.stdin.isatty():
        passphrase = click.prompt(f"Passphrase for {root_file}", hide_input=True)
    root = load_key(root_file, passphrase)
    with _connection(kwargs).open() as office:
        current = office.latest_revocation_version()
        if current is not None:
            version = current + 1
            data = revocation_list(root, version, base=current, tickets=entries, keys=public_keys)
        else:
            version = 1
            data = revocation_list(root, version, tickets=entries, keys=public_keys)
        answer = office.publish_revocations(data)
    published = {
        "version": answer.get("version", version),
        "base": current,
        "tickets": [f"{kid.hex()}:{cti.hex()}" for kid, cti in entries],
        "keys": [key.hex() for key in public_keys],
    }
    if as_json:
        click.echo(json.dumps(published))
        return
    for entry in published["tickets"]:
        click.echo(f"revoked ticket {entry}")
    for key in published["keys"]:
        click.echo(f"revoked key {key}")
    kind = "full list" if current is None else f"delta on version {current}"
    click.echo(f"published revocation {kind}: version {published['version']}")


@cli.command("publish-bundle")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the collector's answer as JSON.")
def publish_bundle(file, as_json, **kwargs) -> None:
    """Publish a signed trust bundle FILE (made by 'gate-keys bundle') to the gates.

    The collector checks the office signature and that the version is newer than the one it
    holds.

    Example: gate-office publish-bundle trust-v3.cose
    """
    data = file.read_bytes()
    kind = document_kind(data)
    if kind != TRUST_BUNDLE:
        raise SyncError(f"{file} is a {KINDS[kind]}, not a trust bundle")
    with _connection(kwargs).open() as office:
        answer = office.publish_trust_bundle(data)
    if as_json:
        click.echo(json.dumps(answer))
        return
    version = answer.get("version")
    shown = f" version {version}" if version is not None else ""
    click.echo(f"published trust bundle{shown} from {file} ({len(data)} bytes)")


# --- pulling the scan log ---


@dataclass
class PullState:
    """What a cursor file holds: where the next pull continues, for which query, and how far
    the output file got, so a resumed pull neither repeats nor skips a record."""

    cursor: Any = None
    query: dict[str, Any] = field(default_factory=dict)
    format: str = "csv"
    columns: list[str] | None = None
    out_bytes: int | None = None
    records: int = 0

    @classmethod
    def read(cls, path: Path) -> PullState | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise SyncError(
                f"{path}: not a cursor file from gate-office pull ({err}); give another "
                "--cursor-file or remove it to start over"
            ) from err

    def write(self, path: Path) -> None:
        write_atomically(path, json.dumps(asdict(self)).encode() + b"\n")


def parse_time(value: str | None, option: str) -> float | None:
    """Unix seconds, or an ISO 8601 date or time (UTC when it has no offset)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise click.BadParameter(f"{value!r} is not a time", param_hint=option)
        return number
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise click.BadParameter(
            f"{value!r} is neither Unix seconds nor an ISO 8601 time", param_hint=option
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _open_output(out: Path | None, state: PullState, resumed: bool) -> tuple[IO[str], bool]:
    """The output stream, and whether it continues an earlier pull's output."""
    if out is None:
        return sys.stdout, resumed
    if not resumed or state.out_bytes is None:
        return open(out, "w", newline="", encoding="utf-8"), False
    size = out.stat().st_size if out.exists() else -1
    if size < state.out_bytes:
        raise SyncError(
            f"{out} is shorter than the cursor file says ({state.out_bytes} bytes): it changed "
            "since the last pull; start over with a new --cursor-file and --out"
        )
    # Records written after the cursor was last saved will be pulled again: drop them.
    os.truncate(out, state.out_bytes)
    return open(out, "a", newline="", encoding="utf-8"), True


def _pages(
    office: OfficeClient, state: PullState, limit: int | None, page_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Pages of records after ``state.cursor``, advancing it; stops at the end or the limit."""
    pulled = 0
    while limit is None or pulled < limit:
        want = page_size if limit is None else min(page_size, limit - pulled)
        records, next_cursor, more = office.scans(state.cursor, state.query, want)
        records = records[:want]
        pulled += len(records)
        moved = next_cursor is not None and next_cursor != state.cursor
        if moved:
            state.cursor = next_cursor
        yield records
        if not (records and more and moved):
            return


class ScanWriter:
    """Writes pulled records as CSV or JSON Lines; the output is opened at the first page, so
    a pull that cannot reach the collector leaves an existing file alone."""

    def __init__(self, out: Path | None, state: PullState, resumed: bool) -> None:
        self.out, self.state, self.resumed = out, state, resumed
        self.handle: IO[str] | None = None
        self.csv: csv.DictWriter | None = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.handle is None:
            self.handle, continuing = _open_output(self.out, self.state, self.resumed)
            if self.state.format == "csv":
                if self.state.columns is None:
                    first = records[0] if records else {}
                    self.state.columns = [
                        *SCAN_COLUMNS,
                        *(name for name in first if name not in SCAN_COLUMNS),
                    ]
                self.csv = csv.DictWriter(self.handle, self.state.columns, extrasaction="ignore")
                if not continuing:
                    self.csv.writeheader()
        for record in records:
            if self.csv is not None:
                self.csv.writerow({name: _cell(record.get(name)) for name in self.csv.fieldnames})
            else:
                self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.out is not None:
            os.fsync(self.handle.fileno())
            self.state.out_bytes = os.fstat(self.handle.fileno()).st_size

    def close(self) -> None:
        if self.handle is not None and self.out is not None:
            self.handle.close()


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV with a header, or one JSON object per line.",
)
@click.option(
    "--cursor-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Continue from the cursor saved here, and save it after every page.",
)
@click.option("--gate", help="Only this gate's records.")
@click.option("--since", help="Only records at or after this time (Unix seconds or ISO 8601).")
@click.option("--until", help="Only records before this time (Unix seconds or ISO 8601).")
@click.option("--decision", type=click.Choice(["accept", "reject"]), help="Only these.")
@click.option("--reason", help="Only records with this reason code, e.g. revoked.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Stop after this many records (resume later)."
)
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Records asked for per request.",
)
@connection_options
def pull(out, fmt, cursor_file, gate, since, until, decision, reason, limit, page_size, **kwargs):
    """Pull scan records from the collector, as CSV or JSON Lines.

    With --cursor-file, a pull continues where the last one stopped: the cursor is saved
    atomically after every page, and an interrupted pull resumes without repeating or
    skipping a record (CSV: the header is written once, later pulls append). A cursor file
    belongs to one set of filters and one format. A progress counter shows on standard
    error when it is a terminal.

    Example: gate-office pull --out scans.csv --cursor-file scans.cursor --since 2026-05-01

    Example: gate-office pull --format jsonl --gate north-01 --decision reject
    """
    query = {
        "gate": gate,
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
        "decision": decision,
        "reason": reason,
    }
    query = {name: value for name, value in query.items() if value is not None}
    saved = PullState.read(cursor_file) if cursor_file is not None else None
    if saved is not None and (saved.query != query or saved.format != fmt):
        raise SyncError(
            f"{cursor_file} belongs to another pull (format {saved.format}, filters "
            f"{saved.query or 'none'}); use the same options or another --cursor-file"
        )
    state = saved or PullState(query=query, format=fmt)
    writer = ScanWriter(out, state, resumed=saved is not None)
    progress = sys.stderr.isatty()
    count = 0
    try:
        with _connection(kwargs).open() as office:
            for records in _pages(office, state, limit, page_size):
                writer.write(records)
                count += len(records)
                state.records += len(records)
                if cursor_file is not None:
                    state.write(cursor_file)
                if progress:
                    total = f"/{limit}" if limit else ""
                    click.echo(f"\rpulled {count}{total} records", err=True, nl=False)
    finally:
        writer.close()
        if progress and count:
            click.echo(err=True)
    where = out or "standard output"
    resumed = f", continuing from {cursor_file}" if saved is not None else ""
    kept = f"; cursor saved in {cursor_file}" if cursor_file else ""
    click.echo(f"{count} scan record(s) written to {where}{resumed}{kept}", err=True)


main = entry_point(cli, "gate-office")
