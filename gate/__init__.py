"""The gate: GT1 validation, trust store, revocations, usage records, gated and gatectl."""


def installed_version() -> str:
    """The installed version of this software, for status screens and logs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gatevalidator")
    except PackageNotFoundError:
        return "unknown"
