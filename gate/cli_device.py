"""``gatectl selftest`` and ``gatectl snapshot``: the technician's device commands.

Registered on the ``gatectl`` group at the bottom of :mod:`gate.cli`. Exit codes: 0 success,
1 a check failed (or an error), 2 usage error, 4 refused because gated holds the devices.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gate.config import GateConfig
from gate.privileges import load_as_state_owner
from gate.selftest import CHECKS, Options, escaped, run_selftest
from gate.snapshot import DEFAULT_WAIT, SnapshotRefused, take_snapshot

EXIT_REFUSED = 4


def _config(ctx: click.Context) -> GateConfig:
    return load_as_state_owner(ctx.obj)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _ask(question: str) -> bool:
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input: stop the whole selftest
        raise KeyboardInterrupt from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(CHECKS),
    help="Run only this check. Repeatable.",
)
@click.option("--skip", multiple=True, type=click.Choice(CHECKS), help="Leave this check out.")
@click.option(
    "--yes",
    is_flag=True,
    help="Pulse the relay, lamps and buzzer without asking whether they worked "
    "(reported as not confirmed).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0.5, 600),
    default=5.0,
    show_default=True,
    help="How long the camera and the scanner wait for a code.",
)
@click.pass_context
def selftest(ctx, as_json, only, skip, yes, seconds) -> None:
    """Check the gate's devices, database, clock and upstream link, one line a check.

    Checks: camera (frame rate, sharpness, brightness, and a QR code held in front of it),
    serial (the scanner's port; scan a code during the test), nfc (PN532 firmware), relay,
    leds, buzzer (pulsed; you are asked whether they worked), database (integrity), clock
    (NTP, offset from the collector), upstream (a signed request to the collector). While
    gated runs, device checks are refused. Exit code 0 when nothing failed, 1 when a check
    failed, 4 when device checks were refused because gated is running.

    Example: gatectl selftest --only camera --only serial --seconds 10
    """
    config = _config(ctx)
    names = [name for name in (only or CHECKS) if name not in skip]
    interactive = sys.stdin.isatty() and not yes
    options = Options(
        seconds=seconds,
        confirm=_ask if interactive else None,
        unconfirmed=yes,
        say=_say,
    )
    report = run_selftest(config, names, options)
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        for result in report.results:
            click.echo(f"{result.name:9} {result.status.upper():8} {result.detail}")
        counts = [
            f"{report.count(status)} {label}"
            for status, label in (
                ("pass", "passed"),
                ("fail", "failed"),
                ("skipped", "skipped"),
                ("refused", "refused"),
            )
            if report.count(status)
        ]
        verdict = {0: "OK", 1: "FAILED", 4: "REFUSED: gated is running"}[report.exit_code]
        click.echo(f"selftest {verdict}: {len(report.results)} check(s), {', '.join(counts)}")
    ctx.exit(report.exit_code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG file to write (default: snapshot-<UTC time>.png in the current directory).",
)
@click.option(
    "--wait",
    type=click.FloatRange(0.1, 60),
    default=DEFAULT_WAIT,
    show_default=True,
    help="While gated runs: how long to wait for it to hand over a frame.",
)
@click.pass_context
def snapshot(ctx, as_json, output, wait) -> None:
    """Save a camera frame as PNG with the QR codes found outlined, and print what was found.

    Prints the file, the frame's sharpness and brightness, and each code's text. While gated
    runs, the frame is taken from gated's camera reader; exit code 4 when gated hands over
    none in time.

    Example: gatectl snapshot --output /media/usb/camera.png
    """
    config = _config(ctx)
    try:
        result = take_snapshot(config, output, wait=wait)
    except SnapshotRefused as err:
        click.echo(f"gatectl: refused: {err}", err=True)
        ctx.exit(EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"file        {result['file']} ({result['width']}x{result['height']})")
    click.echo(f"sharpness   {result['sharpness']:g}")
    click.echo(f"brightness  {result['brightness']:g} of 255")
    if result["via"] == "gated":
        click.echo("frame       from gated's camera reader")
    if not result["codes"]:
        click.echo("codes       no QR code found")
    for code in result["codes"]:
        corners = " ".join(f"{x},{y}" for x, y in code["points"])
        click.echo(f"code        '{escaped(code['text'], 100)}' at {corners}")
