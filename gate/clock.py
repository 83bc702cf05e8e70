"""The gate's clock: is the kernel clock synchronised, and how far off the collector's is it.

Ticket validity is decided on the local clock, offline, so a wrong clock rejects valid tickets
(``expired``, ``not_yet_valid``) or accepts expired ones. The kernel knows whether an NTP
client (systemd-timesyncd, chrony, ntpd) keeps it synchronised: ``adjtimex(2)`` reports
``STA_UNSYNC`` and ``TIME_ERROR`` otherwise. That needs neither D-Bus nor root. The offset
from the collector is measured by the sync agent at each health report (``sync.json``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any

# Documented in adjtimex(2) / <sys/timex.h>.
STA_UNSYNC = 0x0040
TIME_ERROR = 5
MAX_OFFSET_SECONDS = 30.0  # a clock further off the collector's than this is "wrong"


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (glibc); the 11 int32 reserved fields pad it out.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def ntp_synchronized() -> tuple[bool | None, str]:
    """(synchronised?, what the kernel says); None when it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()  # modes 0: read only
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError) as err:
        return None, f"cannot ask the kernel: {err}"
    if state < 0:
        return None, f"adjtimex failed: errno {ctypes.get_errno()}"
    if state == TIME_ERROR or timex.status & STA_UNSYNC:
        return False, "not synchronised (no NTP client has set the clock)"
    return True, f"synchronised, max error {timex.maxerror / 1000:.1f} ms"


def clock_state(
    sync_status: dict[str, Any] | None = None,
    now: float | None = None,
    *,
    require_ntp: bool = True,
) -> dict:
    """The clock as status and selftest show it.

    ``sync_status`` is what the sync agent last wrote (``sync.json``), if anything; its
    ``clock_offset`` is the collector's clock minus ours, in seconds. With ``require_ntp``
    false (``[gate] require_ntp``), an unsynchronised kernel clock is shown but not a problem.
    """
    now = time.time() if now is None else now
    synced, detail = ntp_synchronized()
    offset = (sync_status or {}).get("clock_offset")
    offset = offset if isinstance(offset, int | float) else None
    problems = []
    if synced is False and require_ntp:
        problems.append(detail)
    if offset is not None and abs(offset) > MAX_OFFSET_SECONDS:
        problems.append(f"{offset:+.1f} s off the collector's clock")
    return {
        "now": now,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "ntp_synchronized": synced,
        "ntp_detail": detail,
        "collector_offset": offset,
        "ok": not problems,
        "problem": "; ".join(problems) or None,
    }
