#!/bin/sh
# Install the ticket gate (gated) on Raspberry Pi OS Bookworm or Debian 12.
# What it creates and what to do next: docs/installation.md. Run it again at will: it changes
# only what differs, and never overwrites /etc/gate/gate.toml or the udev rules.
set -eu
umask 022

usage() {
    cat <<'EOF'
Usage: systemd/install.sh [OPTIONS]

Installs gated on Raspberry Pi OS Bookworm (or Debian 12): the gated system user in the
groups gpio, dialout and video; a Python venv with this project; /etc/gate/gate.toml from the
annotated example (only when absent); /var/lib/gate; the systemd unit, sysusers.d,
tmpfiles.d and udev rules; then enables gated.service. A second run changes nothing that is
already in place; the configuration and the udev rules are never overwritten.

Options:
  --destdir DIR       stage into DIR instead of / (default: $DESTDIR, else the real system);
                      no apt, no start, the unit is enabled offline (systemctl --root)
  --prefix DIR        install the venv as DIR/venv (default /opt/gate)
  --source DIR        the project checkout (default: the parent of this script's folder)
  --python PATH       the interpreter for the venv (default /usr/bin/python3)
  --no-system-site-packages
                      a venv that does not see apt's Python packages (python3-lgpio)
  --pip-args "ARGS"   extra arguments for pip install, split on spaces
  --wheelhouse DIR    install offline: pip --no-index --find-links DIR
  --reinstall         reinstall the project even if the source has not changed
  --gate-id ID        [gate] id, zone and root_public_key for a configuration written now;
  --zone ZONE         left empty otherwise (gated --check-config then says what is missing)
  --root-public-key KEY
  --collector         also install gate-collector.service (the office's collector)
  --no-enable         do not enable or start the units
  -h, --help          show this help

Examples:
  sudo systemd/install.sh --gate-id north-01 --zone A --root-public-key 9f3c...e2a1
  sudo systemd/install.sh --wheelhouse /media/usb/wheels
  systemd/install.sh --destdir /tmp/stage --no-enable
EOF
}

say() { printf '  %-10s %s\n' "$1" "$2"; }
note() { printf '  note: %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

DESTDIR=${DESTDIR:-}
PREFIX=/opt/gate
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=/usr/bin/python3
SYSTEM_SITE=yes
PIP_ARGS=
WHEELHOUSE=
REINSTALL=no
GATE_ID=
GATE_ZONE=
GATE_ROOT_KEY=
COLLECTOR=no
ENABLE=yes

while [ $# -gt 0 ]; do
    case $1 in
        --*=*)
            opt=${1%%=*} value=${1#*=}
            shift
            set -- "$opt" "$value" "$@"
            ;;
    esac
    case $1 in
        --destdir | --prefix | --source | --python | --pip-args | --wheelhouse | --gate-id | \
            --zone | --root-public-key)
            [ $# -ge 2 ] || die "$1 needs a value (see --help)"
            case $1 in
                --destdir) DESTDIR=$2 ;;
                --prefix) PREFIX=$2 ;;
                --source) SOURCE=$2 ;;
                --python) PYTHON=$2 ;;
                --pip-args) PIP_ARGS=$2 ;;
                --wheelhouse) WHEELHOUSE=$2 ;;
                --gate-id) GATE_ID=$2 ;;
                --zone) GATE_ZONE=$2 ;;
                --root-public-key) GATE_ROOT_KEY=$2 ;;
            esac
            shift 2
            ;;
        --no-system-site-packages) SYSTEM_SITE=no && shift ;;
        --reinstall) REINSTALL=yes && shift ;;
        --collector) COLLECTOR=yes && shift ;;
        --no-enable) ENABLE=no && shift ;;
        -h | --help) usage && exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Where everything goes. Paths as the gate sees them (what the units and the configuration
# name) are used with $DESTDIR in front of them to reach the staging root.

case $DESTDIR in
    "" | /) DESTDIR= ;;
    /*) DESTDIR=${DESTDIR%/} ;;
    *) DESTDIR=$(pwd)/${DESTDIR%/} ;;
esac
case $PREFIX in
    /*) PREFIX=${PREFIX%/} ;;
    *) die "--prefix must be an absolute path, not '$PREFIX'" ;;
esac
case $PREFIX in
    *[!A-Za-z0-9._/+-]*) die "--prefix may hold only letters, digits and . _ / + -" ;;
esac
if [ ! -f "$SOURCE/pyproject.toml" ] || [ ! -f "$SOURCE/systemd/gated.service" ]; then
    die "$SOURCE is not the project checkout (no pyproject.toml, systemd/gated.service); use --source"
fi
SOURCE=$(cd "$SOURCE" && pwd)
if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE is not a directory"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
    PIP_ARGS="--no-index --find-links $WHEELHOUSE $PIP_ARGS"
fi

VENV=$PREFIX/venv
DVENV=$DESTDIR$VENV
UNIT_DIR=/etc/systemd/system
CONFIG=/etc/gate/gate.toml
STATE_DIR=/var/lib/gate
UNIT_SRC=$SOURCE/systemd/gated.service
GATE_USER=$(sed -n 's/^User=//p' "$UNIT_SRC")
GATE_GROUP=$(sed -n 's/^Group=//p' "$UNIT_SRC")
GATE_GROUPS=$(sed -n 's/^SupplementaryGroups=//p' "$UNIT_SRC")
if [ -z "$GATE_USER" ] || [ -z "$GATE_GROUP" ]; then die "$UNIT_SRC names no User= and Group="; fi
grep -q "^u[[:space:]]\{1,\}${GATE_USER}[[:space:]]" "$SOURCE/systemd/sysusers.d/gate.conf" ||
    die "systemd/sysusers.d/gate.conf does not create $GATE_USER, the user gated.service runs as"

IS_ROOT=no
[ "$(id -u)" = 0 ] && IS_ROOT=yes
if [ -z "$DESTDIR" ] && [ "$IS_ROOT" = no ]; then
    die "installing on this system needs root: run it with sudo (or stage with --destdir DIR)"
fi
for tool in systemd-sysusers systemd-tmpfiles systemctl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (it comes with systemd)"
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
# Python puts the working directory first on sys.path for -c and -m: keep a checkout out of it.
case $PYTHON in
    /*) ;;
    */*) PYTHON=$(pwd)/$PYTHON ;;
