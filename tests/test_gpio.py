"""The turnstile against gpiozero's MockFactory: the relay pin's actual levels, the passage
sensor, the emergency input, feedback patterns, shutdown, and the pin factories by name."""

from __future__ import annotations

import importlib.util
import itertools
import threading
import time
import warnings
from pathlib import Path

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory

from drivers.base import HealthState
from drivers.gpio import PIN_FACTORIES, Turnstile, make_pin_factory
from drivers.gpio.turnstile import DEFAULT_REJECT_BEEPS, LONG_BEEP, THREE_SHORT_BEEPS
from gate.errors import ConfigError, DriverInitError, DriverOperationError, DriverUnavailable

RELAY, GREEN, RED, BUZZER, PASSAGE, EMERGENCY = 17, 27, 22, 23, 24, 25
# An emergency input that is high in an emergency, with no pull: the mock pin idles low.
EMERGENCY_HIGH = {
    "emergency_pin": EMERGENCY,
    "emergency_active_high": True,
    "emergency_pull": "none",
}
ON_A_PI = Path("/proc/device-tree/model").exists()


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.reset()


def turnstile(factory, **kwargs) -> Turnstile:
    kwargs.setdefault("relay_pin", RELAY)
    return Turnstile(pin_factory=factory, **kwargs)


def level(factory, pin) -> bool:
    return factory.pin(pin).state


def rises(factory, pin) -> int:
    states = factory.pin(pin).states
    return sum(
        1 for before, after in itertools.pairwise(states) if after.state and not before.state
    )


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# -- the relay ---------------------------------------------------------------------------


@pytest.mark.parametrize(("active_high", "locked_level"), [(True, False), (False, True)])
def test_relay_starts_locked_and_follows_unlock_and_lock(factory, active_high, locked_level):
    with turnstile(factory, relay_active_high=active_high, green_pin=GREEN) as gate:
        assert level(factory, RELAY) is locked_level
        assert not gate.is_unlocked
        gate.unlock()
        assert level(factory, RELAY) is (not locked_level)
        assert level(factory, GREEN) is True
        assert gate.is_unlocked
        assert gate.relay_state().state == "unlocked"
        gate.lock()
        assert level(factory, RELAY) is locked_level
        assert level(factory, GREEN) is False
        assert gate.relay_state().to_json() == {
            "state": "locked",
            "energised": False,
            "level": "high" if locked_level else "low",
            "pin": str(RELAY),
            "active_high": active_high,
            "mode": "hold",
        }
        assert gate.health.get().state is HealthState.OK


def test_hold_mode_relocks_when_the_unlock_window_runs_out(factory):
    with turnstile(factory, green_pin=GREEN, unlock_seconds=0.1) as gate:
        gate.unlock()
        assert level(factory, RELAY) is True
        assert wait_until(lambda: not gate.is_unlocked)
        assert level(factory, RELAY) is False
        assert level(factory, GREEN) is False


def test_a_stale_relock_does_not_end_a_fresh_window(factory):
    # The race where the first window's timer is already running when lock() and a new
    # unlock() come, replayed deterministically.
    with turnstile(factory, unlock_seconds=60) as gate:
        gate.unlock()
        stale = gate._unlock_generation
        gate.lock()
        gate.unlock()
        gate._relock_after_window(stale)
        assert level(factory, RELAY) is True
        assert gate.is_unlocked


@pytest.mark.parametrize("active_high", [True, False])
def test_pulse_mode_pulses_once_for_pulse_seconds(factory, active_high):
    with turnstile(
        factory,
        relay_active_high=active_high,
        relay_mode="pulse",
        pulse_seconds=0.2,
        green_pin=GREEN,
        unlock_seconds=2.0,
    ) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        locked = not active_high
        gate.unlock()
        assert level(factory, GREEN) is True
        assert wait_until(lambda: len(relay.states) >= 3)
        time.sleep(0.1)  # nothing more may follow
        assert [s.state for s in relay.states] == [locked, not locked, locked]
        assert relay.states[2].timestamp == pytest.approx(0.2, abs=0.05)
        assert gate.is_unlocked  # the passage window outlasts the pulse
        assert level(factory, GREEN) is True


def test_pulse_needs_pulse_mode(factory):
    with turnstile(factory) as gate, pytest.raises(DriverOperationError, match="pulse"):
        gate.pulse(0.1)


