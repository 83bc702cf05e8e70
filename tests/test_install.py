"""systemd/install.sh stages a whole gate into a temporary root (DESTDIR), twice.

The script runs for real: systemd-sysusers and systemd-tmpfiles write the staging root's
/etc/passwd, /etc/group and directories, `python3 -m venv` makes the venv and pip builds and
installs the project into it, systemctl --root enables the unit. Only the network is left out:
pip gets ``--no-deps --no-build-isolation --no-index`` (Debian's python3-wheel lets setuptools
build the wheel offline), and the project's dependencies come from this test run's own
environment through PYTHONPATH, as `--system-site-packages` would bring apt's on a gate.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import site
import stat
import subprocess
import sys
from pathlib import Path

import nacl.signing
import pytest

from gate.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "systemd" / "install.sh"
SYSTEM_PYTHON = Path("/usr/bin/python3")
PIP_ARGS = "--no-deps --no-build-isolation --no-index"
IS_ROOT = os.geteuid() == 0
# What the project and the packaging tools are: never taken from this environment.
NOT_DEPENDENCIES = (
    "gatevalidator",
    "__editable__",
    "_distutils_hack",
    "distutils-precedence",
    "pip",
    "setuptools",
    "pkg_resources",
    "wheel",
)
PROJECT_PACKAGES = {"gate", "drivers", "sync", "keys"}


def skip_unless_installable() -> None:
    """Skip with the reason when this machine cannot run the script offline."""
    tools = ("systemd-sysusers", "systemd-tmpfiles", "systemctl")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (systemd)")
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} not installed (apt-get install python3-venv)")
    probe = subprocess.run(
        [
            str(SYSTEM_PYTHON),
            "-c",
            "import ensurepip, sys, venv, wheel; print('%d.%d' % sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"{SYSTEM_PYTHON} cannot build offline (apt-get install python3-venv python3-wheel)"
        )
    ours = "{}.{}".format(*sys.version_info[:2])
    if probe.stdout.strip() != ours:
        pytest.skip(
            f"{SYSTEM_PYTHON} is Python {probe.stdout.strip()}, the test environment {ours}: "
            "its dependencies would not load"
        )


def dependencies_dir(tmp: Path) -> Path:
    """This environment's third-party packages, without the project and pip's own tools."""
    deps = tmp / "dependencies"
    deps.mkdir()
    for sitedir in map(Path, site.getsitepackages()):
        if not sitedir.is_dir():  # Debian's interpreter also lists local/lib/.../dist-packages
            continue
        for entry in sitedir.iterdir():
            if entry.name.startswith(NOT_DEPENDENCIES) or entry.name in PROJECT_PACKAGES:
                continue
            if not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    return deps


def source_copy(tmp: Path) -> Path:
    """The checkout as the script needs it, so concurrent edits cannot change it mid-test."""
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("gate", "drivers", "sync", "keys", "systemd", "docs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    return src


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: type and mode, owner, size, mtime, link target or content hash."""
    seen = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            detail = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            detail = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            detail = ""
        seen[str(path.relative_to(root))] = (
            info.st_mode,
            info.st_uid,
            info.st_gid,
            info.st_size,
            info.st_mtime_ns,
            detail,
        )
    return seen