esac
cd "$TMP"

# Run a systemd tool on the staging root, or on this system when there is none.
on_root() {
    tool=$1
    shift
    if [ -n "$DESTDIR" ]; then
        "$tool" --root="$DESTDIR" "$@"
    else
        "$tool" "$@"
    fi
}

# install_file SOURCE TARGET MODE: copy when absent or different. Sets $changed to yes/no.
install_file() {
    changed=no
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        say unchanged "${2#"$DESTDIR"}"
    else
        if [ -e "$2" ]; then say updated "${2#"$DESTDIR"}"; else say created "${2#"$DESTDIR"}"; fi
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2.new"
        mv -f "$2.new" "$2"
        changed=yes
    fi
    chmod "$3" "$2"
    if [ "$IS_ROOT" = yes ]; then chown 0:0 "$2"; fi
}

# The id of a user or group as the staging root's /etc/passwd or /etc/group has it.
id_in_root() {
    awk -F: -v name="$2" '$1 == name { print $3; exit }' "$DESTDIR/etc/$1"
}

if [ -n "$DESTDIR" ]; then
    echo "Staging the ticket gate into $DESTDIR (venv $VENV)"
else
    echo "Installing the ticket gate (venv $VENV)"
fi

# ---------------------------------------------------------------------------------------------
echo "System packages"

apt_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'
}

if [ -n "$DESTDIR" ] || [ "$IS_ROOT" = no ]; then
    note "skipped apt (staging root): the gate needs libzbar0 and python3-venv, and on a Pi python3-lgpio"
