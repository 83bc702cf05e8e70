"""Running our console scripts from tests, as a user or technician would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_script(name: str, *args: str, input: str | None = None, env=None, timeout=60):
    """Run one of our console scripts and capture its output."""
    return subprocess.run(
        [str(BIN / name), *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