def ids(dest: Path, table: str) -> dict[str, tuple[int, list[str]]]:
    """name → (id, members) from the staging root's /etc/passwd or /etc/group."""
    result = {}
    for line in (dest / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        members = fields[3].split(",") if table == "group" and fields[3] else []
        result[fields[0]] = (int(fields[2]), members)
    return result


class Staged:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.src = source_copy(tmp)
        self.deps = dependencies_dir(tmp)
        self.env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "VIRTUAL_ENV")}
        self.env.update(PYTHONPATH=str(self.deps), PIP_NO_CACHE_DIR="1")

    def install(self, dest: Path, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["sh", str(self.src / "systemd" / "install.sh"), "--destdir", str(dest), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def venv_run(self, dest: Path, script: str, *args: str) -> subprocess.CompletedProcess:
        """A console script of the staged venv, run by the venv's own Python (its #! names
        the gate's path, /opt/gate/venv, not the staging root's)."""
        venv = dest / "opt" / "gate" / "venv"
        return subprocess.run(
            [str(venv / "bin" / "python"), str(venv / "bin" / script), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            cwd=self.tmp,
        )


ROOT_KEY = nacl.signing.SigningKey.generate().verify_key.encode().hex()


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """One gate staged with its values, a technician's edit, then the same install again."""
    skip_unless_installable()
    tmp = tmp_path_factory.mktemp("install")
    staged = Staged(tmp)
    dest = tmp / "dest"
    args = ("--pip-args", PIP_ARGS, "--gate-id", "north-01", "--zone", "A")
    staged.first = staged.install(dest, *args, "--root-public-key", ROOT_KEY)
    config = dest / "etc" / "gate" / "gate.toml"
    config.write_text(config.read_text() + "# the technician's note\n")
    staged.before = snapshot(dest)
    staged.second = staged.install(dest, *args, "--root-public-key", ROOT_KEY)
    staged.after = snapshot(dest)
    staged.dest = dest
    return staged


def test_help_describes_the_options():
    result = subprocess.run(["sh", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for option in ("--destdir", "--prefix", "--source", "--pip-args", "--wheelhouse"):
        assert option in result.stdout
    for option in ("--no-enable", "--collector", "Examples:"):
        assert option in result.stdout


def test_an_unknown_option_is_an_error():
    result = subprocess.run(["sh", str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "install.sh: error: unknown argument '--bogus'" in result.stderr


def test_files_exist_with_their_modes(staged):
    dest = staged.dest
    assert stat.S_IMODE((dest / "etc/gate/gate.toml").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "etc/gate").stat().st_mode) == 0o750
    assert stat.S_IMODE((dest / "var/lib/gate").stat().st_mode) == 0o750
    for path in (
        "etc/systemd/system/gated.service",
        "etc/sysusers.d/gate.conf",
        "etc/tmpfiles.d/gate.conf",
        "etc/udev/rules.d/99-gate.rules",
    ):
        assert stat.S_IMODE((dest / path).stat().st_mode) == 0o644, path
    assert not (dest / "etc/systemd/system/gate-collector.service").exists()
    # No key yet: the device key is made by `gatectl provision`, on the gate.
    assert list((dest / "var/lib/gate").iterdir()) == []
    assert not [p for p in (dest / "etc").rglob("*") if p.suffix in (".key", ".token")]


def test_ownership_is_the_gate_users(staged):
    if not IS_ROOT:
        pytest.skip("not root: the script cannot chown, systemd-tmpfiles does it at boot")
    dest = staged.dest
    uid, _ = ids(dest, "passwd")["gated"]
    gid, _ = ids(dest, "group")["gated"]
    owners = {
        "etc/gate": (0, gid),
        "etc/gate/gate.toml": (0, gid),
        "var/lib/gate": (uid, gid),
        "etc/systemd/system/gated.service": (0, 0),
        "opt/gate/venv/bin/gated": (0, 0),
    }
    for path, owner in owners.items():
        info = (dest / path).stat()
        assert (info.st_uid, info.st_gid) == owner, path


def test_the_gate_user_is_in_its_device_groups(staged):
    groups = ids(staged.dest, "group")
    passwd = (staged.dest / "etc/passwd").read_text()
    assert "gated:x:" in passwd and ":/var/lib/gate:/usr/sbin/nologin" in passwd
    for group in ("gpio", "dialout", "video"):
        assert "gated" in groups[group][1], group
    # A bare staging root gets Debian's fixed ids for these two.
    assert groups["dialout"][0] == 20 and groups["video"][0] == 44


def test_gated_is_enabled(staged):
    wants = staged.dest / "etc/systemd/system/multi-user.target.wants/gated.service"
    assert wants.is_symlink()
    assert os.readlink(wants) == "/etc/systemd/system/gated.service"


def test_the_unit_runs_the_venvs_gated(staged):
    shipped = (staged.src / "systemd/gated.service").read_text().splitlines()
    installed = (staged.dest / "etc/systemd/system/gated.service").read_text().splitlines()
    assert "ExecStart=/opt/gate/venv/bin/gated" in installed
    assert "ExecStartPre=/opt/gate/venv/bin/gated --check-config" in installed
    # Nothing but the Exec lines differs from the shipped unit (the default prefix).
    assert [a for a in shipped if not a.startswith("Exec")] == [
        b for b in installed if not b.startswith("Exec")
    ]
    gated = staged.dest / "opt/gate/venv/bin/gated"
    assert gated.read_text().splitlines()[0] == "#!/opt/gate/venv/bin/python"
    # Documentation= names the technician's guide, installed beside the venv.
    assert "Documentation=file:/opt/gate/share/doc/operations.md" in installed
    guide = staged.dest / "opt/gate/share/doc/operations.md"
    assert guide.read_text() == (staged.src / "docs/operations.md").read_text()


def test_the_installed_config_parses(staged):
    config = load_config(staged.dest / "etc/gate/gate.toml")
    assert (config.gate_id, config.zone) == ("north-01", "A")
    assert config.root_public_key.hex() == ROOT_KEY
    assert config.state_dir == Path("/var/lib/gate")
    assert config.serial.url == "/dev/gate-scanner"
    assert config.nfc.url == "/dev/gate-nfc"


def test_the_venvs_console_scripts_run(staged):
    config = str(staged.dest / "etc/gate/gate.toml")
    result = staged.venv_run(staged.dest, "gated", "--check-config", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "configuration ok (gate north-01)" in result.stdout
    result = staged.venv_run(staged.dest, "gatectl", "--help")
    assert result.returncode == 0, result.stderr
    assert "provision" in result.stdout
    # ... and they run the project installed in the venv, not this checkout.
    venv_python = staged.dest / "opt/gate/venv/bin/python"
    where = subprocess.run(
        [str(venv_python), "-c", "import gate; print(gate.__file__)"],
        capture_output=True,
        text=True,
        env=staged.env,
        cwd=staged.tmp,
    )
    assert where.stdout.startswith(str(staged.dest / "opt/gate/venv/lib/")), where


def test_a_second_run_changes_nothing(staged):
    assert staged.after == staged.before
    assert "# the technician's note" in (staged.dest / "etc/gate/gate.toml").read_text()
    out = staged.second.stdout
    assert "kept       /etc/gate/gate.toml (never overwritten)" in out
    assert "--gate-id, --zone and --root-public-key apply only to a new" in out
    for action in ("created", "updated", "installed", "enabled "):
        assert f"  {action}" not in out, out


def test_another_prefix_without_values_or_enabling(staged):
    dest = staged.tmp / "dest-srv"
    result = staged.install(dest, "--pip-args", PIP_ARGS, "--prefix", "/srv/gate", "--no-enable")
    unit = (dest / "etc/systemd/system/gated.service").read_text()
    assert "\nExecStart=/srv/gate/venv/bin/gated\n" in unit
    assert "\nDocumentation=file:/srv/gate/share/doc/operations.md\n" in unit
    assert (dest / "srv/gate/venv/bin/gated").exists()
    assert not (dest / "etc/systemd/system/multi-user.target.wants").exists()
    # Unconfigured, the gate must not start: gated --check-config names what is missing.
    text = (dest / "etc/gate/gate.toml").read_text()
    assert 'id = ""' in text and 'root_public_key = ""' in text
    assert "is not complete yet: gate.id: must be 1 to 64 characters" in result.stdout
