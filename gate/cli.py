"""gatectl: the technician's diagnostics tool at the gate.

Exit codes: 0 success (``check``: accepted), 1 error (``selftest``: a check failed), 2 usage
error, 3 ``check`` rejected, 4 a device test refused because gated holds the device, 5
``status`` found problems.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from gate.cli_errors import entry_point
from gate.config import CONFIG_ENV, GateConfig, default_config_path
from gate.errors import GateError
from gate.privileges import load_as_state_owner
from gate.revocations import MemoryRevocations
from gate.state import GateState, policy_for
from gate.store import LOG_FIELDS as LOG_COLUMNS
from gate.ticket import CTI_MAX, CTI_MIN, KID_SIZE
from gate.trust import TrustStore, parse_public_key
from gate.validator import Decision, Policy, Validator

EXIT_REJECTED = 3
EXIT_REFUSED = 4  # a device test refused: gated holds the device
EXIT_PROBLEMS = 5  # status found problems


def _config_path(ctx: click.Context) -> Path:
    return ctx.obj or default_config_path()


def gate_config(ctx: click.Context) -> GateConfig:
    """The gate's configuration; run as root, gatectl then becomes the state's owner."""
    return load_as_state_owner(_config_path(ctx))


@click.group()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Gate configuration file (default: ${CONFIG_ENV}, else {default_config_path()}).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Diagnostics for a ticket gate: check tickets, import keys and revocations, show status.

    Add --debug to any command to see a traceback on errors.
    """
    ctx.obj = config


def _revoked_entry(text: str) -> tuple[bytes | None, bytes]:
    kid_text, _, cti_text = text.rpartition(":")
    try:
        kid = bytes.fromhex(kid_text) if kid_text else None
        cti = bytes.fromhex(cti_text)
    except ValueError as err:
        raise click.BadParameter(f"{text!r}: expected CTI_HEX or KID_HEX:CTI_HEX") from err
    if (kid is not None and len(kid) != KID_SIZE) or not CTI_MIN <= len(cti) <= CTI_MAX:
        raise click.BadParameter(
            f"{text!r}: a ticket id is {CTI_MIN} to {CTI_MAX} bytes, a kid {KID_SIZE}"
        )
    return kid, cti


def _print_decision(decision: Decision) -> None:
    rows: list[tuple[str, Any]] = [
        ("decision", decision.decision),
        ("reason", decision.reason.value),
        ("detail", decision.detail),
        ("kid", decision.kid.hex() if decision.kid else "-"),
        ("key", f"{decision.key.name} ({decision.key.public_key.hex()})" if decision.key else "-"),
    ]
    for name, value in rows:
        click.echo(f"{name:9} {value}")
    if decision.claims is not None:
        click.echo("claims")
        for name, value in decision.claims.to_json().items():
            if value is not None:
                shown = ", ".join(value) if isinstance(value, list) else value
                if name in ("exp", "nbf", "iat"):
                    shown = (
                        f"{value} ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(value))})"
                    )
                click.echo(f"  {name:9} {shown}")


