"""Short driver names mapped to ``"module:Class"``, imported only when used, so a gate without
OpenCV can still run a serial reader. Fakes are listed separately and are only ever picked by
name, by tests and ``gated --simulate``."""

from __future__ import annotations

import importlib

from gate.errors import DriverUnavailable

READERS = {
    "camera": "drivers.camera.reader:CameraReader",
    "serial": "drivers.serial.scanner:SerialScanner",
    "nfc": "drivers.nfc.pn532:PN532Reader",
}


def load(spec: str) -> type:
    """Import ``"module:Class"`` and return the class, or raise :class:`DriverUnavailable`."""
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DriverUnavailable(f"{spec}: cannot import {module_name}: {err}") from err
    try:
        return getattr(module, class_name)
    except AttributeError as err:
        raise DriverUnavailable(f"{spec}: {module_name} has no {class_name}") from err


def reader_class(name: str) -> type:
    try:
        return load(READERS[name])
    except KeyError as err:
        raise DriverUnavailable(
            f"unknown reader {name!r}; known: {', '.join(sorted(READERS))}"
        ) from err
