"""Memory soak of the gate's camera path (not a test).

Runs the real :class:`~gate.daemon.GateDaemon` for a while (10 minutes unless told otherwise)
on a provisioned simulated gate: a :class:`~drivers.camera.reader.CameraReader` playing a
generated 640x480 Motion-JPEG video in real time with ``loop=True``, mock GPIO and a simulated
passenger who walks through after each unlock. A code comes into view every few seconds:
multi-use tickets with plenty of uses (an accept, a durable admission, the relay and a passage
every time round), an expired ticket and a forged one (rejects). Every ``--interval`` seconds
the process's resident set (``VmRSS`` in ``/proc/self/status``), the memory blocks Python holds
(``sys.getallocatedblocks``: a leak of Python objects shows here, an allocator's step does
not), the entries in the mock pins' state histories (gpiozero's ``MockPin`` keeps every
change: the fake grows, by about two blocks an entry), the threads, the open file
descriptors and the size of the state directory are sampled; at the end the series, the
maximum and the growth over the second half (least-squares slope, MB/min) are printed next
to the target: RSS <= 150 MB and not growing (a second-half slope of at most 0.1 MB/min).
MB here are 10^6 bytes.

The video is generated in a separate process, so the memory its frames took is not counted in
the gate's figures.

    .venv/bin/python bench/soak.py                 # 10 minutes, a sample every 10 s
    .venv/bin/python bench/soak.py --quick         # 1 minute
    .venv/bin/python bench/soak.py --minutes 60 --interval 30
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.camera.fake import generate_video
from drivers.registry import reader_class
from gate.config import load_config
from gate.daemon import GateDaemon, build_turnstile
from gate.simulation import Issuers, Passenger, SimulatedGate
from gate.state import GateState

RSS_TARGET_MB = 150.0
#: the second half's slope below which the RSS counts as not growing: 0.1 MB/min is 0.5 MB
#: over the second half of a 10-minute run, about what allocator noise can hide
GROWTH_LIMIT_MB_PER_MIN = 0.1
CODE_SECONDS = 0.8
#: a multi-use ticket that is admitted every time it comes round
USES = 1_000_000


# Measuring the process --------------------------------------------------------------------------


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (kB there), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"/proc/self/status has no {field}")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pin_history_entries(pin_factory: Any) -> int:
    """How many state changes the mock pins hold (the fake keeps them all)."""
    return sum(len(pin.states) for pin in list(pin_factory.pins.values()))


def size_on_disk_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file()) / 1e6


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_mb: float
    python_blocks: int
    pin_entries: int
    threads: int
    fds: int
    decisions: int
    frames: int
    state_mb: float


def slope_mb_per_min(samples: Sequence[Sample]) -> float:
    """Least-squares slope of the RSS over time, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    minutes = [s.seconds / 60 for s in samples]
    return statistics.linear_regression(minutes, [s.rss_mb for s in samples]).slope


# The gate -----------------------------------------------------------------------------------------


def loop_scenes(issuers: Issuers, gap: float) -> list[tuple]:
    """One round of the looping video: ten codes, each followed by a blank gap."""
    t = issuers.ticket
    codes = [t("multi", uses=USES) for _ in range(8)]
    codes.insert(3, t("single", exp=issuers.now - 86400))  # expired
    codes.insert(7, Issuers.forged(t("multi", uses=USES)))  # bad signature
    scenes: list[tuple] = []
    for n, text in enumerate(codes):
        scenes.append((None, gap, {"noise": 3.0}))
        options = {"noise": 8.0, "scale": 3 + n % 3, "inverted": n % 4 == 3}
        scenes.append((text, CODE_SECONDS, options))
    return scenes


def make_video_elsewhere(path: Path, scenes: list[tuple], fps: float) -> list[tuple]:
    """generate_video in a child process, so its frames never enter this process's heap."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(generate_video, path, scenes, fps=fps).result()


class Tally:
    """Counts the daemon's records without keeping them (keeping them would grow the RSS)."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.decisions = 0

    def __call__(self, record: dict[str, Any]) -> None:
        if record["kind"] == "decision":
            self.decisions += 1
            self.reasons[record["reason"]] += 1
        else:
            self.events[record["kind"]] += 1


