"""How our command-line tools report failures: ``PROG: error: <what to do>`` and exit 1.

A traceback is shown only with ``--debug`` (or ``GATE_DEBUG=1``). Click's own usage errors
keep click's wording and exit code 2.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

import click

from gate.errors import GateError

EXPECTED_ERRORS = (GateError, ValueError, OSError)


def run_cli(command: click.Command, prog: str, argv: list[str] | None = None) -> None:
    """Run a click command, turning our errors into one clear line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GATE_DEBUG") == "1"
    if "--debug" in argv:
        argv.remove("--debug")
    try:
        result = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except EXPECTED_ERRORS as err:
        if debug:
            traceback.print_exc()
        click.echo(f"{prog}: error: {err}", err=True)
        sys.exit(1)
    # With standalone_mode off, click returns ctx.exit()'s code instead of exiting.
    sys.exit(result if isinstance(result, int) else 0)


def entry_point(command: click.Command, prog: str) -> Callable[[], None]:
    """A console-script entry point for ``command``."""

    def main() -> None:
        run_cli(command, prog)

    return main