@cli.command()
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--zone", help="Decide as a gate in this zone (default: the gate's zone).")
@click.option("--at", "at", type=float, help="Decide at this Unix time (default: now).")
@click.option(
    "--trust",
    "trust_keys",
    multiple=True,
    help="Trust this raw Ed25519 public key (hex/base64) instead of the gate's trust store; "
    "the gate's state is then not used at all. Repeatable.",
)
@click.option(
    "--revoked",
    multiple=True,
    help="Treat CTI_HEX (any issuer) or KID_HEX:CTI_HEX as revoked, instead of the gate's "
    "revocation list. Repeatable.",
)
@click.pass_context
def check(ctx, text, as_json, zone, at, trust_keys, revoked) -> None:
    """Dry run: decide on TEXT without consuming anything. TEXT '-' reads one line from stdin.

    Prints the decision, the reason, the decoded claims, the kid and the key that verified.
    Exit code 0 when accepted, 3 when rejected. Put '--' before a TEXT that starts with '-'.

    Example: gatectl check --json --zone A --trust d75a98...511a -- 'GT1:RRQT 9P6...'
    """
    if text == "-":
        text = sys.stdin.readline().rstrip("\r\n")
    revocations = MemoryRevocations(map(_revoked_entry, revoked)) if revoked else None
    if trust_keys:
        try:
            keys = [parse_public_key(key) for key in trust_keys]
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--trust") from err
        validator = Validator(
            TrustStore.from_public_keys(keys),
            revocations or MemoryRevocations(),
            None,
            Policy(zone=zone),
        )
        decision = validator.decide(text, at, consume=False)
    else:
        with GateState(gate_config(ctx)) as state:
            decision = state.validator(zone, revocations).decide(text, at, consume=False)
    if as_json:
        click.echo(json.dumps(decision.to_json()))
    else:
        _print_decision(decision)
    ctx.exit(0 if decision.accepted else EXIT_REJECTED)


@cli.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list, one object a file.")
@click.pass_context
def import_(ctx, files, as_json) -> None:
    """Import signed trust bundles and revocation lists from files (a USB stick), in order.

    A document is refused if it is unsigned, not signed by the office root key, or not newer
    than the one held; the held one then stays in force. --json prints a list with one object
    a file: {"file", "imported": true, "kind", "version", "summary"} or {"file", "imported":
    false, "error"}. Exit code 1 if any file was refused, else 0.

    Example: gatectl import /media/usb/trust-v4.cose /media/usb/revocations-v9.cose
    """
    results: list[dict[str, Any]] = []
    with GateState(gate_config(ctx)) as state:
        for path in files:
            try:
                result = state.import_document(path)
            except GateError as err:
                results.append({"file": str(path), "imported": False, "error": str(err)})
                click.echo(f"gatectl: error: {path}: {err}", err=True)
            else:
                results.append(
                    {
                        "file": str(path),
                        "imported": True,
                        "kind": result.kind,
                        "version": result.version,
                        "summary": result.summary,
                    }
                )
                if not as_json:
                    click.echo(f"{path}: {result.kind} imported: {result.summary}")
    if as_json:
        click.echo(json.dumps(results))
    ctx.exit(0 if all(entry["imported"] for entry in results) else 1)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(abs(seconds), 86400)
    text = f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"
    return text if seconds >= 0 else f"in {text} (clock behind?)"


def _size(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return "-"


def _status_lines(info: dict[str, Any], config: GateConfig) -> list[str]:
    policy = policy_for(config)
    bundle, revocations = info["trust_bundle"], info["revocations"]
    daemon = info["daemon"]
    lines = [
        f"gate          {config.gate_id}, zone {config.zone}, anti-passback group "
        f"{policy.passback_group} ({policy.passback_window} s), software {info['version']}",
    ]
    if info["problems"]:
        lines.append(f"PROBLEMS      {len(info['problems'])} (details below; docs/operations.md)")
        lines.extend(f"  ! {problem}" for problem in info["problems"])
    else:
        lines.append("problems      none found")
    if daemon is None:
        lines.append("gated         has not run with this state directory")
    elif not daemon.get("running"):
        last = _age(daemon.get("age_seconds"))
        lines.append(f"gated         NOT RUNNING (last report {last} ago)")
    else:
        uptime = _age(daemon.get("uptime_seconds"))
        lines.append(
            f"gated         {daemon.get('gate')}, pid {daemon.get('pid')}, up {uptime}, "
            f"reported {_age(daemon.get('age_seconds'))} ago"
        )
        if daemon.get("emergency"):
            lines.append("  EMERGENCY   the emergency input holds the gate open")
        for name, device in (daemon.get("devices") or {}).items():
            reason = f": {device.get('reason')}" if device.get("reason") else ""
            lines.append(f"  {name:11} {device.get('state')}{reason}")
    lines.append(
        f"trust bundle  version {bundle['version'] or '-'}, issued {_age(bundle['age_seconds'])}"
        f" ago, {len(bundle['keys'])} key(s)"
    )
    if bundle["error"]:
        lines.append(f"  WARNING     {bundle['error']}")
    for key in bundle["keys"]:
        limits = []
        if key["zones"]:
            limits.append("zones " + ",".join(key["zones"]))
        if key["not_after"]:
            limits.append(time.strftime("until %Y-%m-%d", time.gmtime(key["not_after"])))
        lines.append(f"  key         {key['kid']} {key['name']} {' '.join(limits)}".rstrip())
    lines.append(
        f"revocations   version {revocations['version'] or '-'}, issued "
        f"{_age(revocations['age_seconds'])} ago, {revocations['tickets']} ticket(s), "
        f"{revocations['keys']} key(s)"
    )
    lines.append(f"admissions    {info['admissions']} recorded")
    log = info["scan_log"]
    way = "acknowledged by the collector" if config.sync else "exported (gatectl export)"
    lines.append(
        f"scan log      {log['last_seq']} record(s) logged, {log['not_handed_over']} not yet {way}"
    )
    sync = info.get("sync")
    if sync is None:
        lines.append("sync          not configured, or never ran")
    elif "error" in sync and len(sync) == 1:
        lines.append(f"sync          {sync['error']}")
    else:
        last = sync.get("last_success_at")
        ago = _age(time.time() - last) + " ago" if isinstance(last, int | float) else "never"
        lines.append(
            f"sync          {sync.get('state')}, last success {ago}, "
            f"backlog {sync.get('backlog')} record(s)"
        )
        if sync.get("last_error"):
            lines.append(f"  last error  {sync['last_error']}")
    clock = info["clock"]
    offset = clock["collector_offset"]
    lines.append(
        f"clock         {clock['utc']}, NTP {clock['ntp_detail']}, offset from collector "
        + ("unknown" if offset is None else f"{offset:+.3f} s")
    )
    disk = info["disk"]
    if "error" in disk:
        lines.append(f"disk          {disk['error']}")
    else:
        lines.append(
            f"disk          {_size(disk['free_bytes'])} free of {_size(disk['total_bytes'])}; "
            f"database {_size(disk['database_bytes'])} (log budget "
            f"{_size(disk['log_budget_bytes'])})"
        )
    lines += [
        f"config        {config.path}",
        f"state         {info['paths']['state_dir']}",
        f"database      {info['paths']['database']}",
    ]
    return lines


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx, as_json) -> None:
    """One screen: what is wrong first, then gated and each device, documents, sync, clock, disk.

    Safe while gated runs: it reads the database and the files gated writes every second.
    Exit code 0 when no problem was found, 5 when the PROBLEMS list is not empty.

    Example: gatectl status --json
    """
    config = gate_config(ctx)
    with GateState(config) as state:
        info = state.status()
    if as_json:
        click.echo(json.dumps(info))
    else:
        click.echo("\n".join(_status_lines(info, config)))
    ctx.exit(EXIT_PROBLEMS if info["problems"] else 0)


# The names drivers.camera.decoders.DECODER_NAMES accepts (tests check the two agree); the
# camera modules are imported only when the command runs, as gate/ imports no concrete driver.
SCAN_DECODERS = ("zxing", "pyzbar", "zxing+pyzbar")


def _shown(text: str) -> str:
    """``text`` on one line: control characters (CR, LF, ...) escaped, spaces kept."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


@cli.command(name="scan-image")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list, one object a file.")
@click.option(
    "--decoder",
    type=click.Choice(SCAN_DECODERS),
    default="zxing",
    show_default=True,
    help="QR decoder; zxing+pyzbar tries pyzbar when zxing-cpp finds nothing.",
)
@click.pass_context
def scan_image(ctx, files, as_json, decoder) -> None:
    """Decode the QR codes in image files (PNG, JPEG, ...) with the camera's decoders.

    A check of a printed ticket or a photo of one. Every code found is shown, GT1 or not;
    the gate's configuration is not used. --json prints a list with one object a file, in
    order: {"file": PATH, "codes": [TEXT, ...]}, plus "error" when the file could not be read.
    Exit code 1 if any file could not be read, else 0 (also when no code was found).

    Example: gatectl scan-image --json ticket-0001.png photo.jpg
    """
    from drivers.registry import load

    make_image_decoder = load("drivers.camera.scan:make_image_decoder")
    scan = load("drivers.camera.scan:scan_image")
    chosen = make_image_decoder(decoder)
    results: list[dict[str, Any]] = []
    for path in files:
        entry: dict[str, Any] = {"file": str(path), "codes": []}
        try:
            entry["codes"] = scan(path, chosen)
        except GateError as err:
            entry["error"] = str(err)
            click.echo(f"gatectl: error: {err}", err=True)
        results.append(entry)
        if not as_json and "error" not in entry:
            for code in entry["codes"]:
                click.echo(f"{path}: {_shown(code)}")
            if not entry["codes"]:
                click.echo(f"{path}: no QR code found")
    if as_json:
        click.echo(json.dumps(results))
    ctx.exit(1 if any("error" in entry for entry in results) else 0)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def provision(ctx, as_json) -> None:
    """Make this gate's own Ed25519 key pair (once) and print what the office enrols.

    The private key stays in the state directory (mode 0600); running it again shows the
    existing identity and changes nothing.

    Example: gatectl provision
    """
    from sync.identity import device_key_path
    from sync.identity import provision as make_identity

    config = gate_config(ctx)
    pair, created = make_identity(config.state_dir)
    info = {
        "gate_id": config.gate_id,
        "public_key": pair.public_key.hex(),
        "kid": pair.kid.hex(),
        "key_file": str(device_key_path(config.state_dir)),
        "created": created,
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"gate        {info['gate_id']}")
    click.echo(f"public key  {info['public_key']}")
    click.echo(f"key file    {info['key_file']} ({'new' if created else 'already there'})")
    click.echo(f"enrol it at the office: gate-office enrol {info['gate_id']} {info['public_key']}")


def _when_option(value: str | None) -> float | None:
    if value is None:
        return None
    from keys.mint import parse_time

    return float(parse_time(value, "time"))


def _log_row(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in record.items()}


def _print_log_line(record: dict[str, Any]) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["at"]))
    if record["kind"] == "decision":
        latency = record.get("latency_ms")
        shown = f"{latency:7.1f} ms" if latency is not None else "         "
        click.echo(
            f"{record['seq']:>7} {when} {record['source'] or '-':7} {record['decision']:6} "
            f"{record['reason']:13} {shown}  {record.get('detail') or ''}"
        )
    else:
        click.echo(
            f"{record['seq']:>7} {when} {record['source'] or '-':7} event  "
            f"{record['kind']:13}             {record.get('detail') or ''}"
        )


log_filters = [
    click.option("--since", help="From this time (Unix seconds or ISO 8601, local time UTC)."),
    click.option("--until", help="Before this time."),
    click.option("--decision", type=click.Choice(["accept", "reject"])),
    click.option("--reason", help="A reason code, e.g. expired, or gate_fault."),
    click.option("--kind", help="decision, or an event: boot, device_failed, annulled, ..."),
]


def _with_log_filters(function):
    for option in reversed(log_filters):
        function = option(function)
    return function


@cli.command()
@_with_log_filters
@click.option("--limit", default=100, show_default=True, help="At most this many records.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write CSV to this file (a USB stick) instead of printing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def scans(ctx, since, until, decision, reason, kind, limit, csv_file, as_json) -> None:
    """Query the gate's own scan log: decisions and events, oldest first.

    Example: gatectl scans --since 2026-11-25T06:00 --reason expired --csv /media/usb/scans.csv
    """
    import csv

    with GateState(gate_config(ctx)) as state:
        records = state.store.query_log(
            since=_when_option(since),
            until=_when_option(until),
            kind=kind,
            decision=decision,
            reason=reason,
            limit=limit,
        )
    rows = [_log_row(record) for record in records]
    if csv_file is not None:
        with open(csv_file, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["seq", *LOG_COLUMNS])
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f"{len(rows)} record(s) written to {csv_file}", err=True)
    elif as_json:
        click.echo(json.dumps(rows))
    else:
        for record in records:
            _print_log_line(record)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export(ctx, directory, as_json) -> None:
    """Hand an offline gate's scan log over on a USB stick, so that it may be pruned.

    Writes every record not exported before, with its hash chain, to one CSV file in
    DIRECTORY (GATE-scans-FIRST-LAST.csv), makes it durable, and only then marks the records
    exported: retention then prunes them as it prunes synced ones. For gates without [sync]
    only (a syncing gate's collector acknowledges its records). --json prints {"file",
    "records", "first_seq", "last_seq"}; "file" is null when there was nothing new.

    Example: gatectl export /media/usb
    """
    from gate.export import export_log

    with GateState(gate_config(ctx)) as state:
        result = export_log(state, directory)
    if as_json:
        click.echo(json.dumps(result))
    elif result["file"] is None:
        click.echo("nothing new to export: every record was exported before")
    else:
        click.echo(
            f"{result['records']} record(s), seq {result['first_seq']} to "
            f"{result['last_seq']}, written to {result['file']}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--count", type=int, help="Stop after this many records.")
@click.option("--last", default=5, show_default=True, help="Show this many past records first.")
@click.pass_context
def monitor(ctx, as_json, count, last) -> None:
    """Follow the gate's decisions and events live, as gated logs them (Ctrl-C stops).

    Example: gatectl monitor --last 20
    """
    shown = 0
    with GateState(gate_config(ctx)) as state:
        backlog = list(reversed(state.store.query_log(limit=last, newest_first=True)))
        after = backlog[-1]["seq"] if backlog else 0
        if not backlog:
            newest = state.store.query_log(limit=1, newest_first=True)
            after = newest[0]["seq"] if newest else 0
        pending = backlog
        try:
            while count is None or shown < count:
                for record in pending:
                    if as_json:
                        click.echo(json.dumps(_log_row(record)))
                    else:
                        _print_log_line(record)
                    sys.stdout.flush()
                    shown += 1
                    after = record["seq"]
                    if count is not None and shown >= count:
                        return
                time.sleep(0.2)
                pending = state.store.query_log(after_seq=after, limit=100)
        except KeyboardInterrupt:
            pass


main = entry_point(cli, "gatectl")

from gate.cli_device import selftest, snapshot  # noqa: E402

cli.add_command(selftest)
cli.add_command(snapshot)
