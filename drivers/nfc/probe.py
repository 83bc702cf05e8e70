"""Asking a PN532 who it is, for ``gatectl selftest``."""

from __future__ import annotations

from drivers.nfc.pn532 import PN532Reader


def firmware_version(
    url: str, *, baudrate: int = 115200, command_timeout: float = 0.5
) -> tuple[int, ...]:
    """The PN532's (IC, version, revision, support) from GetFirmwareVersion.

    The reader starts exactly as the gate's reader does (wake-up, SAMConfiguration,
    GetFirmwareVersion, RFConfiguration) and is closed again. Raises
    :class:`~gate.errors.DriverInitError` when the port cannot be opened, nothing answers, the
    answers are garbage, or the device is not a PN532.
    """
    reader = PN532Reader(url, baudrate=baudrate, command_timeout=command_timeout)
    try:
        reader._open()  # the reader's own start-up, so the check sees what the gate would
        assert reader.firmware is not None
        return reader.firmware
    finally:
        reader.close()
