"""gpiozero pin factories, picked by the name the configuration gives.

========= ==================================================================================
name      what it drives
========= ==================================================================================
default   gpiozero's own search: lgpio, then RPi.GPIO, pigpio, and the pure-Python native
          factory (``GPIOZERO_PIN_FACTORY`` overrides it, except that it may not name mock)
lgpio     ``/dev/gpiochip*`` through lgpio; the one that works on a Raspberry Pi 5
rpigpio   RPi.GPIO; Pi 1-4 only
pigpio    the pigpiod daemon; Pi 1-4 only
native    gpiozero's pure-Python register access; Pi 1-4 only, last resort
mock      gpiozero's ``MockFactory``: simulated pins for tests and ``--simulate``
========= ==================================================================================

The mock factory is never picked automatically: only a configuration or a test that names it
gets it.
"""

from __future__ import annotations

import importlib
import os

from gpiozero.pins import Factory

from gate.errors import ConfigError, DriverUnavailable

PIN_FACTORIES = ("default", "lgpio", "rpigpio", "pigpio", "native", "mock")

# name -> (module, class, what to do when the module's library is missing)
_FACTORY_CLASSES = {
    "lgpio": (
        "gpiozero.pins.lgpio",
        "LGPIOFactory",
        "lgpio is not installed: apt install python3-lgpio (a virtualenv needs "
        "--system-site-packages to see it) or pip install lgpio",
    ),
    "rpigpio": (
        "gpiozero.pins.rpigpio",
        "RPiGPIOFactory",
        "RPi.GPIO is not installed: apt install python3-rpi.gpio or pip install RPi.GPIO "
        "(it does not drive a Pi 5: use lgpio there)",
    ),
    "pigpio": (
        "gpiozero.pins.pigpio",
        "PiGPIOFactory",
        "pigpio is not installed: apt install pigpio python3-pigpio, then "
        "systemctl enable --now pigpiod (it does not drive a Pi 5: use lgpio there)",
    ),
    "native": ("gpiozero.pins.native", "NativeFactory", "gpiozero is incomplete"),
    "mock": ("gpiozero.pins.mock", "MockFactory", "gpiozero is incomplete"),
}


def make_pin_factory(name: str) -> Factory | None:
    """Return the gpiozero pin factory called ``name`` (one of :data:`PIN_FACTORIES`).

    ``"default"`` returns :data:`None`, which makes gpiozero search for a factory when the
    first device is built. Raises :class:`ConfigError` for an unknown name and
    :class:`DriverUnavailable` when the factory's library is missing or cannot reach the pins
    (not a Pi, pigpiod not running, no ``/dev/gpiochip*``).
    """
    if name == "default":
        if os.environ.get("GPIOZERO_PIN_FACTORY", "").lower() == "mock":
            raise ConfigError(
                "GPIOZERO_PIN_FACTORY=mock is set in the environment: the mock factory is only "
                'used when the configuration names it (pin_factory = "mock")'
            )
        return None
    try:
        module_name, class_name, missing_hint = _FACTORY_CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown pin factory {name!r}; known: {', '.join(PIN_FACTORIES)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DriverUnavailable(f"{missing_hint} ({err})") from err
    except Exception as err:  # RPi.GPIO raises RuntimeError on import off a Pi
        raise DriverUnavailable(f"{name} pin factory cannot be loaded: {err}") from err
    try:
        return getattr(module, class_name)()
    except Exception as err:  # gpiozero, OSError, lgpio.error, pigpio's connection errors
        hint = " (is pigpiod running? systemctl enable --now pigpiod)" if name == "pigpio" else ""
        raise DriverUnavailable(f"{name} pin factory cannot start: {err}{hint}") from err