def test_explicit_pulse_length(factory):
    with turnstile(factory, relay_mode="pulse", pulse_seconds=1.0) as gate:
        relay = factory.pin(RELAY)
        relay.clear_states()
        gate.pulse(0.1)
        assert wait_until(lambda: len(relay.states) >= 3)
        assert relay.states[2].timestamp == pytest.approx(0.1, abs=0.05)
        assert not gate.is_unlocked


# -- the passage sensor ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active_high", "pull"),
    [(True, None), (False, None), (True, "none"), (True, "up"), (False, "down")],
)
def test_wait_for_passage_sees_the_sensor_driven_from_another_thread(factory, active_high, pull):
    with turnstile(
        factory, passage_pin=PASSAGE, passage_active_high=active_high, passage_pull=pull
    ) as gate:
        sensor = factory.pin(PASSAGE)
        idle, activate = (
            (sensor.drive_low, sensor.drive_high)
            if active_high
            else (sensor.drive_high, sensor.drive_low)
        )
        idle()
        gate.unlock()
        timer = threading.Timer(0.05, activate)
        timer.start()
        started = time.monotonic()
        try:
            assert gate.wait_for_passage(2.0) is True
        finally:
            timer.join()
        assert time.monotonic() - started < 1.0


def test_wait_for_passage_times_out(factory):
    with turnstile(factory, passage_pin=PASSAGE) as gate:
        gate.unlock()
        started = time.monotonic()
        assert gate.wait_for_passage(0.1) is False
        assert time.monotonic() - started >= 0.1


def test_a_passage_between_unlock_and_wait_counts(factory):
    with turnstile(factory, passage_pin=PASSAGE) as gate:
        gate.unlock()
        factory.pin(PASSAGE).drive_high()
        assert gate.wait_for_passage(0) is True


def test_a_passage_before_unlock_does_not_count(factory):
    with turnstile(factory, passage_pin=PASSAGE) as gate:
        factory.pin(PASSAGE).drive_high()
        factory.pin(PASSAGE).drive_low()
        gate.unlock()
        assert gate.wait_for_passage(0.05) is False


def test_close_ends_a_wait_for_passage(factory):
    gate = turnstile(factory, passage_pin=PASSAGE)
    gate.unlock()
    closer = threading.Timer(0.05, gate.close)
    closer.start()
    started = time.monotonic()
    assert gate.wait_for_passage(5.0) is False
    closer.join()
    assert time.monotonic() - started < 2.0
    assert level(factory, RELAY) is False


def test_wait_for_passage_without_a_sensor_waits_out_the_timeout(factory):
    with turnstile(factory) as gate:
        assert not gate.has_passage_sensor
        gate.unlock()
        started = time.monotonic()
        assert gate.wait_for_passage(0.1) is False
        assert time.monotonic() - started >= 0.1
        assert level(factory, RELAY) is True


# -- the emergency input -----------------------------------------------------------------


def test_emergency_opens_holds_through_lock_and_clearing_relocks(factory):
    events: list[bool] = []
    with turnstile(factory, green_pin=GREEN, **EMERGENCY_HIGH) as gate:
        gate.on_emergency.append(events.append)
        contact = factory.pin(EMERGENCY)
        assert not gate.emergency_active
        assert level(factory, RELAY) is False

        contact.drive_high()
        assert gate.emergency_active
        assert level(factory, RELAY) is True
        assert level(factory, GREEN) is True
        assert gate.relay_state().state == "emergency"
        assert gate.health.get().state is HealthState.DEGRADED
        gate.lock()
        gate.unlock()
        gate.lock()
        assert level(factory, RELAY) is True
        assert gate.is_unlocked

        contact.drive_low()
        assert not gate.emergency_active
        assert level(factory, RELAY) is False
        assert level(factory, GREEN) is False
        assert gate.health.get().state is HealthState.OK
        assert events == [True, False]

        gate.unlock()  # normal operation resumes
        assert level(factory, RELAY) is True
        gate.lock()
        assert level(factory, RELAY) is False


def test_emergency_cancels_the_unlock_window_and_ignores_pulses(factory):
    with turnstile(
        factory,
        relay_mode="pulse",
        pulse_seconds=0.05,
        unlock_seconds=0.05,
        **EMERGENCY_HIGH,
    ) as gate:
        gate.unlock()
        factory.pin(EMERGENCY).drive_high()
        gate.pulse()
        time.sleep(0.15)  # past both the pulse and the unlock window
        assert level(factory, RELAY) is True
        assert gate.is_unlocked