elif ! command -v apt-get >/dev/null 2>&1; then
    note "no apt-get: install libzbar0 and python3-venv yourself"
else
    wanted="libzbar0 python3-venv"
    # The GPIO library gpiozero uses on Bookworm; in Raspberry Pi OS's archive, not Debian's.
    if apt_installed python3-lgpio ||
        apt-cache policy python3-lgpio 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        wanted="$wanted python3-lgpio"
    else
        note "python3-lgpio is not in this system's archives: set [gpio] pin_factory to one you have"
    fi
    missing=
    for pkg in $wanted; do
        apt_installed "$pkg" || missing="$missing $pkg"
    done
    if [ -z "$missing" ]; then
        say unchanged "apt packages: $wanted"
    else
        say installing "apt packages:$missing"
        apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

# ---------------------------------------------------------------------------------------------
echo "User, groups and directories"

install_file "$SOURCE/systemd/sysusers.d/gate.conf" "$DESTDIR/etc/sysusers.d/gate.conf" 0644
install_file "$SOURCE/systemd/tmpfiles.d/gate.conf" "$DESTDIR/etc/tmpfiles.d/gate.conf" 0644

# Is $GATE_USER a member of group $1 in the root's /etc/group?
in_group() {
    awk -F: -v g="$1" -v u="$GATE_USER" \
        '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 }
         END { exit !found }' "$DESTDIR/etc/group" 2>/dev/null
}
users_ready() {
    [ -n "$(id_in_root passwd "$GATE_USER" 2>/dev/null)" ] || return 1
    [ -n "$(id_in_root group "$GATE_GROUP" 2>/dev/null)" ] || return 1
    for group in $GATE_GROUPS; do
        in_group "$group" || return 1
    done
}

# systemd-sysusers rewrites /etc/group for every `m` line, so it runs only when needed.
if users_ready; then
    say unchanged "user $GATE_USER, group $GATE_GROUP, member of $GATE_GROUPS"
else
    if [ -n "$DESTDIR" ] && [ ! -e "$DESTDIR/etc/group" ]; then
        # A bare staging root: give dialout and video the ids Debian's base-passwd gives them,
        # as on the gate (gpio has no fixed id: Raspberry Pi OS makes it as a system group).
        # One run with our lines inline: a second could not reopen the new gshadow unless root.
        set -- "g dialout 20 -" "g video 44 -"
        while IFS= read -r line; do
            case $line in "" | "#"*) continue ;; esac
            set -- "$@" "$line"
        done <"$DESTDIR/etc/sysusers.d/gate.conf"
        output=$(on_root systemd-sysusers --inline "$@" 2>&1) || die "systemd-sysusers failed: $output"
    else
        output=$(on_root systemd-sysusers gate.conf 2>&1) || die "systemd-sysusers failed: $output"
    fi
    [ -z "$output" ] || printf '%s\n' "$output" | sed 's/^/  sysusers   /'
    users_ready || die "after systemd-sysusers, $GATE_USER is still not in all of:" \
        "$GATE_GROUP $GATE_GROUPS (see $DESTDIR/etc/group and systemd/sysusers.d/gate.conf)"
    say ok "user $GATE_USER, group $GATE_GROUP, member of $GATE_GROUPS"
fi

dir_state() {
    stat -c '%a %u %g' "$DESTDIR/etc/gate" "$DESTDIR$STATE_DIR" 2>/dev/null || true
}
before=$(dir_state)
if output=$(on_root systemd-tmpfiles --create gate.conf 2>&1); then
    if [ "$(dir_state)" = "$before" ]; then
        say unchanged "/etc/gate 0750 root:$GATE_GROUP, $STATE_DIR 0750 $GATE_USER:$GATE_GROUP"
    else
        say ok "/etc/gate 0750 root:$GATE_GROUP, $STATE_DIR 0750 $GATE_USER:$GATE_GROUP"
    fi
