"""The camera path on real OpenCV, real video files and real decoders: decoders, the newest-frame
grabber, the CameraReader's GT1 filter and de-duplication, failures and recovery, scan-image."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nacl.signing
import numpy as np
import pytest
import segno
from helpers_cli import run_script

from drivers.base import HealthState, Presentation
from drivers.camera.decoders import (
    DECODER_NAMES,
    Decoder,
    FallbackDecoder,
    PyzbarDecoder,
    ZxingDecoder,
    make_decoder,
)
from drivers.camera.fake import generate_video, make_frame
from drivers.camera.reader import CameraReader
from drivers.camera.scan import ImageReadError, scan_image
from gate.cli import SCAN_DECODERS
from gate.errors import DriverOperationError, DriverUnavailable
from gate.ticket import Claims, mint_ticket

URL = "https://example.org/not-a-ticket"
KEY = nacl.signing.SigningKey.generate()
TICKET = mint_ticket(Claims(cti=b"cam-test-0001", exp=2_000_000_000, product="single"), KEY)
OTHER = mint_ticket(Claims(cti=b"cam-test-0002", exp=2_000_000_000, product="single"), KEY)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@contextmanager
def running(reader: CameraReader) -> Iterator[list[Presentation]]:
    """``reader.run`` in a thread, as the daemon runs it; yields what it delivered."""
    delivered: list[Presentation] = []
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(delivered.append, stop), daemon=True)
    thread.start()
    try:
        yield delivered
        assert thread.is_alive(), "the reader thread died"
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def read_to_end(reader: CameraReader) -> list[Presentation]:
    """Open a non-looping file reader and call ``_read`` until the video ends."""
    presentations: list[Presentation] = []
    reader._open()
    try:
        with pytest.raises(DriverOperationError, match="end of video"):
            for _ in range(100_000):
                presentations += reader._read(1.0)
    finally:
        reader.close()
    return presentations


# Decoders -------------------------------------------------------------------------------------

FRAME_STYLES = {
    "plain": {},
    "inverted": {"inverted": True},
    "noisy": {"noise": 20.0},
    "blurred": {"blur": 1.5},
    "noisy-blurred": {"noise": 10.0, "blur": 1.0},
    "small": {"scale": 2, "position": (0.2, 0.3)},
}


@pytest.mark.parametrize("name", DECODER_NAMES)
@pytest.mark.parametrize("style", FRAME_STYLES)
def test_decoders_read_a_gt1_code(name, style):
    frame = make_frame(TICKET, **FRAME_STYLES[style])
    assert make_decoder(name).decode(frame) == [TICKET]


@pytest.mark.parametrize("name", DECODER_NAMES)
def test_decoders_read_bgr_frames_and_find_nothing_in_an_empty_scene(name):
    decoder = make_decoder(name)
    assert decoder.decode(make_frame(TICKET, color=True, noise=5.0)) == [TICKET]
    assert decoder.decode(make_frame(None, noise=20.0)) == []


GARBAGE = {
    "empty": np.zeros((0, 0), np.uint8),
    "empty-rows": np.zeros((0, 640), np.uint8),
    "one-pixel": np.zeros((1, 1), np.uint8),
    "one-row": np.full((1, 5000), 255, np.uint8),
    "float": np.random.default_rng(1).random((60, 60)),
    "huge-int": np.full((40, 40), 2**62, np.int64),
    "bool": np.ones((30, 30), bool),
    "object": np.array([[None, "x"]], dtype=object),
    "1-d": np.zeros(100, np.uint8),
    "0-d": np.array(7, np.uint8),
    "4-d": np.zeros((4, 4, 3, 2), np.uint8),
    "two-channels": np.zeros((20, 20, 2), np.uint8),
    "five-channels": np.zeros((20, 20, 5), np.uint8),
    "strided": np.zeros((300, 300), np.uint8)[::3, ::7],
    "random": np.random.default_rng(2).integers(0, 256, (480, 640), dtype=np.uint8),
    "white": np.full((480, 640), 255, np.uint8),
    "not-an-array": [[0, 255], [255, 0]],
    "none": None,
}


@pytest.mark.parametrize("name", DECODER_NAMES)
def test_decoders_never_raise_on_garbage(name):
    decoder = make_decoder(name)
    for label, array in GARBAGE.items():
        assert decoder.decode(array) == [], label


class CountingDecoder(Decoder):
    """A decoder that finds nothing and counts how often it was asked."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _decode(self, gray: np.ndarray) -> list[str]:
        self.calls += 1
        return []


