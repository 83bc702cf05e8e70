"""gatectl run as root acts as the user that owns the gate's state directory.

A technician types ``sudo gatectl ...``. Were it to stay root, SQLite would leave root-owned
``gate.db-wal``/``-shm`` files, and ``provision`` or ``import`` root-owned keys and bundles,
which gated (running as the ``gated`` user) then cannot open. So gatectl, once it knows the
state directory, switches to its owner, with that user's supplementary groups (video,
dialout, gpio: the device tests need them).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from gate.config import GateConfig, default_config_path, load_config
from gate.errors import GateError


def become_state_owner(state_dir: Path) -> str | None:
    """Switch a root process to the owner of ``state_dir``; returns the user name it became,
    or None when nothing changed (not root, or the directory is missing or root's)."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(state_dir)
    except OSError:
        return None
    if info.st_uid == 0:
        return None
    try:
        user = pwd.getpwuid(info.st_uid)
        groups = os.getgrouplist(user.pw_name, user.pw_gid)
        os.setgroups(groups)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    except KeyError:
        raise GateError(
            f"{state_dir} belongs to uid {info.st_uid}, which has no user; "
            "fix its owner (chown -R gated:gated)"
        ) from None
    except OSError as err:
        raise GateError(f"cannot switch to the owner of {state_dir}: {err}") from err
    os.environ["HOME"] = user.pw_dir
    return user.pw_name


def load_as_state_owner(path: Path | None) -> GateConfig:
    """The gate's configuration (``path``, else the default); run as root, the process then
    becomes the state directory's owner."""
    config = load_config(path or default_config_path())
    become_state_owner(config.state_dir)
    return config
