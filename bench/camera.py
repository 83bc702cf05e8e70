"""Benchmark of the camera path (not a test).

Prints median and p99 figures for:

- the per-frame decode time of zxing-cpp and pyzbar side by side, with their ratio, on
  generated 640x480 noisy frames with and without a GT1 QR code (and the chain the gate uses,
  ``zxing+pyzbar``, whose fallback runs on at most every third empty frame);
- the sustained frame rate of the camera path: ``CameraReader._read`` in a loop on a generated
  Motion-JPEG video with ``realtime=False`` (every frame handed over, none dropped), so each
  frame costs the JPEG decode, the grey conversion and the QR decode, on one CPU core;
- the decode rate on real photographs, ZXing's black-box sets ``qrcode-1`` to ``qrcode-3`` in
  ``../shared/qr-corpus`` (``N.png`` with the exact expected text in ``N.txt``), for each
  decoder configuration, through ``scan_image``'s loading and the camera's decoders. Skipped
  when the directory is absent;
- the frame-to-relay latency through the real daemon: a ``SimulatedGate`` (camera, pty serial
  scanner, mock GPIO, a passenger) plays a generated video in real time with distinct valid
  tickets, and the daemon's ``latency_ms`` of each accept is collected, frame capture (or the
  serial line's first byte) to the relay command; see :func:`frame_to_relay_latency`.

    .venv/bin/python bench/camera.py            # everything, on the last CPU core
    .venv/bin/python bench/camera.py --quick    # fewer frames, shorter videos, 12 tickets
    .venv/bin/python bench/camera.py --latency-codes 60 --latency-fps 30
    .venv/bin/python bench/camera.py --cpu 0 --frames 500 --video-seconds 30
"""

from __future__ import annotations

import argparse
import ctypes.util
import gc
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2
import nacl.signing
import numpy as np

from drivers.base import HealthState
from drivers.camera.decoders import DECODER_NAMES, make_decoder
from drivers.camera.fake import generate_video, make_frame
from drivers.camera.reader import CameraReader
from drivers.camera.scan import load_gray, make_image_decoder
from gate.config import load_config
from gate.errors import DriverOperationError
from gate.simulation import SimulatedGate
from gate.ticket import Claims, mint_ticket

ROOT = Path(__file__).resolve().parent.parent

CORPUS = ROOT.parent / "shared" / "qr-corpus"
CORPUS_SETS = ("qrcode-1", "qrcode-2", "qrcode-3")
SUSTAINED_FPS_TARGET = 30.0
FRAME_SIZE = (640, 480)
SEED = 20261125


# Figures ------------------------------------------------------------------------------------------


def quantile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of ``samples`` (the smallest with at least ``q`` at or below)."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def timed_ms(
    call: Callable[[np.ndarray], list[str]], frames: Sequence[np.ndarray]
) -> tuple[list[float], list[list[str]]]:
    """Milliseconds per ``call(frame)`` for each frame, after a short warm-up, and the results."""
    for frame in frames[:20]:
        call(frame)
    gc.collect()
    samples, results = [], []
    for frame in frames:
        start = time.perf_counter_ns()
        result = call(frame)
        samples.append((time.perf_counter_ns() - start) / 1e6)
        results.append(result)
    return samples, results


def _row(label: str, samples: Sequence[float], extra: str = "") -> str:
    return (
        f"  {label:34} {statistics.median(samples):8.2f} ms {quantile(samples, 0.99):8.2f} ms"
        f"  {extra}"
    ).rstrip()


def tickets(count: int) -> list[str]:
    key = nacl.signing.SigningKey(bytes(32))
    return [
        mint_ticket(Claims(cti=f"bench-{n:08d}".encode(), exp=2_000_000_000, product="single"), key)
        for n in range(count)
    ]


# 1. Decode time per frame -------------------------------------------------------------------------