def test_emergency_with_an_active_low_relay(factory):
    with turnstile(factory, relay_active_high=False, **EMERGENCY_HIGH) as gate:
        factory.pin(EMERGENCY).drive_high()
        assert level(factory, RELAY) is False
        factory.pin(EMERGENCY).drive_low()
        assert level(factory, RELAY) is True
        assert not gate.emergency_active


def test_emergency_already_active_at_start_opens_at_once(factory):
    factory.pin(EMERGENCY).drive_high()
    events: list[bool] = []
    with turnstile(factory, **EMERGENCY_HIGH, on_emergency=events.append) as gate:
        assert gate.emergency_active
        assert level(factory, RELAY) is True
        assert events == [True]
        assert gate.health.get().state is HealthState.DEGRADED
        factory.pin(EMERGENCY).drive_low()
        assert level(factory, RELAY) is False
        assert events == [True, False]


@pytest.mark.parametrize(("active_high", "normal"), [(True, "drive_low"), (False, "drive_high")])
def test_an_unconnected_emergency_input_reads_as_an_emergency(factory, active_high, normal):
    # The default pull goes to the active level: a cut wire to a normally-closed contact
    # opens the gate rather than hiding an alarm.
    with turnstile(factory, emergency_pin=EMERGENCY, emergency_active_high=active_high) as gate:
        assert gate.emergency_active
        assert level(factory, RELAY) is True
        getattr(factory.pin(EMERGENCY), normal)()  # the contact closes
        assert not gate.emergency_active
        assert level(factory, RELAY) is False


def test_a_failing_listener_does_not_undo_the_emergency(factory):
    def broken(active: bool) -> None:
        raise RuntimeError("listener bug")

    events: list[bool] = []
    with turnstile(factory, **EMERGENCY_HIGH) as gate:
        gate.on_emergency.extend([broken, events.append])
        factory.pin(EMERGENCY).drive_high()
        assert level(factory, RELAY) is True
        assert events == [True]


# -- feedback ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "pattern"),
    [
        ("used", LONG_BEEP),
        ("passback", LONG_BEEP),
        ("bad_signature", DEFAULT_REJECT_BEEPS),
        ("gate_fault", THREE_SHORT_BEEPS),
    ],
)
def test_signal_reject_is_non_blocking_and_beeps_the_reasons_pattern(factory, reason, pattern):
    with turnstile(factory, red_pin=RED, buzzer_pin=BUZZER, feedback_seconds=0.1) as gate:
        started = time.monotonic()
        gate.signal_reject(reason)
        assert time.monotonic() - started < pattern.duration / 2
        assert wait_until(lambda: level(factory, RED) is True)
        assert wait_until(
            lambda: rises(factory, BUZZER) == pattern.count and not level(factory, BUZZER)
        )
        assert wait_until(lambda: level(factory, RED) is False)
        time.sleep(0.05)
        assert rises(factory, BUZZER) == pattern.count
        buzzer = factory.pin(BUZZER).states
        assert buzzer[2].timestamp == pytest.approx(pattern.on_seconds, abs=0.05)
        assert level(factory, RELAY) is False


def test_signal_accept_lights_green_and_beeps_once(factory):
    with turnstile(factory, green_pin=GREEN, buzzer_pin=BUZZER, feedback_seconds=0.1) as gate:
        gate.signal_accept()
        assert wait_until(lambda: level(factory, GREEN) is True)
        assert wait_until(lambda: level(factory, GREEN) is False)
        assert wait_until(lambda: rises(factory, BUZZER) == 1 and not level(factory, BUZZER))
        assert level(factory, RELAY) is False


def test_signal_accept_while_unlocked_keeps_green_on(factory):
    with turnstile(
        factory, green_pin=GREEN, buzzer_pin=BUZZER, accept_beep=False, feedback_seconds=0.05
    ) as gate:
        gate.unlock()
        gate.signal_accept()
        time.sleep(0.1)
        assert level(factory, GREEN) is True
        assert rises(factory, BUZZER) == 0


# -- shutdown ----------------------------------------------------------------------------


@pytest.mark.parametrize(("active_high", "locked_level"), [(True, False), (False, True)])
def test_close_after_unlock_leaves_the_relay_locked_and_is_idempotent(
    factory, active_high, locked_level
):
    gate = turnstile(factory, relay_active_high=active_high, green_pin=GREEN, buzzer_pin=BUZZER)
    gate.unlock()
    gate.signal_reject("used")
    gate.close()
    assert level(factory, RELAY) is locked_level
    gate.close()
    assert level(factory, RELAY) is locked_level
    assert gate.relay_state().state == "closed"
    assert not gate.is_unlocked
    with pytest.raises(DriverOperationError, match="closed"):
        gate.unlock()
    with turnstile(factory, green_pin=GREEN, buzzer_pin=BUZZER):  # every pin was released
        pass