elif [ "$IS_ROOT" = no ]; then
    # Not root: the directories are made with their modes, but not handed to gated. The
    # gate's systemd-tmpfiles-setup.service does that at boot from the same tmpfiles.d file.
    note "not root, so /etc/gate and $STATE_DIR stay owned by you until systemd-tmpfiles runs at boot"
else
    die "systemd-tmpfiles failed: $output"
fi
if [ ! -d "$DESTDIR/etc/gate" ] || [ ! -d "$DESTDIR$STATE_DIR" ]; then
    die "systemd-tmpfiles did not create /etc/gate and $STATE_DIR: $output"
fi

# ---------------------------------------------------------------------------------------------
echo "Python venv"

if [ -x "$DVENV/bin/python" ]; then
    say unchanged "$VENV"
else
    [ -x "$PYTHON" ] || PYTHON=$(command -v "$PYTHON" 2>/dev/null) ||
        die "no Python at $PYTHON: apt-get install python3-venv, or give --python"
    "$PYTHON" -c 'import ensurepip, sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$PYTHON is not Python 3.11+ with venv and ensurepip: apt-get install python3-venv"
    site_option=
    [ "$SYSTEM_SITE" = yes ] && site_option=--system-site-packages
    "$PYTHON" -m venv $site_option "$DVENV"
    say created "$VENV ($("$DVENV/bin/python" -c 'import sys; print(sys.version.split()[0])')${site_option:+, $site_option})"
fi