def bench_decoders(count: int) -> None:
    rng = np.random.default_rng(SEED)
    texts = tickets(count)
    with_code = []
    for n, text in enumerate(texts):
        position = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
        with_code.append(make_frame(text, noise=12.0, scale=3 + n % 3, position=position, rng=rng))
    empty = [make_frame(None, noise=12.0, rng=rng) for _ in range(count)]
    print(f"\n1. decode time per frame: {count} frames each, 640x480 grey, noise sigma 12")
    print(f"  {'decoder, frames':34} {'median':>11} {'p99':>11}")
    medians: dict[tuple[str, str], float] = {}
    for label, frames in (("with a GT1 code", with_code), ("without a code", empty)):
        for name in DECODER_NAMES:
            decoder = make_decoder(name, fallback_every=3)
            samples, results = timed_ms(decoder.decode, frames)
            expected = texts if frames is with_code else [None] * len(frames)
            right = sum(
                result == ([text] if text else [])
                for result, text in zip(results, expected, strict=True)
            )
            extra = f"right {right}/{len(frames)}"
            medians[(label, name)] = statistics.median(samples)
            print(_row(f"{name}, {label}", samples, extra))
        ratio = medians[(label, "pyzbar")] / medians[(label, "zxing")]
        print(f"  {'':34} pyzbar / zxing-cpp median: {ratio:.1f}x")


# 2. Sustained frame rate of the camera path -------------------------------------------------------


def bench_sustained(seconds: float, workdir: Path) -> list[bool]:
    path = workdir / "sustained.avi"
    # A different ticket in every scene: with realtime=False the video plays faster than real
    # time, so the same ticket twice would fall inside the de-duplication window.
    texts = tickets(int(seconds))
    scenes = []
    for n in range(int(seconds)):
        text = texts[n] if n % 2 == 0 else None
        scenes.append((text, 1.0, {"noise": 8.0, "blur": 0.6 * (n % 3), "inverted": n % 4 == 2}))
    generate_video(path, scenes, fps=30, size=FRAME_SIZE, seed=SEED)
    print(
        f"\n2. sustained camera path: CameraReader._read loop, {seconds:.0f} s of 640x480 MJPG at"
        f" 30 fps, realtime=False (no frame dropped), target >= {SUSTAINED_FPS_TARGET:.0f} fps"
    )
    shown = sum(1 for text, _, _ in scenes if text)
    print(f"  {'decoder':14} {'frames':>7} {'fps':>8} {'ms/frame':>9} {'presented':>10}")
    verdicts = []
    for name in DECODER_NAMES:
        reader = CameraReader(path, decoder=name, realtime=False, dedup_window=0.5)
        reader._open()
        start = time.perf_counter()
        try:
            while True:
                reader._read(1.0)
        except DriverOperationError as err:
            if "end of video" not in str(err):
                raise
        elapsed = time.perf_counter() - start
        reader.close()
        stats = reader.stats()
        fps = stats["frames_decoded"] / elapsed
        verdict = fps >= SUSTAINED_FPS_TARGET
        verdicts.append(verdict)
        print(
            f"  {name:14} {stats['frames_decoded']:7.0f} {fps:8.1f} {1000 / fps:9.2f}"
            f" {stats['presented']:6.0f}/{shown:<3}  {'PASS' if verdict else 'FAIL'}"
        )
    return verdicts


# 3. Decode rate on real photographs ---------------------------------------------------------------


def corpus_items() -> list[tuple[str, Path, str]]:
    items = []
    for set_name in CORPUS_SETS:
        for image in sorted((CORPUS / set_name).glob("*.png"), key=lambda p: int(p.stem)):
            expected = image.with_suffix(".txt")
            if expected.is_file():
                # newline="" keeps CRLF: the expected texts are compared exactly
                items.append((set_name, image, expected.open(encoding="utf-8", newline="").read()))
    return items


def bench_corpus() -> list[bool]:
    if not CORPUS.is_dir():
        print(f"\n3. decode rate on real photographs: skipped, {CORPUS} is absent")
        return []
    items = corpus_items()
    images = [(set_name, load_gray(path), expected) for set_name, path, expected in items]
    print(f"\n3. decode rate on real photographs: {CORPUS} ({len(items)} images)")
    header = " ".join(f"{name:>9}" for name in CORPUS_SETS)
    print(f"  {'decoder':14} {header} {'total':>7} {'median':>9} {'p99':>9}")
    totals = {}
    for name in DECODER_NAMES:
        decoder = make_image_decoder(name)
        for _, gray, _ in images[:5]:  # warm-up, not counted
            decoder.decode(gray)
        per_set = dict.fromkeys(CORPUS_SETS, 0)
        sizes = dict.fromkeys(CORPUS_SETS, 0)
        samples = []
        for set_name, gray, expected in images:
            start = time.perf_counter_ns()
            codes = decoder.decode(gray)
            samples.append((time.perf_counter_ns() - start) / 1e6)
            sizes[set_name] += 1
            per_set[set_name] += expected in codes
        totals[name] = sum(per_set.values())
        cells = " ".join(f"{per_set[s]:>4}/{sizes[s]:<4}" for s in CORPUS_SETS)
        print(
            f"  {name:14} {cells} {totals[name]:>3}/{len(images):<3}"
            f" {statistics.median(samples):6.2f} ms {quantile(samples, 0.99):6.2f} ms"
        )
    best_single = max(totals["zxing"], totals["pyzbar"])
    verdict = totals["zxing+pyzbar"] >= best_single
    print(
        f"  the gate's chain reads {totals['zxing+pyzbar']}, its best single decoder"
        f" {best_single}: {'PASS' if verdict else 'FAIL'}"
    )
    return [verdict]