def soak(seconds: float, interval: float, fps: float, work: Path) -> list[bool]:
    sim = SimulatedGate(work, camera=True, serial=False, nfc=False)
    config = load_config(sim.config_path)
    camera_config = config.camera
    gap = camera_config.dedup_window + 0.2
    timeline = make_video_elsewhere(sim.video, loop_scenes(sim.issuers, gap), fps)
    round_seconds = timeline[-1][1]
    print(
        f"video     {sim.video.name}: 10 codes in {round_seconds:.0f} s at {fps:g} fps, 640x480"
        f" MJPG, played in real time with loop=True; each code {CODE_SECONDS:g} s in view after"
        f" {gap:.1f} s blank (> the {camera_config.dedup_window:g} s de-duplication window)"
    )
    print(
        "codes     8 multi-use tickets (accepted every round), 1 expired, 1 forged;"
        f" decoder {camera_config.decoder}"
    )

    state = GateState(config)
    for name in ("trust-v1.cose", "revocations-v1.cose"):
        state.import_document(work / name)
    turnstile = build_turnstile(config, pin_factory=sim.pin_factory)
    passenger = Passenger(sim.pin_factory)
    camera = reader_class("camera")(
        camera_config.source,
        width=camera_config.width,
        height=camera_config.height,
        fps=camera_config.fps,
        decoder=camera_config.decoder,
        dedup_window=camera_config.dedup_window,
        loop=True,
    )
    tally = Tally()
    daemon = GateDaemon(
        state,
        [camera],
        turnstile,
        passage_timeout=config.gpio.passage_timeout,
        on_record=tally,
    )
    passenger.start()
    thread = threading.Thread(target=daemon.run, name="decision-loop")
    thread.start()
    started = time.monotonic()
    samples: list[Sample] = []
    print(
        f"\n  {'time':>6} {'RSS':>9} {'py blocks':>10} {'pin log':>8} {'threads':>8} {'fds':>4}"
        f" {'decisions':>10} {'frames':>7} {'state dir':>10}"
    )
    try:
        for n in range(int(seconds // interval) + 1):
            due = started + n * interval
            time.sleep(max(0.0, due - time.monotonic()))
            sample = Sample(
                time.monotonic() - started,
                proc_status_mb("VmRSS"),
                sys.getallocatedblocks(),
                pin_history_entries(sim.pin_factory),
                threading.active_count(),
                open_fds(),
                tally.decisions,
                camera.frames_decoded,
                size_on_disk_mb(config.state_dir),
            )
            samples.append(sample)
            print(
                f"  {sample.seconds:5.0f}s {sample.rss_mb:6.1f} MB {sample.python_blocks:10}"
                f" {sample.pin_entries:8} {sample.threads:8} {sample.fds:4}"
                f" {sample.decisions:10} {sample.frames:7} {sample.state_mb:7.2f} MB",
                flush=True,
            )
    finally:
        daemon.stop.set()
        thread.join(timeout=10)
        passenger.stop()
        state.close()
        sim.close()
    return report(samples, proc_status_mb("VmHWM"), tally, passenger, sim, camera.stats())


def report(
    samples: list[Sample],
    peak_mb: float,
    tally: Tally,
    passenger: Passenger,
    sim: SimulatedGate,
    stats: dict[str, float],
) -> list[bool]:
    duration = samples[-1].seconds
    second_half = [s for s in samples if s.seconds >= duration / 2]
    slope = slope_mb_per_min(second_half)
    highest = max(s.rss_mb for s in samples)
    print(f"\nsummary over {duration / 60:.1f} min, {len(samples)} samples")
    print(
        f"  RSS: start {samples[0].rss_mb:.1f} MB, at half time {second_half[0].rss_mb:.1f} MB,"
        f" end {samples[-1].rss_mb:.1f} MB; max of the samples {highest:.1f} MB,"
        f" peak (VmHWM) {peak_mb:.1f} MB"
    )
    print(
        f"  growth: second half {slope:+.3f} MB/min"
        f" ({second_half[-1].rss_mb - second_half[0].rss_mb:+.1f} MB from"
        f" {second_half[0].seconds:.0f} s to {duration:.0f} s), whole run"
        f" {slope_mb_per_min(samples):+.3f} MB/min"
    )
    first, last = second_half[0], second_half[-1]
    blocks = last.python_blocks - first.python_blocks
    pins = last.pin_entries - first.pin_entries
    print(
        f"  Python blocks over the second half: {first.python_blocks} to {last.python_blocks}"
        f" ({blocks:+}); the mock pins' histories grew by {pins} entries, about {2 * pins}"
        f" blocks; the rest {blocks - 2 * pins:+} blocks"
    )
    print(
        f"  threads {min(s.threads for s in samples)} to {max(s.threads for s in samples)},"
        f" open fds {min(s.fds for s in samples)} to {max(s.fds for s in samples)}"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in tally.reasons.most_common())
    events = ", ".join(f"{k} {v}" for k, v in sorted(tally.events.items()))
    print(f"  decisions {tally.decisions} ({reasons}); events: {events}")
    print(
        f"  relay pulses {sim.relay_pulses()}, passages {passenger.walked}; frames read"
        f" {stats['frames_read']:.0f}, decoded {stats['frames_decoded']:.0f}, dropped unseen"
        f" {stats['frames_dropped']:.0f}"
    )
    verdicts = [max(highest, peak_mb) <= RSS_TARGET_MB, slope <= GROWTH_LIMIT_MB_PER_MIN]
    print(
        f"\ntarget RSS <= {RSS_TARGET_MB:.0f} MB: peak {max(highest, peak_mb):.1f} MB"
        f"  {'PASS' if verdicts[0] else 'FAIL'}"
    )
    print(
        f"target not growing (second-half slope <= {GROWTH_LIMIT_MB_PER_MIN} MB/min):"
        f" {slope:+.3f} MB/min  {'PASS' if verdicts[1] else 'FAIL'}"
    )
    return verdicts


# Main ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate of the video")
    parser.add_argument("--quick", action="store_true", help="1 minute")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    print("memory soak (bench/soak.py)")
    print(f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine   {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs")
    print(f"software  Python {platform.python_version()}")
    print(f"command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"duration  {args.minutes:g} min, RSS sampled every {args.interval:g} s")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as work:
        verdicts = soak(args.minutes * 60, args.interval, args.fps, Path(work))
    print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