# The project is installed from a copy of the checkout, so a build leaves nothing in it, and
# again only when that copy (or how pip is asked) differs from what was installed last time.
mkdir "$TMP/src"
(cd "$SOURCE" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' \
    pyproject.toml README.md gate drivers sync keys) | tar -C "$TMP/src" -xf -
digest=$(
    cd "$TMP/src" && {
        find . -type f -exec sha256sum {} + | LC_ALL=C sort -k 2
        printf 'pip-args: %s\n' "$PIP_ARGS"
    } | sha256sum | cut -d ' ' -f 1
)
STAMP=$DVENV/.gatevalidator-installed
if [ "$REINSTALL" = no ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ]; then
    say unchanged "gatevalidator in $VENV (the source is what was installed)"
    PROJECT_CHANGED=no
else
    # shellcheck disable=SC2086 # PIP_ARGS is split on purpose
    "$DVENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS "$TMP/src" ||
        die "pip could not install the project (offline? use --wheelhouse DIR; see docs/installation.md)"
    if [ -n "$DESTDIR" ]; then
        # Scripts and activate name the venv by its path; make that the gate's, not the stage's.
        "$DVENV/bin/python" - "$DVENV" "$VENV" <<'PY'
import os
import sys

staged, final = sys.argv[1], sys.argv[2]
old, new = staged.encode(), final.encode()
paths = [os.path.join(staged, "bin", name) for name in os.listdir(os.path.join(staged, "bin"))]
for path in [*paths, os.path.join(staged, "pyvenv.cfg")]:
    if os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        data = f.read()
    if old not in data or b"\0" in data[:1024]:
        continue
    with open(path + ".new", "wb") as f:
        f.write(data.replace(old, new))
    os.chmod(path + ".new", os.stat(path).st_mode & 0o7777)
    os.replace(path + ".new", path)
PY
    fi
    printf '%s\n' "$digest" >"$STAMP"
    say installed "gatevalidator $("$DVENV/bin/python" -c 'import importlib.metadata as m; print(m.version("gatevalidator"))') into $VENV"
    PROJECT_CHANGED=yes
fi

# ---------------------------------------------------------------------------------------------
echo "Configuration"

GATE_GID=$(id_in_root group "$GATE_GROUP")
if [ -e "$DESTDIR$CONFIG" ]; then
    say kept "$CONFIG (never overwritten)"
    if [ -n "$GATE_ID$GATE_ZONE$GATE_ROOT_KEY" ]; then
        note "--gate-id, --zone and --root-public-key apply only to a new $CONFIG: edit it instead"
    fi
else
    cat >"$TMP/write_config.py" <<'PY'
"""Write the annotated example configuration with this gate's values filled in."""

import json
import os
import re
import sys
import tomllib
from pathlib import Path

from gate.config import example, parse_config
from gate.errors import ConfigError
from gate.trust import parse_public_key

out, config, state_dir, venv = sys.argv[1:5]
gate_id, zone, root = (os.environ[name] for name in ("GATE_ID", "GATE_ZONE", "GATE_ROOT_KEY"))
values = {
    ("gate", "id"): gate_id,
    ("gate", "zone"): zone,
    ("gate", "root_public_key"): root,
    ("gate", "state_dir"): state_dir,
    # the stable names systemd/udev/99-gate.rules makes
    ("serial", "url"): "/dev/gate-scanner",
    ("nfc", "url"): "/dev/gate-nfc",
}
header = f"""\
# {config}: this gate's configuration, written by systemd/install.sh from the annotated
# example; docs/configuration.md describes every key. install.sh never overwrites this file.
# Before gated can start: set [gate] id, zone and root_public_key (the office root public
# key: gate-keys show root.key), point [sync] collector_url at the collector (or delete
# [sync]), and delete the sections of devices this gate does not have. Then check it:
#   {venv}/bin/gated --check-config

"""
section = None
lines = []
for line in example().splitlines(keepends=True):
    if match := re.match(r"\[(\w+)\]", line):
        section = match.group(1)
    match = re.match(r'(\w+)(\s*=\s*)("[^"]*"|[^\s#]+)( *)(.*)', line, re.DOTALL)
    if match and (section, match.group(1)) in values:
        name, equals, old, spaces, rest = match.groups()
        new = json.dumps(values[(section, name)])
        if rest.strip():
            pad = " " * max(1, len(old) + len(spaces) - len(new))
            line = f"{name}{equals}{new}{pad}{rest}"
        else:
            line = f"{name}{equals}{new}\n"
    lines.append(line)
text = header + "".join(lines)
try:
    if root:
        parse_public_key(root)
    if gate_id and zone and root:
        parse_config(tomllib.loads(text), Path(config))
except (ValueError, ConfigError) as err:
    sys.exit(f"install.sh: error: the configuration would not be valid: {err}")
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)
PY
    GATE_ID=$GATE_ID GATE_ZONE=$GATE_ZONE GATE_ROOT_KEY=$GATE_ROOT_KEY "$DVENV/bin/python" \
        "$TMP/write_config.py" "$TMP/gate.toml" "$CONFIG" "$STATE_DIR" "$VENV"
    chmod 0640 "$TMP/gate.toml"
    if [ "$IS_ROOT" = yes ]; then chown "0:$GATE_GID" "$TMP/gate.toml"; fi
    mv "$TMP/gate.toml" "$DESTDIR$CONFIG"
    if [ "$IS_ROOT" = yes ]; then
        say created "$CONFIG (0640 root:$GATE_GROUP, from the annotated example)"
    else
        say created "$CONFIG (0640, from the annotated example)"
        note "not root: make $CONFIG owned by root:$GATE_GROUP in the image yourself"
    fi
fi
if check=$("$DVENV/bin/python" "$DVENV/bin/gated" --check-config --config "$DESTDIR$CONFIG" 2>&1); then
    CONFIG_OK=yes
    say ok "$CONFIG: configuration ok"
else
    CONFIG_OK=no
    note "$CONFIG is not complete yet: ${check#*"$DESTDIR$CONFIG: "}"
fi

# ---------------------------------------------------------------------------------------------
echo "Documentation (the units' Documentation= points here)"

for doc in "$SOURCE"/docs/*.md; do
    [ -f "$doc" ] || continue
    install_file "$doc" "$DESTDIR$PREFIX/share/doc/${doc##*/}" 0644
done

# ---------------------------------------------------------------------------------------------
echo "Units and udev rules"

