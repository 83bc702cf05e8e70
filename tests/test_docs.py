"""Every command has help with an example and is described in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gate.cli import cli as gatectl
from gate.daemon import cli as gated
from keys.cli import cli as gate_keys
from sync.collector.cli import cli as gate_collector
from sync.office import cli as gate_office

DOCS = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()


def commands():
    for prog, group in (
        ("gatectl", gatectl),
        ("gate-keys", gate_keys),
        ("gate-office", gate_office),
        ("gate-collector", gate_collector),
    ):
        for name, command in group.commands.items():
            yield prog, name, command
    yield "gated", None, gated


@pytest.mark.parametrize(("prog", "name", "command"), list(commands()))
def test_command_is_documented_and_has_help_with_example(prog, name, command):
    heading = f"### `{prog} {name}" if name else f"### `{prog}"
    assert heading in DOCS, f"{heading} missing from docs/cli.md"
    args = [name, "--help"] if name else ["--help"]
    group = {
        "gatectl": gatectl,
        "gate-keys": gate_keys,
        "gate-office": gate_office,
        "gate-collector": gate_collector,
        "gated": gated,
    }[prog]
    result = CliRunner().invoke(group, args, prog_name=prog)
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert isinstance(command, click.Command)


@pytest.mark.parametrize("name", sorted(gatectl.commands))
def test_every_gatectl_command_offers_json(name):
    """Scripts rely on --json everywhere; each command's output is parsed in its own tests."""
    options = {opt for param in gatectl.commands[name].params for opt in param.opts}
    assert "--json" in options, f"gatectl {name} has no --json"
