"""gated: the gate daemon.

This first version takes codes from standard input, one per line, as a keyboard-wedge
scanner or a test harness delivers them, decides on each with consumption, and prints one
JSON decision per line. Camera, serial and NFC readers and the turnstile come with the
drivers. The configuration is validated before anything is read.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click

from gate.cli_errors import entry_point
from gate.config import CONFIG_ENV, default_config_path, load_config
from gate.errors import StoreError
from gate.state import GateState


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Gate configuration file (default: ${CONFIG_ENV}, else {default_config_path()}).",
)
@click.option("--check-config", is_flag=True, help="Validate the configuration and exit.")
def cli(config: Path | None, check_config: bool) -> None:
    """Run the gate: read codes from stdin (one per line), print a JSON decision for each.

    Example: gated --config /etc/gated/gated.toml < codes.txt
    """
    settings = load_config(config)
    if check_config:
        click.echo(f"{settings.path}: configuration ok (gate {settings.gate_id})")
        return
    signal.signal(signal.SIGTERM, _stop)
    with GateState(settings) as state:
        validator = state.validator()
        for line in sys.stdin:
            text = line.rstrip("\r\n")  # only the terminator: base45 may end in a space
            if not text:
                continue
            started = time.perf_counter()
            try:
                record = validator.decide(text).to_json()
            except StoreError as err:
                # The gate cannot record an admission, so it cannot admit: stay closed, say
                # why, and keep serving.
                record = {"decision": "reject", "reason": "gate_fault", "detail": str(err)}
            record |= {
                "gate_id": settings.gate_id,
                "source": "stdin",
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            print(json.dumps(record), flush=True)


main = entry_point(cli, "gated")
