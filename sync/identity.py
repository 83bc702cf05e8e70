"""A gate's own Ed25519 identity, made once at provisioning and kept in its state directory.

The private key never leaves the gate; the office enrols the public key at the collector.
"""

from __future__ import annotations

from pathlib import Path

from gate.errors import KeyFileError
from keys.keyfile import KeyPair, load_key, save_key

DEVICE_KEY_FILE = "device.key"


def device_key_path(state_dir: Path) -> Path:
    return Path(state_dir) / DEVICE_KEY_FILE


def provision(state_dir: Path) -> tuple[KeyPair, bool]:
    """The gate's key pair, created if it does not exist yet; (pair, created)."""
    path = device_key_path(state_dir)
    if path.exists():
        return load_key(path), False
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    pair = KeyPair.generate()
    save_key(pair, path)
    return pair, True


def load_device_key(state_dir: Path) -> KeyPair:
    """The gate's key pair, or a clear error when the gate was never provisioned."""
    path = device_key_path(state_dir)
    if not path.exists():
        raise KeyFileError(f"{path}: no device key; run 'gatectl provision' first")
    return load_key(path)