@pytest.mark.parametrize("mode", ["hold", "pulse"])
def test_close_on_an_exception_path_locks(factory, mode):
    # In pulse mode the pulse is still running when close() cuts it short.
    with (
        pytest.raises(RuntimeError, match="daemon crashed"),
        turnstile(factory, relay_mode=mode, pulse_seconds=5) as gate,
    ):
        gate.unlock()
        assert wait_until(lambda: level(factory, RELAY) is True)
        raise RuntimeError("daemon crashed")
    assert level(factory, RELAY) is False


def test_close_during_an_emergency_leaves_the_relay_open(factory):
    events: list[bool] = []
    gate = turnstile(factory, **EMERGENCY_HIGH, on_emergency=events.append)
    factory.pin(EMERGENCY).drive_high()
    gate.close()
    assert level(factory, RELAY) is True
    assert gate.relay_state().state == "emergency"
    factory.pin(EMERGENCY).drive_low()  # no longer listened to
    assert level(factory, RELAY) is True
    gate.close()
    assert events == [True]


# -- set-up errors -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["relay_pin", "green_pin", "buzzer_pin", "emergency_pin"])
def test_a_bad_pin_number_names_the_pin(factory, role):
    kwargs = {role: 99} if role != "relay_pin" else {}
    kwargs.setdefault("relay_pin", 99 if role == "relay_pin" else RELAY)
    with pytest.raises(DriverInitError, match=f"{role} 99"):
        Turnstile(pin_factory=factory, **kwargs)
    with turnstile(factory) as gate:  # a failed start released what it had built
        assert level(factory, RELAY) is False
        gate.unlock()


def test_the_same_pin_twice(factory):
    with pytest.raises(DriverInitError, match="green_pin 17 is the same pin as relay_pin"):
        turnstile(factory, green_pin=RELAY)


def test_a_pin_in_use_by_another_device(factory):
    other = LED(RED, pin_factory=factory)
    try:
        with pytest.raises(DriverInitError, match=f"red_pin {RED}"):
            turnstile(factory, red_pin=RED)
    finally:
        other.close()


def test_a_pull_the_pin_cannot_have(factory):
    # GPIO2 has a fixed pull-up on the mocked Pi 3B
    with pytest.raises(DriverInitError, match="emergency_pin 2"):
        turnstile(factory, emergency_pin=2, emergency_active_high=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"relay_mode": "latch"},
        {"unlock_seconds": 0},
        {"pulse_seconds": -1},
        {"passage_pin": PASSAGE, "passage_pull": "sideways"},
    ],
)
def test_invalid_settings(factory, kwargs):
    with pytest.raises(ConfigError):
        turnstile(factory, **kwargs)


# -- pin factories -----------------------------------------------------------------------


def test_make_pin_factory_mock_drives_a_turnstile():
    factory = make_pin_factory("mock")
    assert isinstance(factory, MockFactory)
    with Turnstile(relay_pin=RELAY, pin_factory=factory) as gate:
        gate.unlock()
        assert factory.pin(RELAY).state is True


def test_make_pin_factory_default_is_gpiozeros_search(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    assert make_pin_factory("default") is None
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with pytest.raises(ConfigError, match="mock"):
        make_pin_factory("default")


def test_make_pin_factory_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown pin factory 'gpiod'") as raised:
        make_pin_factory("gpiod")
    assert all(name in str(raised.value) for name in PIN_FACTORIES)


@pytest.mark.skipif(ON_A_PI, reason="on a Raspberry Pi")
def test_no_pin_library_at_all_is_driver_unavailable(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero warns as it falls back from each library
        with pytest.raises(DriverUnavailable, match="relay_pin 17"):
            Turnstile(relay_pin=RELAY, pin_factory=make_pin_factory("default"))


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio installed")
def test_make_pin_factory_lgpio_missing_says_how_to_install():
    with pytest.raises(DriverUnavailable, match="apt install python3-lgpio"):
        make_pin_factory("lgpio")


@pytest.mark.skipif(ON_A_PI, reason="on a Raspberry Pi")
def test_make_pin_factory_native_off_a_pi():
    with pytest.raises(DriverUnavailable, match="native pin factory cannot start"):
        make_pin_factory("native")
