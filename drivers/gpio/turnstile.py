"""The turnstile: a lock relay, green and red lamps, a buzzer, a passage sensor and an
emergency (fire-alarm) input, all through gpiozero.

The relay's *inactive* level is the locked, safe state. It is the level the relay pin takes
when the turnstile is built, after :meth:`Turnstile.lock`, when the unlock window runs out,
when an emergency clears, and on :meth:`Turnstile.close` -- with one exception: an emergency
that is active at ``close()`` leaves the relay held open (see :meth:`Turnstile.close` and
docs/hardware.md).

Relay modes:

- ``"hold"``: :meth:`~Turnstile.unlock` energises the relay until :meth:`~Turnstile.lock`,
  or until ``unlock_seconds`` have passed, whichever comes first.
- ``"pulse"``: for turnstiles that want one short pulse per admitted passage.
  :meth:`~Turnstile.unlock` sends one pulse of ``pulse_seconds`` and keeps the green lamp on
  for ``unlock_seconds``.

The emergency input overrides everything: while it is active the relay is held energised and
``lock()``, ``unlock()`` and ``pulse()`` leave it alone; when it clears, the relay locks and
normal operation resumes. Listeners in :attr:`Turnstile.on_emergency` hear both
transitions.

Inputs are described by the level that means *active* and by the pull resistor to enable:
``"up"``, ``"down"`` or ``"none"`` (external resistor, or a sensor that drives the line).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from gpiozero import LED, Buzzer, DigitalInputDevice, DigitalOutputDevice
from gpiozero.exc import BadPinFactory
from gpiozero.pins import Factory

from drivers.base import HealthCell, HealthState
from gate.errors import (
    ConfigError,
    DriverInitError,
    DriverOperationError,
    DriverUnavailable,
    GateError,
)

log = logging.getLogger(__name__)

Pin = int | str  # a BCM number, or any name gpiozero accepts ("GPIO17", "BOARD11")

RELAY_MODES = ("hold", "pulse")
PULLS = ("up", "down", "none")


class BeepPattern(NamedTuple):
    """``count`` beeps of ``on_seconds``, ``off_seconds`` apart."""

    on_seconds: float
    off_seconds: float
    count: int

    @property
    def duration(self) -> float:
        return self.count * self.on_seconds + (self.count - 1) * self.off_seconds


ACCEPT_BEEP = BeepPattern(0.1, 0.0, 1)
LONG_BEEP = BeepPattern(0.8, 0.0, 1)
TWO_SHORT_BEEPS = BeepPattern(0.15, 0.15, 2)
THREE_SHORT_BEEPS = BeepPattern(0.1, 0.1, 3)

#: Rejections by reason. A ticket that was good but is spent (``used``, ``passback``) gets one
#: long beep, so staff can tell it from a bad ticket; a gate that cannot decide gets three
#: short ones; every other reason gets :data:`DEFAULT_REJECT_BEEPS`.
REJECT_BEEPS: dict[str, BeepPattern] = {
    "used": LONG_BEEP,
    "passback": LONG_BEEP,
    "gate_fault": THREE_SHORT_BEEPS,
}
DEFAULT_REJECT_BEEPS = TWO_SHORT_BEEPS


@dataclass(frozen=True)
class RelayState:
    """What the relay is doing, for diagnostics.

    ``state`` is ``"locked"``, ``"unlocked"``, ``"emergency"`` (held open by the emergency
    input) or ``"closed"`` (pins released); ``energised`` is whether the relay pin is at its
    active level; ``level`` is the pin's electrical level, or None once released.
    """

    state: str
    energised: bool
    level: str | None
    pin: str
    active_high: bool
    mode: str

    def to_json(self) -> dict:
        return {
            "state": self.state,
            "energised": self.energised,
            "level": self.level,
            "pin": self.pin,
            "active_high": self.active_high,
            "mode": self.mode,
        }


class _Input:
    """A digital input with any active level and any pull.

    gpiozero ties the two together (a pull-up means active-low), but a normally-closed contact
    to ground needs a pull-up *and* active-high, so the logical level may be the inverse of
    gpiozero's.
    """

    def __init__(
        self,
        pin: Pin,
        *,
        active_high: bool,
        pull: str,
        bounce_seconds: float | None,
        pin_factory: Factory | None,
    ) -> None:
        if pull == "none":
            self.device = DigitalInputDevice(
                pin,
                pull_up=None,
                active_state=active_high,
                bounce_time=bounce_seconds,
                pin_factory=pin_factory,
            )
            self.inverted = False
        else:
            pull_up = pull == "up"
            self.device = DigitalInputDevice(
                pin, pull_up=pull_up, bounce_time=bounce_seconds, pin_factory=pin_factory
            )
            self.inverted = (not pull_up) != active_high  # gpiozero: pull-up == active-low

    @property
    def is_active(self) -> bool:
        return bool(self.device.is_active) != self.inverted

    def when_activated(self, handler: Callable[[], None] | None) -> None:
        if self.inverted:
            self.device.when_deactivated = handler
        else:
            self.device.when_activated = handler

    def when_changed(self, handler: Callable[[], None] | None) -> None:
        self.device.when_activated = handler
        self.device.when_deactivated = handler

    def close(self) -> None:
        # gpiozero keeps handlers in a class-level table until they are cleared, and warns
        # when one that was never set is cleared.
        if self.device.when_activated is not None:
            self.device.when_activated = None
        if self.device.when_deactivated is not None:
            self.device.when_deactivated = None
        self.device.close()


class Turnstile:
    """The gate's actuators and sensors. See the module docstring and docs/hardware.md.

    Arguments (all keyword-only; pins are BCM numbers or gpiozero pin names):

    - ``relay_pin``, ``relay_active_high``: the lock relay; its inactive level is *locked*.
    - ``relay_mode``: ``"hold"`` or ``"pulse"``; ``pulse_seconds``: the pulse length.
    - ``unlock_seconds``: how long an ``unlock()`` lasts without a ``lock()``: the relay in
      hold mode, the green lamp in either mode; also ``wait_for_passage``'s default timeout.
    - ``green_pin``, ``red_pin``, ``buzzer_pin``: optional lamps and an active buzzer, driven
      active-high.
    - ``passage_pin``, ``passage_active_high``, ``passage_pull``: the passage sensor; the pull
      defaults to the *inactive* level (down for active-high), as for a normally-open contact.
      ``passage_bounce_seconds`` debounces it.
    - ``emergency_pin``, ``emergency_active_high``, ``emergency_pull``: the fire-alarm input;
      the pull defaults to the *active* level, so a normally-closed contact that opens -- or a
      cut wire -- reads as an emergency. The default (active-low, pull-down) is a
      normally-closed contact between 3V3 and the pin: closed is high (normal), open is low
      (emergency). A contact or opto-isolator switching to ground wants
      ``emergency_active_high=True`` (pull-up).
    - ``on_emergency``: a listener, or several, for :attr:`on_emergency`; given here they also
      hear an emergency that is already active at start-up.
    - ``accept_beep``: whether ``signal_accept()`` beeps; ``feedback_seconds``: how long the
      lamps stay lit for ``signal_accept()`` and ``signal_reject()``.
    - ``pin_factory``: a gpiozero factory (see :func:`drivers.gpio.pins.make_pin_factory`);
      None uses gpiozero's default.

    Raises :class:`ConfigError` for invalid arguments, :class:`DriverUnavailable` when no pin
    library can be loaded, and :class:`DriverInitError` naming the pin when a device cannot be
    set up (bad pin, pin in use). Methods raise :class:`DriverOperationError` when the pins
    fail, or when called after ``close()``.
    """

    def __init__(
        self,
        *,
        relay_pin: Pin,
        relay_active_high: bool = True,
        relay_mode: str = "hold",
        pulse_seconds: float = 0.5,
        unlock_seconds: float = 5.0,
        green_pin: Pin | None = None,
        red_pin: Pin | None = None,
        buzzer_pin: Pin | None = None,
        passage_pin: Pin | None = None,
        passage_active_high: bool = True,
        passage_pull: str | None = None,
        passage_bounce_seconds: float | None = 0.05,
        emergency_pin: Pin | None = None,
        emergency_active_high: bool = False,
        emergency_pull: str | None = None,
        on_emergency: Callable[[bool], None] | Iterable[Callable[[bool], None]] = (),
        accept_beep: bool = True,
        feedback_seconds: float = 1.5,
        pin_factory: Factory | None = None,
    ) -> None:
        if relay_mode not in RELAY_MODES:
            raise ConfigError(f"relay_mode must be one of {RELAY_MODES}, not {relay_mode!r}")
        for name, value in (
            ("pulse_seconds", pulse_seconds),
            ("unlock_seconds", unlock_seconds),
            ("feedback_seconds", feedback_seconds),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be more than 0, not {value!r}")
        if passage_pull is None:
            passage_pull = "down" if passage_active_high else "up"
        if emergency_pull is None:
            emergency_pull = "up" if emergency_active_high else "down"
        for name, value in (("passage_pull", passage_pull), ("emergency_pull", emergency_pull)):
            if value not in PULLS:
                raise ConfigError(f"{name} must be one of {PULLS}, not {value!r}")
        roles = {
            "relay_pin": relay_pin,
            "green_pin": green_pin,
            "red_pin": red_pin,
            "buzzer_pin": buzzer_pin,
            "passage_pin": passage_pin,
            "emergency_pin": emergency_pin,
        }
        seen: dict[Pin, str] = {}
        for role, pin in roles.items():
            if pin is None:
                continue
            if pin in seen:
                raise DriverInitError(f"gpio: {role} {pin} is the same pin as {seen[pin]}")
            seen[pin] = role

        self.health = HealthCell("gpio")
        #: called with True when the emergency input activates and False when it clears, from
        #: gpiozero's callback thread, after the relay has followed; exceptions are logged
        self.on_emergency: list[Callable[[bool], None]] = (
            [on_emergency] if callable(on_emergency) else list(on_emergency)
        )
        self.relay_mode = relay_mode
        self.pulse_seconds = pulse_seconds
        self.unlock_seconds = unlock_seconds
        self.accept_beep = accept_beep
        self.feedback_seconds = feedback_seconds
        self._relay_pin = relay_pin
        self._relay_active_high = relay_active_high

        self._lock = threading.RLock()
        self._closed = False
        self._relay_released = False
        self._unlocked = False
        self._emergency = False
        self._relock_timer: threading.Timer | None = None
        self._unlock_generation = 0
        self._passages = 0
        self._passage_mark = 0
        self._passage_seen = threading.Condition()

        self._relay: DigitalOutputDevice | None = None
        self._green: LED | None = None
        self._red: LED | None = None
        self._buzzer: Buzzer | None = None
        self._passage: _Input | None = None
        self._emergency_input: _Input | None = None
        try:
            # The relay first, straight into its locked level (initial_value=False).
            self._relay = self._build(
                "relay_pin",
                relay_pin,
                lambda: DigitalOutputDevice(
                    relay_pin,
                    active_high=relay_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                ),
            )
            if green_pin is not None:
                self._green = self._build(
                    "green_pin", green_pin, lambda: LED(green_pin, pin_factory=pin_factory)
                )
            if red_pin is not None:
                self._red = self._build(
                    "red_pin", red_pin, lambda: LED(red_pin, pin_factory=pin_factory)
                )
            if buzzer_pin is not None:
                self._buzzer = self._build(
                    "buzzer_pin", buzzer_pin, lambda: Buzzer(buzzer_pin, pin_factory=pin_factory)
                )
            if passage_pin is not None:
                self._passage = self._build(
                    "passage_pin",
                    passage_pin,
                    lambda: _Input(
                        passage_pin,
                        active_high=passage_active_high,
                        pull=passage_pull,
                        bounce_seconds=passage_bounce_seconds,
                        pin_factory=pin_factory,
                    ),
                )
                self._passage.when_activated(self._passage_activated)
            if emergency_pin is not None:
                # No debounce: the handler re-reads the level on every edge, so a chattering
                # contact costs a few relay clicks, while RPi.GPIO's debounce can drop the edge
                # the contact settles on.
                self._emergency_input = self._build(
                    "emergency_pin",
                    emergency_pin,
                    lambda: _Input(
                        emergency_pin,
                        active_high=emergency_active_high,
                        pull=emergency_pull,
                        bounce_seconds=None,
                        pin_factory=pin_factory,
                    ),
                )
                self._emergency_input.when_changed(self._emergency_input_changed)
        except BaseException:
            self._release_all(hold_open=False)
            self._closed = True
            raise
        with self._lock:
            if not self._emergency:  # an edge may already have come in through the handler
                self.health.set(HealthState.OK, "")
        if self._emergency_input is not None:
            self._emergency_input_changed()  # already active at start-up: open at once

    @staticmethod
    def _build(role: str, pin: Pin, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except BadPinFactory as err:
            raise DriverUnavailable(
                f"gpio: {role} {pin}: no GPIO pin library could be loaded ({err}); install "
                "one (apt install python3-lgpio) or name one with pin_factory"
            ) from err
        except GateError:
            raise
        except Exception as err:  # gpiozero's PinInvalidPin, GPIOPinInUse, lgpio.error, ...
            raise DriverInitError(f"gpio: cannot set up {role} {pin}: {err}") from err

    # -- the relay -----------------------------------------------------------------------

    def unlock(self) -> None:
        """Let one person through: energise the relay (hold mode) or pulse it (pulse mode),
        light the green lamp, and relock after ``unlock_seconds`` unless :meth:`lock` comes
        first. Calling it again restarts the window. Does nothing to the relay during an
        emergency."""
        with self._lock:
            relay = self._check_open()
            with self._passage_seen:
                self._passage_mark = self._passages
            if self._emergency:
                return
            self._cancel_relock()
            with self._driving("unlock"):
                if self.relay_mode == "pulse":
                    relay.blink(on_time=self.pulse_seconds, off_time=0, n=1, background=True)
                else:
                    relay.on()
                if self._red is not None:
                    self._red.off()
                if self._green is not None:
                    self._green.on()
            self._unlocked = True
            self._unlock_generation += 1
            timer = threading.Timer(
                self.unlock_seconds, self._relock_after_window, (self._unlock_generation,)
            )
            timer.daemon = True
            timer.name = "turnstile-relock"
            self._relock_timer = timer
            timer.start()

    def lock(self) -> None:
        """De-energise the relay (cutting a pulse short) and put the green lamp out. During an
        emergency the relay stays open: this call then does nothing."""
        with self._lock:
            relay = self._check_open()
            if self._emergency:
                log.debug("gpio: lock() ignored: emergency input active")
                return
            self._lock_now(relay)

    def pulse(self, seconds: float | None = None) -> None:
        """Energise the relay once for ``seconds`` (default ``pulse_seconds``), without
        waiting. Only in pulse mode; ignored during an emergency."""
        with self._lock:
            relay = self._check_open()
            if self.relay_mode != "pulse":
                raise DriverOperationError(
                    'gpio: pulse() needs relay_mode = "pulse"; this relay is in hold mode'
                )
            seconds = self.pulse_seconds if seconds is None else seconds
            if not seconds > 0:
                raise DriverOperationError(f"gpio: pulse length must be more than 0: {seconds}")
            if self._emergency:
                return
            with self._driving("pulse"):
                relay.blink(on_time=seconds, off_time=0, n=1, background=True)

    @property
    def is_unlocked(self) -> bool:
        """True from :meth:`unlock` until :meth:`lock` or the end of the unlock window, and
        throughout an emergency. In pulse mode the relay itself is only energised for the
        pulse; :meth:`relay_state` tells the pin's level."""
        with self._lock:
            if self._relay_released:
                return False
            return self._unlocked or self._emergency

    def relay_state(self) -> RelayState:
        """The relay's state and pin level, for ``gatectl`` and the health report."""
        with self._lock:
            relay = self._relay
            if self._relay_released or relay is None:
                state, energised, level = "closed", False, None
            else:
                energised = bool(relay.value)
                level = "high" if relay.pin.state else "low"
                if self._emergency:
                    state = "emergency"
                elif self._unlocked:
                    state = "unlocked"
                else:
                    state = "locked"
            return RelayState(
                state=state,
                energised=energised,
                level=level,
                pin=str(self._relay_pin),
                active_high=self._relay_active_high,
                mode=self.relay_mode,
            )

    # -- the passage sensor --------------------------------------------------------------

    def wait_for_passage(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (default ``unlock_seconds``) for the passage sensor to
        activate; True if it did. A :meth:`close` meanwhile ends the wait with False.

        While unlocked, an activation since the last :meth:`unlock` counts even if it came
        before this call; otherwise only one after the call does. Without a passage sensor
        nobody is ever seen: the call waits out the timeout (the gate stays open that long) and
        returns False; see :attr:`has_passage_sensor`."""
        with self._lock:
            self._check_open()
            unlocked = self._unlocked
        timeout = self.unlock_seconds if timeout is None else timeout
        with self._passage_seen:
            mark = self._passage_mark if unlocked else self._passages
            self._passage_seen.wait_for(lambda: self._passages > mark or self._closed, timeout)
            return self._passages > mark

    @property
    def has_passage_sensor(self) -> bool:
        return self._passage is not None

    def _passage_activated(self) -> None:
        with self._passage_seen:
            self._passages += 1
            self._passage_seen.notify_all()

    # -- the emergency input -------------------------------------------------------------

    @property
    def emergency_active(self) -> bool:
        """True while the emergency input holds the relay open."""
        with self._lock:
            return self._emergency

    def _emergency_input_changed(self) -> None:
        # Runs in gpiozero's callback thread (or __init__): never raises.
        with self._lock:
            emergency_input = self._emergency_input
            if self._closed or emergency_input is None:
                return
            try:
                active = emergency_input.is_active
            except Exception as err:  # the pin vanished under us
                log.error("gpio: cannot read emergency_pin: %s", err)
                self.health.set(HealthState.FAILED, f"cannot read emergency_pin: {err}")
                return
            if active == self._emergency:
                return
            self._emergency = active
            try:
                relay = self._relay
                assert relay is not None
                if active:
                    self._cancel_relock()
                    relay.on()
                    if self._red is not None:
                        self._red.off()
                    if self._green is not None:
                        self._green.on()
                    self.health.set(HealthState.DEGRADED, "emergency input active: relay held open")
                else:
                    self._lock_now(relay)
                    self.health.set(HealthState.OK, "")
            except Exception as err:
                log.error("gpio: cannot follow the emergency input: %s", err)
                self.health.set(HealthState.FAILED, f"cannot follow the emergency input: {err}")
        for listener in list(self.on_emergency):
            try:
                listener(active)
            except Exception:  # a listener's bug must not undo the relay's state
                log.exception("gpio: emergency listener failed")

    # -- feedback ------------------------------------------------------------------------

    def signal_accept(self) -> None:
        """Light the green lamp for ``feedback_seconds`` (unless :meth:`unlock` already holds
        it on) and give one short beep if ``accept_beep``. Returns at once."""
        with self._lock:
            self._check_open()
            with self._driving("signal_accept"):
                if self._green is not None and not (self._unlocked or self._emergency):
                    self._green.blink(
                        on_time=self.feedback_seconds, off_time=0, n=1, background=True
                    )
                if self._buzzer is not None and self.accept_beep:
                    self._beep(ACCEPT_BEEP)

    def signal_reject(self, reason: str) -> None:
        """Light the red lamp for ``feedback_seconds`` and beep the pattern for ``reason``
        (:data:`REJECT_BEEPS`, else :data:`DEFAULT_REJECT_BEEPS`). Returns at once."""
        with self._lock:
            self._check_open()
            with self._driving("signal_reject"):
                if self._red is not None:
                    self._red.blink(on_time=self.feedback_seconds, off_time=0, n=1, background=True)
                if self._buzzer is not None:
                    self._beep(REJECT_BEEPS.get(reason, DEFAULT_REJECT_BEEPS))

    def _beep(self, pattern: BeepPattern) -> None:
        assert self._buzzer is not None
        self._buzzer.beep(
            on_time=pattern.on_seconds,
            off_time=pattern.off_seconds,
            n=pattern.count,
            background=True,
        )

    # -- shutdown ------------------------------------------------------------------------

    def close(self) -> None:
        """Lock the relay and release every pin; idempotent, and safe after a failed start.

        If the emergency input is active, the relay is instead left energised and its pin is
        kept: fire egress wins over the locked state. It then stays open until the pin factory
        is closed or the process exits, when the pin library releases the line and the
        hardware's own default applies (see docs/hardware.md: the fire contact must also open
        the lock in hardware)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            hold_open = self._emergency
            self._cancel_relock()
        with self._passage_seen:
            self._passage_seen.notify_all()  # wake wait_for_passage
        self._release_all(hold_open=hold_open)
        if hold_open:
            log.warning("gpio: closed during an emergency: relay left open")
        self.health.set(HealthState.FAILED, "closed", expected=True)

    def _release_all(self, *, hold_open: bool) -> None:
        # The relay goes to its safe level before anything else is touched, and is released
        # last, whatever fails in between.
        relay = self._relay
        try:
            if relay is not None and not hold_open:
                relay.off()
        except Exception as err:
            log.error("gpio: cannot lock the relay on close: %s", err)
        finally:
            for device in (
                self._emergency_input,
                self._passage,
                self._buzzer,
                self._red,
                self._green,
            ):
                if device is None:
                    continue
                try:
                    device.close()
                except Exception as err:
                    log.debug("gpio: close failed: %s", err)
            if relay is not None and not hold_open:
                try:
                    relay.close()
                except Exception as err:
                    log.debug("gpio: relay close failed: %s", err)
                with self._lock:
                    self._relay_released = True

    def __enter__(self) -> Turnstile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------

    def _check_open(self) -> DigitalOutputDevice:
        if self._closed or self._relay is None:
            raise DriverOperationError("gpio: the turnstile is closed")
        return self._relay

    @contextmanager
    def _driving(self, what: str) -> Iterator[None]:
        try:
            yield
        except GateError:
            raise
        except Exception as err:  # gpiozero, OSError, lgpio.error
            self.health.set(HealthState.FAILED, f"{what}: {err}")
            raise DriverOperationError(f"gpio: {what}: {err}") from err

    def _lock_now(self, relay: DigitalOutputDevice) -> None:
        # Caller holds self._lock.
        self._cancel_relock()
        self._unlocked = False
        with self._driving("lock"):
            relay.off()
            if self._green is not None:
                self._green.off()

    def _cancel_relock(self) -> None:
        # Caller holds self._lock; a timer already running sees the generation move on.
        self._unlock_generation += 1
        if self._relock_timer is not None:
            self._relock_timer.cancel()
            self._relock_timer = None

    def _relock_after_window(self, generation: int) -> None:
        with self._lock:
            relay = self._relay
            if self._closed or relay is None or generation != self._unlock_generation:
                return
            if self._emergency:
                return
            try:
                self._lock_now(relay)
            except DriverOperationError as err:
                log.error("gpio: relock after the unlock window failed: %s", err)
