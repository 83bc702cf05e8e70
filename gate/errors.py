"""The project's exception tree.

One root, :class:`GateError`, split by the phase in which things went wrong. Third-party
exceptions are wrapped at the boundary with ``raise ... from err``, so callers only ever see
these. A ticket that fails validation is not an exception: it is a ``Decision`` with a reason.
"""


class GateError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(GateError):
    """A configuration file or setting is missing, unreadable or invalid."""


class KeyFileError(GateError):
    """A key file is missing, unreadable, malformed, or its passphrase is wrong."""


class SignedDocumentError(GateError):
    """A trust bundle or revocation list is malformed, unsigned or wrongly signed."""


class RollbackError(SignedDocumentError):
    """A trust bundle or revocation list is not newer than the one the gate holds."""


class StoreError(GateError):
    """The gate's SQLite state could not be read or written."""


class DriverUnavailable(GateError):
    """A driver's library or device is not present on this machine."""


class DriverInitError(GateError):
    """A driver was found but could not be set up."""


class DriverOperationError(GateError):
    """A driver failed while working."""


class GateTimeout(GateError):
    """An operation did not finish in its allotted time."""


class SyncError(GateError):
    """Talking to the upstream collector failed."""
