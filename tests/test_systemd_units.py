"""The systemd units pass systemd-analyze verify, and gated.service's exposure stays low."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def localised(unit: Path, tmp_path: Path) -> Path:
    """The unit with /opt/gate/venv pointing at this checkout, whose .venv exists."""
    venv = Path(sys.executable).parent.parent
    text = unit.read_text().replace("/opt/gate/venv", str(venv))
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_verifies(unit, tmp_path):
    result = subprocess.run(
        [ANALYZE, "verify", str(localised(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "gated.service" not in result.stderr or not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_exposure_is_at_most_3(unit):
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0


def test_gated_unit_uses_the_notify_protocol_and_a_watchdog():
    text = (ROOT / "systemd" / "gated.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=gated",
        "ReadWritePaths=/var/lib/gate",
        "CapabilityBoundingSet=\n",
    ):
        assert line in text
