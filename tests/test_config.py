"""The gate configuration: every bad key gives a clear error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_cli import run_script

from gate.config import load_config
from gate.errors import ConfigError

ROOT = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
GOOD = f"""
[gate]
id = "north-01"
zone = "A"
state_dir = "state"
root_public_key = "{ROOT}"
clock_skew = 10

[antipassback]
group = "north-hall"
window = 300
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gated.toml"
    path.write_text(text)
    return path


def test_good_configuration_is_typed(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.gate_id == "north-01"
    assert config.zone == "A"
    assert config.state_dir == (tmp_path / "state").resolve()
    assert config.root_public_key.hex() == ROOT
    assert (config.clock_skew, config.passback_group, config.passback_window) == (
        10,
        "north-hall",
        300,
    )


def test_defaults(tmp_path):
    text = GOOD.split("clock_skew")[0]
    config = load_config(write(tmp_path, text))
    assert config.clock_skew == 30
    assert config.passback_group == "north-01"
    assert config.passback_window == 600


def test_root_key_in_base64(tmp_path):
    b64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    config = load_config(write(tmp_path, GOOD.replace(ROOT, b64)))
    assert config.root_public_key.hex() == ROOT


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (("[gate]", "[gaet]"), "gaet", "unknown section"),
        (('zone = "A"', 'zone = "A"\nzoen = "B"'), "gate.zoen", "unknown key; accepted"),
        (('id = "north-01"\n', ""), "gate.id", "missing; it is required"),
        (('zone = "A"', "zone = 7"), "gate.zone", "expected a string"),
        (('zone = "A"', 'zone = ""'), "gate.zone", "1 to 64 characters"),
        ((ROOT, ROOT[:-2]), "gate.root_public_key", "64 hex digits"),
        ((ROOT, "zz" * 32), "gate.root_public_key", "raw Ed25519 public key"),
        (("clock_skew = 10", "clock_skew = -1"), "gate.clock_skew", "0 to 604800"),
        (("clock_skew = 10", "clock_skew = true"), "gate.clock_skew", "whole number"),
        (("clock_skew = 10", 'clock_skew = "10"'), "gate.clock_skew", "whole number"),
        (
            ("clock_skew = 10", 'clock_skew = 10\nrequire_ntp = "yes"'),
            "gate.require_ntp",
            "true or false",
        ),
        (("window = 300", "window = 9999999"), "antipassback.window", "0 to 604800"),
        (('group = "north-hall"', 'group = " "'), "antipassback.group", "must not be empty"),
        (('state_dir = "state"', 'state_dir = ""'), "gate.state_dir", "directory path"),
    ],
)
def test_each_bad_key_is_named(tmp_path, change, key, message):
    old, new = change
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: {key}: ")
    assert message in text


def test_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError, match=r"no such configuration file \(set --config"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "garbage",
    [b"[gate\nid=", b"\xff\xfe\x00binary", b"gate = 3", b"[[gate]]\nid='x'", b""],
)
def test_garbage_files_are_clear_errors(tmp_path, garbage):
    path = tmp_path / "gated.toml"
    path.write_bytes(garbage)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_gated_reports_bad_configuration_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("[gate]", "[gaet]"))
    result = run_script("gated", "--config", str(path), "--check-config")
    assert result.returncode == 1
    assert result.stderr.startswith(f"gated: error: {path}: gaet: unknown section")
    assert "Traceback" not in result.stderr


def test_the_annotated_example_has_every_key_and_is_valid(tmp_path):
    import tomllib

    from gate.config import SECTIONS, example, parse_config

    data = tomllib.loads(example())
    for section, keys in SECTIONS.items():
        assert section in data, f"[{section}] missing from the example"
        missing = keys - set(data[section])
        assert not missing, f"[{section}] keys missing from the example: {sorted(missing)}"
    config = parse_config(data, tmp_path / "gate.toml")
    assert config.camera and config.serial and config.nfc and config.sync and config.gpio


def test_docs_configuration_is_generated_from_the_schema():
    from gate.config import reference_markdown

    docs = Path(__file__).parent.parent / "docs" / "configuration.md"
    assert docs.read_text() == reference_markdown(), (
        "docs/configuration.md is stale: python -m gate.config > docs/configuration.md"
    )
