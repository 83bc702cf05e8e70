"""GPIO: the turnstile's relay, lamps, buzzer, passage sensor and emergency input.

Everything goes through gpiozero; the fake is gpiozero's own ``MockFactory``, picked only by
name (``make_pin_factory("mock")``). Wiring and safe-state behaviour: docs/hardware.md.
"""

from drivers.gpio.pins import PIN_FACTORIES, make_pin_factory
from drivers.gpio.turnstile import RelayState, Turnstile

__all__ = ["PIN_FACTORIES", "RelayState", "Turnstile", "make_pin_factory"]
