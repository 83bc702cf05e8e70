"""sudo gatectl leaves nothing in the state directory that gated could not open."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import write_gate_config
from helpers_cli import run_script

from gate.config import load_config
from gate.privileges import become_state_owner
from gate.state import GateState
from keys.documents import trust_bundle
from keys.keyfile import KeyPair

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")


@pytest.fixture
def shared_dir():
    # pytest's tmp_path is private to root (0700); the gate user must reach its state.
    path = Path(tempfile.mkdtemp(prefix="gate-privileges-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _in_child(work) -> int:
    """Run ``work`` in a forked child (whose privileges may change); its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _interpreter_usable_by(user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can run this Python (not so when it lives in root's home)."""

    def probe() -> int:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        with open(os.__file__, "rb"):
            pass
        return 0 if os.access(sys.executable, os.X_OK) else 1

    return _in_child(probe) == 0


@pytest.fixture
def owned_state(shared_dir):
    """A gate whose state directory belongs to ``nobody``, and a trust bundle to import."""
    nobody = pwd.getpwnam("nobody")
    root, issuer = KeyPair.generate(), KeyPair.generate()
    config = write_gate_config(shared_dir / "gate.toml", root)
    state = shared_dir / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    bundle = shared_dir / "trust-v1.cose"
    bundle.write_bytes(trust_bundle([{"name": "metro", "public_key": issuer.public_key}], root, 1))
    bundle.chmod(0o644)
    return nobody, config, state, bundle


def test_become_state_owner_switches_user_and_groups(owned_state):
    nobody, config, state, bundle = owned_state

    def work() -> int:
        assert become_state_owner(state) == "nobody"
        assert (os.getuid(), os.geteuid(), os.getegid()) == (nobody.pw_uid,) * 2 + (nobody.pw_gid,)
        with GateState(load_config(config)) as gate_state:
            gate_state.import_document(bundle)
        return 0

    assert _in_child(work) == 0
    owners = {path.name: path.stat().st_uid for path in state.rglob("*")}
    assert "gate.db" in owners and set(owners.values()) == {nobody.pw_uid}, owners


def test_gatectl_as_root_writes_as_the_state_owner(owned_state):
    nobody, config, state, bundle = owned_state
    if not _interpreter_usable_by(nobody):
        pytest.skip("this Python lives where the nobody user cannot run it (root's home)")

    assert run_script("gatectl", "--config", str(config), "import", str(bundle)).returncode == 0
    provisioned = run_script("gatectl", "--config", str(config), "provision", "--json")
    assert provisioned.returncode == 0, provisioned.stderr
    key_file = Path(json.loads(provisioned.stdout)["key_file"])
    status = run_script("gatectl", "--config", str(config), "status", "--json")
    assert json.loads(status.stdout)["trust_bundle"]["version"] == 1

    written = [path for path in state.rglob("*")]
    assert state / "gate.db" in written and key_file in written
    owners = {path.name: path.stat().st_uid for path in written}
    assert set(owners.values()) == {nobody.pw_uid}, owners


def test_a_state_directory_owned_by_root_stays_root(gate):
    result = gate.gatectl("status", "--json")
    assert result.returncode in (0, 5)
    assert (gate.dir / "state" / "gate.db").stat().st_uid == 0
