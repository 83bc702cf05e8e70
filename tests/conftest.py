"""Shared fixtures: a provisioned gate in a temporary directory, and the console scripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers_cli import run_script

from keys.documents import trust_bundle
from keys.keyfile import KeyPair, save_key


@dataclass
class ProvisionedGate:
    """An office root, an issuer and a gate whose state holds a trust bundle (version 1)."""

    dir: Path
    config: Path
    root: KeyPair
    issuer: KeyPair

    def gatectl(self, *args: str, input: str | None = None):
        return run_script("gatectl", "--config", str(self.config), *args, input=input)


def write_gate_config(path: Path, root: KeyPair, zone: str = "A", extra: str = "") -> Path:
    path.write_text(
        "[gate]\n"
        'id = "test-gate"\n'
        f'zone = "{zone}"\n'
        'state_dir = "state"\n'
        f'root_public_key = "{root.public_key.hex()}"\n' + extra
    )
    return path


@pytest.fixture
def gate(tmp_path: Path) -> ProvisionedGate:
    root, issuer = KeyPair.generate(), KeyPair.generate()
    save_key(root, tmp_path / "root.key")
    save_key(issuer, tmp_path / "issuer.key")
    bundle = trust_bundle([{"name": "metro", "public_key": issuer.public_key}], root, 1)
    (tmp_path / "trust-v1.cose").write_bytes(bundle)
    config = write_gate_config(tmp_path / "gate.toml", root)
    provisioned = ProvisionedGate(tmp_path, config, root, issuer)
    result = provisioned.gatectl("import", str(tmp_path / "trust-v1.cose"))
    assert result.returncode == 0, result.stderr
    return provisioned
