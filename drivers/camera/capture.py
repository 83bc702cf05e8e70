"""Frames from OpenCV, always the newest one: a grabber thread and a one-frame slot.

A camera delivers 15 to 30 frames a second whether we keep up or not. If the decoder is slower
than the camera for a while (a busy core, a hard frame), reading frames one after the other
would work through an ever older backlog, and a ticket would be decided seconds after it was
shown. :class:`FrameGrabber` therefore reads in its own thread and keeps only the latest frame,
with the ``time.monotonic()`` at which it was captured and a counter; the consumer takes the
newest one and everything it did not take is dropped (and counted).

Sources: a device index (``0``, ``"0"``), a V4L2 path (``/dev/video0``), a video file, or a URL
(``rtsp://``, ``http://``: whatever OpenCV's FFMPEG backend opens). Files are simulations: with
``realtime=True`` they play at their frame rate, as a camera would; with ``realtime=False``
every frame is handed over, one at a time, as fast as the consumer takes them (tests,
benchmarks). At the end, a file starts over (``loop=True``) or ends.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gate.errors import DriverInitError, DriverOperationError

log = logging.getLogger(__name__)

#: seconds without a new frame after which a device or stream counts as gone
DEFAULT_STALL_TIMEOUT = 3.0
#: playback rate of a file that does not say its own
DEFAULT_FILE_FPS = 25.0
#: pause between read attempts on a device that just failed a read
_RETRY_PAUSE = 0.05


@dataclass(frozen=True)
class Frame:
    """One captured frame: BGR (or grey) pixels, ``time.monotonic()`` at capture, and its
    number among the frames the grabber read since it was opened (1, 2, ...)."""

    image: np.ndarray
    captured: float
    seq: int


@dataclass(frozen=True)
class SourceKind:
    """How a source string is opened and what it means when it stops delivering."""

    kind: str  # "device", "file" or "url"
    target: str | int  # what cv2.VideoCapture is given
    api: int  # cv2.CAP_* backend preference

    @classmethod
    def of(cls, source: str | int | os.PathLike[str]) -> SourceKind:
        if isinstance(source, os.PathLike):
            return cls("file", os.fspath(source), cv2.CAP_FFMPEG)
        if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
            return cls("device", int(source), cv2.CAP_V4L2 if _linux() else cv2.CAP_ANY)
        if "://" in source:
            return cls("url", source, cv2.CAP_FFMPEG)
        if source.startswith("/dev/"):
            return cls("device", source, cv2.CAP_V4L2 if _linux() else cv2.CAP_ANY)
        return cls("file", source, cv2.CAP_FFMPEG)

    def device_path(self) -> str | None:
        """The device node whose presence we can check, or None when there is none."""
        if self.kind != "device" or not _linux():
            return None
        return f"/dev/video{self.target}" if isinstance(self.target, int) else str(self.target)


def _linux() -> bool:
    return sys.platform.startswith("linux")


class FrameGrabber:
    """Reads frames from one source in a thread and keeps only the newest.

    ``open()`` connects (raising :class:`DriverInitError`), ``next_frame(timeout)`` returns the
    newest frame not taken yet (or ``None`` after ``timeout``), and ``close()`` stops the
    thread; it is idempotent. ``next_frame`` raises :class:`DriverOperationError` when the
    source ended, failed, or delivered nothing for ``stall_timeout`` seconds.
    """

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        realtime: bool = True,
        loop: bool = False,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        label: str = "camera",
    ) -> None:
        self.kind = SourceKind.of(source)
        self.source = self.kind.target
        self.width, self.height, self.fps = width, height, fps
        self.realtime, self.loop = realtime, loop
        self.stall_timeout = stall_timeout
        self.label = label
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._taken_seq = 0
        self._error: str | None = None  # set by the grabber when the source ended or failed
        #: a file reached its end (and does not loop)
        self.ended = False
        self._last_frame_at = 0.0
        #: frames read from the source, and frames overwritten before anyone took them
        self.frames_read = 0
        self.frames_dropped = 0
        #: the frame rate files are played at, or what the device reports
        self.playback_fps = 0.0

    # The consumer's side ----------------------------------------------------------------------

    def open(self) -> None:
        """Connect to the source and start the grabber thread."""
        if self._thread is not None:
            return
        capture = self._connect()
        self._stop.clear()
        self._latest, self._taken_seq, self._error, self.ended = None, 0, None, False
        self.frames_read = self.frames_dropped = 0
        self._last_frame_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=f"{self.label}-grabber", daemon=True
        )
        self._thread.start()

    def next_frame(self, timeout: float) -> Frame | None:
        """The newest frame not taken yet, waiting at most ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                frame = self._latest
                if frame is not None and frame.seq > self._taken_seq:
                    self._taken_seq = frame.seq
                    self._cond.notify_all()  # a lock-step grabber waits for this
                    return frame
                if self._error is not None:
                    raise DriverOperationError(self._error)
                if self._thread is None:
                    raise DriverOperationError(f"{self.label}: not open")
                now = time.monotonic()
                silent = now - self._last_frame_at
                if silent > self.stall_timeout:
                    raise DriverOperationError(
                        f"{self.label}: {self.source}: no frames for {silent:.1f} s"
                    )
                if now >= deadline:
                    return None
                self._cond.wait(min(deadline, self._last_frame_at + self.stall_timeout) - now)

    def close(self) -> None:
        """Stop the grabber thread; the thread releases the capture. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread.join(timeout=2.0)
        if thread.is_alive():
            # Stuck in a driver call on a vanished device: it releases the capture when the
            # call returns. Releasing it from here, under its feet, could crash the process.
            log.warning("%s: grabber thread still blocked in a read; leaving it", self.label)
        with self._cond:
            self._latest = None

    def __enter__(self) -> FrameGrabber:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The grabber's side -----------------------------------------------------------------------

    def _connect(self) -> cv2.VideoCapture:
        kind = self.kind
        where = f"{self.label}: {self.source}"
        device_path = kind.device_path()
        if kind.kind == "file" and not Path(kind.target).is_file():
            raise DriverInitError(f"{where}: no such video file")
        if device_path is not None and not os.path.exists(device_path):
            raise DriverInitError(f"{where}: no such device")
        try:
            capture = cv2.VideoCapture(kind.target, kind.api)
            if not capture.isOpened():
                capture.release()
                raise DriverInitError(f"{where}: OpenCV cannot open it")
            if kind.kind != "file":
                self._configure(capture)
            reported = capture.get(cv2.CAP_PROP_FPS)
        except cv2.error as err:
            raise DriverInitError(f"{where}: OpenCV failed to open it: {err}") from err
        if kind.kind == "file":
            self.playback_fps = self.fps or (
                reported if math.isfinite(reported) and reported > 0 else DEFAULT_FILE_FPS
            )
        else:
            self.playback_fps = reported if math.isfinite(reported) else 0.0
        log.info(
            "%s: opened %s %s (%s), %.0fx%.0f at %.1f fps",
            self.label,
            kind.kind,
            self.source,
            capture.getBackendName(),
            capture.get(cv2.CAP_PROP_FRAME_WIDTH),
            capture.get(cv2.CAP_PROP_FRAME_HEIGHT),
            self.playback_fps,
        )
        return capture

    def _configure(self, capture: cv2.VideoCapture) -> None:
        # One driver buffer: the device itself should not queue old frames for us either.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        wanted = (
            (cv2.CAP_PROP_FRAME_WIDTH, self.width, "width"),
            (cv2.CAP_PROP_FRAME_HEIGHT, self.height, "height"),
            (cv2.CAP_PROP_FPS, self.fps, "fps"),
        )
        for prop, value, name in wanted:
            if value is not None and not capture.set(prop, float(value)):
                log.warning("%s: the device refused %s=%s", self.label, name, value)

    def _run(self, capture: cv2.VideoCapture) -> None:
        try:
            self._grab_loop(capture)
        except Exception as err:  # cv2.error and friends: report, never die silently
            log.debug("%s: grabber failed", self.label, exc_info=True)
            self._fail(f"{self.label}: {self.source}: capture failed: {err}")
        finally:
            capture.release()

    def _grab_loop(self, capture: cv2.VideoCapture) -> None:
        is_file = self.kind.kind == "file"
        paced = is_file and self.realtime
        lockstep = is_file and not self.realtime
        period = 1.0 / self.playback_fps if paced else 0.0
        next_due = time.monotonic()
        read_at_start = 0
        while not self._stop.is_set():
            if lockstep and not self._wait_until_taken():
                return
            ok, image = capture.read()
            captured = time.monotonic()
            if not ok or image is None:
                if not is_file:
                    if self._device_gone():
                        self._fail(f"{self.label}: {self.source}: device gone")
                        return
                    self._stop.wait(_RETRY_PAUSE)  # the stall timeout decides when to give up
                    continue
                # Start over, unless the last start gave no frame at all (an unreadable file).
                if self.loop and self.frames_read > read_at_start:
                    read_at_start = self.frames_read
                    if capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        continue
                self.ended = True
                self._fail(f"{self.label}: end of video")
                return
            if paced:
                # Hand the frame over when a camera would have captured it. When reading fell
                # behind, start the schedule again from now rather than catching up in a burst.
                wait = next_due - captured
                if wait > 0 and self._stop.wait(wait):
                    return
                captured = time.monotonic()
                next_due += period
                if next_due < captured - period:
                    next_due = captured + period
            self._publish(image, captured)

    def _wait_until_taken(self) -> bool:
        with self._cond:
            while self._latest is not None and self._latest.seq > self._taken_seq:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.1)
        return not self._stop.is_set()

    def _publish(self, image: np.ndarray, captured: float) -> None:
        with self._cond:
            if self._latest is not None and self._latest.seq > self._taken_seq:
                self.frames_dropped += 1
            self.frames_read += 1
            self._latest = Frame(image, captured, self.frames_read)
            self._last_frame_at = captured
            self._cond.notify_all()

    def _fail(self, reason: str) -> None:
        with self._cond:
            if self._error is None:
                self._error = reason
            self._cond.notify_all()

    def _device_gone(self) -> bool:
        path = self.kind.device_path()
        return path is not None and not os.path.exists(path)