UNITS_CHANGED=no
units=gated.service
[ "$COLLECTOR" = yes ] && units="$units gate-collector.service"
for unit in $units; do
    # ExecStart names the venv's console script: point it at this install's venv.
    sed -E -e "s#^(ExecStart(Pre)?=[-@:+!]*)[^ ]*/bin/(gated|gate-collector)( |\$)#\\1$VENV/bin/\\3\\4#" \
        -e "s#^Documentation=file:[^ ]*/share/doc/#Documentation=file:$PREFIX/share/doc/#" \
        "$SOURCE/systemd/$unit" >"$TMP/$unit"
    grep -q "^ExecStart=$VENV/bin/" "$TMP/$unit" ||
        die "systemd/$unit: no ExecStart= naming bin/gated or bin/gate-collector to point at $VENV"
    install_file "$TMP/$unit" "$DESTDIR$UNIT_DIR/$unit" 0644
    [ "$changed" = yes ] && UNITS_CHANGED=yes
done

RULES=/etc/udev/rules.d/99-gate.rules
if [ -e "$DESTDIR$RULES" ]; then
    if cmp -s "$SOURCE/systemd/udev/99-gate.rules" "$DESTDIR$RULES"; then
        say unchanged "$RULES"
    else
        say kept "$RULES (edited here; the shipped one is systemd/udev/99-gate.rules)"
    fi
else
    install_file "$SOURCE/systemd/udev/99-gate.rules" "$DESTDIR$RULES" 0644
    if [ -z "$DESTDIR" ] && [ -d /run/udev ] && command -v udevadm >/dev/null 2>&1; then
        if udevadm control --reload-rules; then
            udevadm trigger --subsystem-match=tty --action=add || true
        fi
    fi
fi

# ---------------------------------------------------------------------------------------------
echo "Services"

SYSTEMD_RUNNING=no
[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && SYSTEMD_RUNNING=yes
if [ "$ENABLE" = no ]; then
    note "--no-enable: $units not enabled (systemctl enable $units)"
else
    if [ "$SYSTEMD_RUNNING" = yes ] && [ "$UNITS_CHANGED" = yes ]; then
        systemctl daemon-reload
    fi
    for unit in $units; do
        if on_root systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            say unchanged "$unit enabled"
        else
            on_root systemctl enable --quiet "$unit"
            say enabled "$unit (multi-user.target.wants)"
        fi
    done
    if [ "$SYSTEMD_RUNNING" = no ]; then
        [ -n "$DESTDIR" ] || note "systemd is not running here: nothing started"
    elif systemctl is-active --quiet gated.service; then
        if [ "$PROJECT_CHANGED" = yes ] || [ "$UNITS_CHANGED" = yes ]; then
            systemctl restart gated.service
            say restarted gated.service
        else
            say unchanged "gated.service running"
        fi
    elif [ "$CONFIG_OK" = yes ]; then
        systemctl start gated.service
        say started gated.service
    else
        note "gated.service not started: complete $CONFIG first"
    fi
    if [ "$COLLECTOR" = yes ] && [ "$SYSTEMD_RUNNING" = yes ]; then
        note "gate-collector.service is enabled, not started: see docs/collector.md for its token"
    fi
fi

# ---------------------------------------------------------------------------------------------
cat <<EOF

Next steps (docs/installation.md, "Provisioning a gate"); run gatectl as $GATE_USER:
  1. At the office: gate-keys show root.key, for the root public key.
  2. Edit $CONFIG: [gate] id, zone, root_public_key; [sync]; this gate's devices.
     sudo -u $GATE_USER $VENV/bin/gated --check-config
  3. sudo -u $GATE_USER $VENV/bin/gatectl provision
     then at the office: gate-office enrol GATE_ID PUBLIC_KEY (as it prints)
  4. sudo -u $GATE_USER $VENV/bin/gatectl import trust-vN.cose   (or let the first sync fetch it)
  5. sudo systemctl start gated.service
     sudo -u $GATE_USER $VENV/bin/gatectl status
EOF