def test_fallback_runs_only_when_the_primary_finds_nothing_and_is_throttled():
    secondary = CountingDecoder()
    chain = FallbackDecoder(ZxingDecoder(), secondary, every_n=3)
    empty, coded = make_frame(None), make_frame(TICKET)
    for _ in range(9):
        assert chain.decode(empty) == []
    assert secondary.calls == 3
    for _ in range(5):
        assert chain.decode(coded) == [TICKET]
    assert secondary.calls == 3
    # pyzbar as the fallback of a primary that cannot read anything
    assert FallbackDecoder(CountingDecoder(), PyzbarDecoder()).decode(coded) == [TICKET]


def test_decoder_registry():
    assert make_decoder("zxing+pyzbar").name == "zxing+pyzbar"
    assert isinstance(make_decoder("pyzbar"), PyzbarDecoder)
    for bad in ("", "zbar", "zxing+", "opencv"):
        with pytest.raises(DriverUnavailable, match="known: zxing, pyzbar, zxing\\+pyzbar"):
            make_decoder(bad)
    assert SCAN_DECODERS == DECODER_NAMES


# CameraReader on generated videos -------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("camera") / "scenes.avi"
    timeline = generate_video(
        path,
        [
            (None, 0.4),
            (TICKET, 1.0, {"noise": 8.0}),
            (None, 0.3, {"noise": 8.0}),
            (OTHER, 1.0, {"inverted": True, "blur": 1.0}),
            (URL, 0.7),
            (None, 0.2),
        ],
        fps=15,
    )
    return path, timeline


def test_every_frame_of_a_file_is_decoded_and_only_gt1_codes_are_presented(scenes_video):
    path, timeline = scenes_video
    reader = CameraReader(path, realtime=False, dedup_window=60.0)
    presentations = read_to_end(reader)
    assert [p.text for p in presentations] == [TICKET, OTHER]
    assert all(p.source == "camera" for p in presentations)
    assert presentations[0].arrived < presentations[1].arrived
    stats = reader.stats()
    assert stats["frames_decoded"] == stats["frames_read"] == round(timeline[-1][1] * 15)
    assert stats["frames_dropped"] == 0
    assert reader.presented == 2


def test_large_frames_are_shrunk_before_decoding(tmp_path):
    path = tmp_path / "large.avi"
    generate_video(path, [(TICKET, 0.4, {"scale": 6, "noise": 4.0})], fps=10, size=(1280, 960))
    reader = CameraReader(path, realtime=False, max_decode_side=640)
    assert reader._prepare(make_frame(None, size=(1280, 960), color=True)).shape == (480, 640)
    assert [p.text for p in read_to_end(reader)] == [TICKET]


def test_a_held_code_is_presented_once_and_again_after_leaving_the_view(tmp_path):
    path = tmp_path / "held.avi"
    timeline = generate_video(
        path,
        [
            (None, 0.3),
            (TICKET, 3.0, {"noise": 6.0}),
            (None, 0.8),  # longer than the window: the same ticket may come again
            (TICKET, 0.6),
            (OTHER, 0.6),
            (URL, 0.6),
            (None, 0.2),
        ],
        fps=15,
    )
    reader = CameraReader(path, dedup_window=0.5)  # real time, like a camera
    reader.backoff_max = 0.2
    started = time.monotonic()
    with running(reader) as delivered:
        assert wait_for(lambda: reader.health.get().reason == "camera: end of video", 20)
        count = len(delivered)
        time.sleep(0.5)  # the base class tries again: an ended file is not replayed
        assert len(delivered) == count
        assert reader.health.get().state is HealthState.FAILED
    assert [p.text for p in delivered] == [TICKET, TICKET, OTHER]
    # Arrival is the capture time of the frame, and frames come at the video's pace.
    offsets = [p.arrived - started for p in delivered]
    expected = [start for start, _, text in timeline if text and text.startswith("GT1:")]
    for offset, start in zip(offsets, expected, strict=True):
        assert start <= offset < start + 1.0


def test_a_slow_consumer_gets_the_newest_frame_and_no_backlog(tmp_path):
    path = tmp_path / "steady.avi"
    generate_video(path, [(TICKET, 3.0, {"noise": 4.0})], fps=30)
    reader = CameraReader(path, dedup_window=0.0)  # every decoded frame presents the code
    tracemalloc.start()
    try:
        reader._open()
        ages = []
        baseline = None
        for _ in range(8):
            time.sleep(0.2)  # a consumer six frames slower than the camera
            presentations = reader._read(1.0)
            ages += [time.monotonic() - p.arrived for p in presentations]
            current, _ = tracemalloc.get_traced_memory()
            baseline = baseline or current
        stats = reader.stats()
        grown = current - baseline
    finally:
        tracemalloc.stop()
        reader.close()
    assert len(ages) == 8
    assert max(ages) < 0.15, ages  # a queue would make the eighth frame 1.4 s old
    assert stats["frames_dropped"] >= 30
    assert stats["frames_decoded"] == 8
    assert grown < 2 * 640 * 480 * 3, grown  # at most about one frame held, no queue


