"""Base classes for the gate's devices, and the small types they share.

A driver never imports ``gate`` policy or ``sync``: it turns a device into
:class:`Presentation` objects (code readers) or into pin changes (the turnstile), and reports
its :class:`Health`.

Writing a code reader: subclass :class:`CodeReader` and override

- ``_open()``   (must) connect to the device; raise :class:`DriverInitError` or
  :class:`DriverUnavailable` when it cannot;
- ``_read(timeout)`` (must) wait at most ``timeout`` seconds and return the presentations
  seen, possibly none; raise :class:`DriverOperationError` when the device fails or vanishes;
- ``_close()``  (may) release the device; it must be safe to call more than once, after a
  failed ``_open``, and from another thread while ``_read`` is waiting (shutdown).

:meth:`CodeReader.run` does the shared bookkeeping: it reconnects with exponential backoff,
keeps the health up to date, and delivers each presentation to the decision loop.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gate.errors import DriverInitError, DriverOperationError, DriverUnavailable, GateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Presentation:
    """One code presented at a reader.

    ``arrived`` is ``time.monotonic()`` when the code physically arrived: the capture time of
    the frame it was decoded from, or the arrival of the first byte of the serial line or NFC
    read. Latency is measured from here to the relay command.
    """

    text: str
    source: str
    arrived: float


class HealthState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class Health:
    state: HealthState
    reason: str
    since: float  # time.time() of the last change

    def to_json(self) -> dict:
        return {"state": self.state.value, "reason": self.reason, "since": self.since}


class HealthCell:
    """A device's current health, safe to read from any thread; logs every change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._health = Health(HealthState.DEGRADED, "starting", time.time())
        self.listeners: list[Callable[[str, Health], None]] = []

    def get(self) -> Health:
        with self._lock:
            return self._health

    def set(self, state: HealthState, reason: str = "", *, expected: bool = False) -> None:
        """Change the health; ``expected`` for a change that is no fault (a device closed at
        shutdown), logged as info rather than as a warning."""
        with self._lock:
            if (self._health.state, self._health.reason) == (state, reason):
                return
            self._health = Health(state, reason, time.time())
            health = self._health
        # Failures reach the journal at gated's default level; recoveries are info.
        level = logging.INFO if state is HealthState.OK or expected else logging.WARNING
        log.log(level, "%s is %s: %s", self.name, state.value, reason or "-")
        for listener in list(self.listeners):
            listener(self.name, health)


class CodeReader(ABC):
    """A source of presented codes: camera, serial scanner, NFC reader."""

    #: seconds between reconnection attempts: doubles from ``backoff_initial`` to ``backoff_max``
    backoff_initial = 0.25
    backoff_max = 5.0
    #: how long one ``_read`` may wait, so a stop request is seen quickly
    read_timeout = 0.2

    def __init__(self, name: str) -> None:
        self.name = name
        self.health = HealthCell(name)

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self, timeout: float) -> list[Presentation]: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def diagnostics(self) -> dict:
        """Counters and details for technicians (lines dropped, frames decoded, ...)."""
        return {}

    def close(self) -> None:
        """Release the device; idempotent."""
        try:
            self._close()
        except Exception as err:  # closing a vanished device may fail in many ways
            log.debug("%s: close failed: %s", self.name, err)

    def __enter__(self) -> CodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, deliver: Callable[[Presentation], None], stop: threading.Event) -> None:
        """Read until ``stop`` is set, reconnecting with backoff; never raises."""
        backoff = self.backoff_initial
        while not stop.is_set():
            try:
                self._open()
                opened = time.monotonic()
                while not stop.is_set():
                    presentations = self._read(self.read_timeout)
                    # ok only once a read has worked, not merely the open
                    self.health.set(HealthState.OK, "")
                    for presentation in presentations:
                        deliver(presentation)
                    if time.monotonic() - opened > self.backoff_max:
                        # Reset only once the device has stayed up, so one that opens and
                        # fails at once does not flap between ok and failed.
                        backoff = self.backoff_initial
            except (DriverUnavailable, DriverInitError, DriverOperationError) as err:
                self.health.set(HealthState.FAILED, str(err))
            except GateError as err:
                self.health.set(HealthState.FAILED, str(err))
            except Exception as err:  # a driver bug must not kill the reader thread
                log.exception("%s: unexpected error", self.name)
                self.health.set(HealthState.FAILED, f"unexpected error: {err!r}")
            self.close()
            if not stop.is_set():
                stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        self.close()
