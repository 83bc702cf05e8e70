"""How good a camera's picture is, for technicians: frame rate, sharpness, brightness.

- :func:`frame_metrics`: sharpness (the variance of the Laplacian of the grey image: a
  focused, detailed picture has many strong edges, a blurred one few) and brightness (the
  mean grey level, 0 to 255), with a verdict on the exposure;
- :func:`sample_camera`: opens a source, counts the frames it delivers for a while and
  decodes them with the camera's decoder until a code is seen (``gatectl selftest``);
- :func:`grab_frame`: one frame from a source, after the exposure has settled
  (``gatectl snapshot``).

Both open the source with :class:`~drivers.camera.capture.FrameGrabber`, the same code path
as the gate's camera reader.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from drivers.camera.capture import FrameGrabber, SourceKind
from drivers.camera.decoders import DEFAULT_FALLBACK_EVERY, make_decoder
from gate.errors import DriverOperationError

#: mean grey levels outside these bounds are flagged; QR decoding suffers beyond them
TOO_DARK, TOO_BRIGHT = 40.0, 220.0
#: below this variance of the Laplacian a 640x480 picture of a card looks soft
BLURRED = 100.0
#: how long a device (not a file) is read before a snapshot, so auto-exposure can settle
DEVICE_WARMUP_SECONDS = 1.0


@dataclass(frozen=True)
class FrameMetrics:
    """Figures of one frame: size, sharpness (variance of the Laplacian), mean grey level."""

    width: int
    height: int
    sharpness: float
    brightness: float

    @property
    def exposure(self) -> str:
        """``"too dark"``, ``"too bright"`` or ``"ok"``."""
        if self.brightness < TOO_DARK:
            return "too dark"
        if self.brightness > TOO_BRIGHT:
            return "too bright"
        return "ok"

    @property
    def blurred(self) -> bool:
        return self.sharpness < BLURRED


def to_gray(image: np.ndarray) -> np.ndarray:
    """A BGR, BGRA or grey frame as a 2-D uint8 grey image."""
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3:
        return image[:, :, 0]
    return image


def frame_metrics(image: np.ndarray) -> FrameMetrics:
    """Sharpness and brightness of ``image`` (BGR, BGRA or grey, uint8)."""
    gray = to_gray(image)
    height, width = gray.shape[:2]
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    brightness = float(gray.mean())
    return FrameMetrics(width, height, round(sharpness, 1), round(brightness, 1))


@dataclass(frozen=True)
class CameraSample:
    """What :func:`sample_camera` saw: frames delivered and the rate, the texts decoded
    from the first frame that had any (GT1 or not), and the metrics of that frame (or of the
    last frame when no code was seen)."""

    frames: int
    seconds: float
    fps: float
    codes: list[str]
    metrics: FrameMetrics | None


def sample_camera(
    source: str | int | os.PathLike[str],
    *,
    seconds: float,
    rate_seconds: float = 2.0,
    decoder: str = "zxing",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
) -> CameraSample:
    """Read ``source`` for up to ``seconds``, decoding frames until a code is seen.

    It stops early once a code was decoded and the frame rate has been measured for
    ``rate_seconds``. A video file plays at its own rate and starts over at its end, as a
    camera would keep delivering. Raises :class:`~gate.errors.DriverInitError` when the source
    cannot be opened and :class:`~gate.errors.DriverOperationError` when it stops delivering.
    """
    chosen = make_decoder(decoder, fallback_every=DEFAULT_FALLBACK_EVERY)
    grabber = FrameGrabber(
        source, width=width, height=height, fps=fps, realtime=True, loop=True, label="camera"
    )
    grabber.open()
    codes: list[str] = []
    seen = last = None
    try:
        started = time.monotonic()
        deadline = started + seconds
        while True:
            now = time.monotonic()
            if now >= deadline or (codes and now - started >= min(rate_seconds, seconds)):
                break
            frame = _next_frame(grabber, source, min(0.2, deadline - now))
            if frame is None:
                continue
            last = frame.image
            if not codes:
                codes = chosen.decode(frame.image)
                if codes:
                    seen = frame.image
        elapsed = time.monotonic() - started
        frames = grabber.frames_read
    finally:
        grabber.close()
    if frames == 0 or last is None:
        raise DriverOperationError(f"camera: {source}: no frame within {seconds:g} s")
    shown = seen if seen is not None else last
    return CameraSample(frames, elapsed, frames / elapsed, codes, frame_metrics(shown))


def grab_frame(
    source: str | int | os.PathLike[str],
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    timeout: float = 5.0,
) -> np.ndarray:
    """The newest frame of ``source``: a file's first frame, or a device's frame after
    :data:`DEVICE_WARMUP_SECONDS` (auto-exposure settles in the first frames)."""
    warmup = DEVICE_WARMUP_SECONDS if SourceKind.of(source).kind == "device" else 0.0
    grabber = FrameGrabber(source, width=width, height=height, fps=fps, label="camera")
    grabber.open()
    try:
        started = time.monotonic()
        image = None
        while image is None or time.monotonic() - started < warmup:
            waited = time.monotonic() - started
            if waited > timeout + warmup:
                raise DriverOperationError(f"camera: {source}: no frame within {timeout:g} s")
            frame = _next_frame(grabber, source, 0.2)
            if frame is not None:
                image = frame.image
        return image
    finally:
        grabber.close()


def _next_frame(grabber: FrameGrabber, source: object, timeout: float):
    try:
        return grabber.next_frame(timeout)
    except DriverOperationError as err:
        if grabber.frames_read:
            raise
        # "end of video" before the first frame: a file OpenCV opens but cannot decode
        raise DriverOperationError(f"camera: {source}: no frame could be read ({err})") from err