# 4. Frame to relay --------------------------------------------------------------------------------

LATENCY_P99_TARGET_MS = 50.0
CODE_SECONDS = 0.8  # how long each code is held in view
LEAD_IN_SECONDS = 1.0  # blank frames first, while the readers open


def frame_to_relay_latency(codes: int, fps: float, workdir: Path) -> list[bool]:
    """The latency from a frame's capture to the relay command, through the real daemon.

    A :class:`~gate.simulation.SimulatedGate` with a camera, a serial scanner (a pty), mock
    GPIO and a passenger who walks through 0.25 s after each unlock runs the real
    :class:`~gate.daemon.GateDaemon`. The camera plays a generated video in real time with
    ``codes`` distinct valid GT1 tickets, each in view for ``CODE_SECONDS`` and followed by a
    blank gap longer than the camera's de-duplication window; in the middle of each gap the
    scanner sends another ticket. The decision loop waits for the passage after each accept,
    so the codes are spaced so that none arrives while a passage is pending (it would
    wait in the queue, and that wait is not the path measured). The figures are the daemon's
    own ``latency_ms`` per accepted decision: ``Presentation.arrived`` (the capture of the frame
    the code was decoded from, or the first byte of the serial line) to the relay command.
    """
    print(
        "\n4. frame to relay through gated: SimulatedGate running the real GateDaemon (camera,"
        " pty serial scanner, mock GPIO, simulated passenger),"
        f" target p99 <= {LATENCY_P99_TARGET_MS:.0f} ms"
    )
    with SimulatedGate(workdir, camera=True, serial=True, nfc=False) as sim:
        camera_config = load_config(sim.config_path).camera
        gap = camera_config.dedup_window + 0.2
        rng = np.random.default_rng(SEED)
        scenes: list[tuple] = [(None, LEAD_IN_SECONDS, {"noise": 3.0})]
        for n in range(codes):
            options = {
                "noise": 8.0,
                "scale": 3 + n % 3,
                "position": (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))),
                "inverted": n % 4 == 3,
            }
            scenes.append((sim.issuers.ticket("single"), CODE_SECONDS, options))
            scenes.append((None, gap, {"noise": 3.0}))
        timeline = sim.make_video(scenes, fps=fps)
        print(
            f"  {codes} distinct valid GT1 tickets on a {fps:g} fps 640x480 MJPG video played in"
            f" real time ({timeline[-1][1]:.0f} s), decoder {camera_config.decoder}: each code"
            f" {CODE_SECONDS:g} s in view, then {gap:.1f} s blank (> the"
            f" {camera_config.dedup_window:g} s de-duplication window); a serial ticket mid-gap"
        )
        daemon = sim.start()
        print(
            "  the decision loop waits for the passage sensor after each accept (the passenger"
            f" walks {sim.passenger.delay:g} s after the relay opens): codes and serial lines are"
            " spaced so that none arrives while a passage is pending"
        )
        camera, scanner = (
            next(r for r in daemon.readers if r.name == name) for name in ("camera", "serial")
        )
        sent = skipped = 0
        for start, end, text in timeline[1:]:
            if text is not None:
                continue
            _wait_for_frame(camera, round((start + end) / 2 * fps), timeout=end - start + 10)
            if scanner.health.get().state is HealthState.OK:
                sim.scanner.send(sim.issuers.ticket("single"))
                sent += 1
            else:
                skipped += 1  # pyserial empties the input when it opens: the line would be lost
        _wait_for_frame(camera, round(timeline[-1][1] * fps), timeout=10)
        deadline = time.monotonic() + 5
        while not daemon.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(2 * sim.passenger.delay + 0.2)  # the last passage
        return _latency_report(sim, codes, sent, skipped, camera.stats())