def test_a_looping_file_starts_over(tmp_path):
    path = tmp_path / "short.avi"
    generate_video(path, [(TICKET, 0.5)], fps=10)
    reader = CameraReader(path, realtime=False, loop=True)
    reader._open()
    try:
        presentations = []
        for _ in range(16):
            presentations += reader._read(1.0)
        assert reader.stats()["frames_read"] >= 16
    finally:
        reader.close()
    assert [p.text for p in presentations] == [TICKET]


@pytest.mark.parametrize("source", ["/dev/video97", 97])
def test_a_missing_device_fails_health_without_crashing(source):
    reader = CameraReader(source)
    with running(reader):
        assert wait_for(lambda: reader.health.get().state is HealthState.FAILED)
        assert "no such device" in reader.health.get().reason


def test_a_missing_file_fails_health_and_is_picked_up_when_it_appears(tmp_path):
    path = tmp_path / "later.avi"
    reader = CameraReader(path)
    reader.backoff_max = 0.2
    with running(reader) as delivered:
        assert wait_for(lambda: reader.health.get().state is HealthState.FAILED)
        assert reader.health.get().reason == f"camera: {path}: no such video file"
        time.sleep(0.3)
        # Written beside it and renamed, as any file should arrive, so no half file is opened.
        generate_video(tmp_path / "later.tmp.avi", [(None, 0.2), (TICKET, 0.6)], fps=15)
        (tmp_path / "later.tmp.avi").rename(path)
        assert wait_for(lambda: len(delivered) == 1)
    assert delivered[0].text == TICKET


def test_a_source_that_stops_delivering_frames_fails_and_is_retried(tmp_path):
    path = tmp_path / "stalls.avi"
    generate_video(path, [(None, 1.0)], fps=15)
    # Played at one frame every 5 s, the file looks like a camera that froze after a frame.
    reader = CameraReader(path, fps=0.2)
    reader.stall_timeout = 0.3
    reader.backoff_max = 0.2
    with running(reader):
        assert wait_for(lambda: "no frames for" in reader.health.get().reason, 5)
        assert reader.health.get().state is HealthState.FAILED


# scan_image and gatectl scan-image -------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = {
        "ticket": folder / "ticket.png",
        "url": folder / "url.png",
        "transparent": folder / "transparent.png",
        "blank": folder / "blank.png",
        "not-an-image": folder / "notes.png",
        "missing": folder / "missing.png",
    }
    segno.make_qr(TICKET, mode="alphanumeric", error="m").save(paths["ticket"], scale=4)
    segno.make_qr(URL, error="m").save(paths["url"], scale=6)
    segno.make_qr(OTHER, mode="alphanumeric").save(paths["transparent"], scale=3, light=None)
    segno.make_qr("x").save(paths["blank"], scale=1, dark="white")
    paths["not-an-image"].write_text("GT1: this is text, not a picture\n")
    return paths


@pytest.mark.parametrize("name", DECODER_NAMES)
def test_scan_image_reports_every_code(images, name):
    assert scan_image(images["ticket"], name) == [TICKET]
    assert scan_image(images["url"], name) == [URL]
    assert scan_image(images["transparent"], name) == [OTHER]
    assert scan_image(images["blank"], name) == []


def test_scan_image_refuses_missing_and_non_image_files(images):
    with pytest.raises(ImageReadError, match=r"missing\.png: no such file"):
        scan_image(images["missing"])
    with pytest.raises(DriverOperationError, match=r"notes\.png: not an image"):
        scan_image(images["not-an-image"])


def test_gatectl_scan_image_json(images):
    order = ["ticket", "missing", "url", "not-an-image", "blank"]
    result = run_script("gatectl", "scan-image", "--json", *(str(images[k]) for k in order))
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert [entry["file"] for entry in out] == [str(images[k]) for k in order]
    assert [entry["codes"] for entry in out] == [[TICKET], [], [URL], [], []]
    assert ["error" in entry for entry in out] == [False, True, False, True, False]
    assert "no such file" in out[1]["error"]
    assert result.stderr.count("gatectl: error: ") == 2


def test_gatectl_scan_image_text_and_decoder_choice(images):
    files = [str(images["ticket"]), str(images["blank"])]
    result = run_script("gatectl", "scan-image", "--decoder", "zxing+pyzbar", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{files[0]}: {TICKET}", f"{files[1]}: no QR code found"]
    result = run_script("gatectl", "scan-image", "--json", "--decoder", "pyzbar", files[0])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"file": files[0], "codes": [TICKET]}]