def _wait_for_frame(camera: CameraReader, number: int, timeout: float) -> bool:
    """Wait until the camera has read frame ``number`` of the video (or it ended, or failed)."""
    deadline = time.monotonic() + timeout
    while camera.stats()["frames_read"] < number:
        if time.monotonic() > deadline or camera.health.get().state is HealthState.FAILED:
            return False
        time.sleep(0.01)
    return True


def _latency_report(
    sim: SimulatedGate, codes: int, sent: int, skipped: int, stats: dict[str, float]
) -> list[bool]:
    print(f"  {'path':28} {'accepted':>9} {'p50':>9} {'p99':>9} {'max':>9}")
    verdicts = []
    paths = (
        ("camera", "camera: frame -> relay", codes),
        ("serial", "serial: first byte -> relay", sent),
    )
    for source, label, shown in paths:
        decisions = sim.decisions(source)
        samples = [d["latency_ms"] for d in decisions if d["reason"] == "ok"]
        others = Counter(d["reason"] for d in decisions if d["reason"] != "ok")
        figures = (
            f"{statistics.median(samples):6.2f} ms {quantile(samples, 0.99):6.2f} ms"
            f" {max(samples):6.2f} ms"
            if samples
            else f"{'-':>9} {'-':>9} {'-':>9}"
        )
        if source == "camera":
            verdict = bool(samples) and quantile(samples, 0.99) <= LATENCY_P99_TARGET_MS
            verdicts.append(verdict)
            figures += f"  {'PASS' if verdict else 'FAIL'}"
        else:
            figures += "  (no target)"
        print(f"  {label:28} {len(samples):4}/{shown:<4} {figures}")
        if others:
            print(f"  {'':28} also: {', '.join(f'{k} {v}' for k, v in sorted(others.items()))}")
    annulled = sum(1 for r in sim.records if r["kind"] == "annulled")
    print(
        f"  relay pulses {sim.relay_pulses()}, passages {sim.passenger.walked}, annulled"
        f" {annulled}; frames read {stats['frames_read']:.0f}, decoded"
        f" {stats['frames_decoded']:.0f}, dropped unseen {stats['frames_dropped']:.0f}"
        + (f"; {skipped} serial lines not sent (port not open yet)" if skipped else "")
    )
    print(
        "  p99 is the nearest rank (below 100 samples, the max); latency_ms is the daemon's own"
        " figure: frame capture (or first byte) -> relay command, all threads on the core above"
    )
    return verdicts


# Main ---------------------------------------------------------------------------------------------


def pin_to_one_core(cpu: int | None) -> str:
    """Run this process (and every thread it starts later) on one CPU core."""
    cv2.setNumThreads(1)
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen} of {len(allowed)}, cv2.setNumThreads(1)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _libzbar() -> str:
    path = ctypes.util.find_library("zbar")
    return Path(path).name if path else "not found"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per decode row")
    parser.add_argument("--video-seconds", type=float, default=20.0, help="sustained video")
    parser.add_argument("--cpu", type=int, help="CPU core to run on (default: the last)")
    parser.add_argument(
        "--latency-codes", type=int, default=100, help="tickets shown for frame to relay"
    )
    parser.add_argument(
        "--latency-fps", type=float, default=15.0, help="frame rate of the latency video"
    )
    parser.add_argument(
        "--quick", action="store_true", help="100 frames, a 6 s video, 12 latency tickets"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.video_seconds, args.latency_codes = 100, 6.0, 12
    pinning = pin_to_one_core(args.cpu)
    print("camera benchmark (bench/camera.py)")
    print(f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine   {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs; {pinning}")
    print(
        f"software  Python {platform.python_version()}, OpenCV {cv2.__version__}, zxing-cpp "
        f"{_version('zxing-cpp')}, pyzbar {_version('pyzbar')}, libzbar {_libzbar()}"
    )
    print(f"command   {' '.join([Path(sys.executable).name, *sys.argv])}")
    bench_decoders(args.frames)
    with tempfile.TemporaryDirectory(prefix="bench-camera-") as workdir:
        verdicts = bench_sustained(args.video_seconds, Path(workdir))
    verdicts += bench_corpus()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as workdir:
        verdicts += frame_to_relay_latency(args.latency_codes, args.latency_fps, Path(workdir))
    print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
