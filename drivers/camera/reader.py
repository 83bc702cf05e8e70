"""The camera as a code reader: newest frame, grey, QR decode, GT1 filter, de-duplication."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from drivers.base import CodeReader, Presentation
from drivers.camera.capture import DEFAULT_STALL_TIMEOUT, Frame, FrameGrabber, SourceKind
from drivers.camera.decoders import DEFAULT_FALLBACK_EVERY, Decoder, make_decoder
from gate.errors import DriverInitError, DriverOperationError
from gate.ticket import MAX_TEXT_LENGTH, PREFIX

log = logging.getLogger(__name__)


class CameraReader(CodeReader):
    """Presents the GT1 codes a camera (or a video file, or a stream) sees.

    Each ``_read`` decodes at most one frame, the newest: frames that arrived while the
    previous one was being decoded are dropped, so the gate never falls behind the camera.
    The frame is turned grey and, with ``max_decode_side``, shrunk so that its longer side is
    at most that many pixels (bounded work on large sensors). Only texts that look like GT1
    (``"GT1:"`` prefix, at most ``MAX_TEXT_LENGTH`` characters) are presented; a URL or other
    QR code in view is ignored.

    A code held in front of the camera is presented once: the same text is suppressed while it
    keeps being seen, and presented again only after it was out of view for more than
    ``dedup_window`` seconds (measured on frame capture times). ``Presentation.arrived`` is the
    capture time of the frame the code was decoded from.

    ``source`` is a device index, a ``/dev/videoN`` path, a video file (``str`` or path) or a
    URL. ``width``,
    ``height`` and ``fps`` are asked of a device; for a file, ``fps`` overrides its playback
    rate. Files play in real time (``realtime=True``) or hand over every frame as fast as they
    are decoded (``realtime=False``), and start over at the end with ``loop=True``. A file that
    ended raises ``DriverOperationError("camera: end of video")``; it is not played again until
    it changes on disk. A device that vanishes or stops delivering frames for
    ``stall_timeout`` seconds raises :class:`DriverOperationError`, and :meth:`run` reconnects.

    ``decoder`` is a name for :func:`~drivers.camera.decoders.make_decoder` or a
    :class:`~drivers.camera.decoders.Decoder`; in a chain (``"zxing+pyzbar"``) the fallback
    runs on at most every ``fallback_every``-th frame without a code.
    """

    #: seconds without a frame before a device counts as gone
    stall_timeout = DEFAULT_STALL_TIMEOUT
    fallback_every = DEFAULT_FALLBACK_EVERY

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        name: str = "camera",
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        decoder: str | Decoder = "zxing",
        dedup_window: float = 2.0,
        realtime: bool = True,
        loop: bool = False,
        max_decode_side: int | None = None,
    ) -> None:
        super().__init__(name)
        if max_decode_side is not None and max_decode_side < 32:
            raise ValueError(f"max_decode_side must be at least 32 pixels, not {max_decode_side}")
        self.source = os.fspath(source) if isinstance(source, os.PathLike) else source
        self.width, self.height, self.fps = width, height, fps
        self.realtime, self.loop = realtime, loop
        self.dedup_window = dedup_window
        self.max_decode_side = max_decode_side
        self.decoder = (
            make_decoder(decoder, fallback_every=self.fallback_every)
            if isinstance(decoder, str)
            else decoder
        )
        self._grabber: FrameGrabber | None = None
        self._last_grabber: FrameGrabber | None = None  # for stats() after a close
        self._last_seen: dict[str, float] = {}  # text -> capture time it was last decoded at
        self._ended_file: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # close() may come from another thread than run()
        self._snapshot_path: Path | None = None  # set by request_snapshot()
        #: frames decoded, and presentations made, since this reader was created
        self.frames_decoded = 0
        self.presented = 0

    # CodeReader hooks ------------------------------------------------------------------------

    def _open(self) -> None:
        if self._grabber is not None:
            return
        if self._ended_file is not None and self._file_signature() == self._ended_file:
            raise DriverInitError(f"{self.name}: end of video")
        self._ended_file = None
        grabber = FrameGrabber(
            self.source,
            width=self.width,
            height=self.height,
            fps=self.fps,
            realtime=self.realtime,
            loop=self.loop,
            stall_timeout=self.stall_timeout,
            label=self.name,
        )
        grabber.open()  # may take seconds for a URL: not under the lock, so close() never waits
        with self._lock:
            self._grabber = self._last_grabber = grabber

    def _read(self, timeout: float) -> list[Presentation]:
        grabber = self._grabber
        if grabber is None:
            raise DriverOperationError(f"{self.name}: not open")
        try:
            frame = grabber.next_frame(timeout)
        except DriverOperationError:
            if grabber.ended:
                self._ended_file = self._file_signature()
            raise
        if frame is None:
            return []
        if self._snapshot_path is not None:
            self._save_snapshot(frame)
        return self._presentations(frame)

    def _close(self) -> None:
        with self._lock:
            grabber, self._grabber = self._grabber, None
        if grabber is not None:
            grabber.close()

    # A frame for gatectl snapshot while gated holds the camera ------------------------------

    def request_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Save the next frame read as a PNG file at ``path`` (written to a temporary file and
        renamed, so it appears whole). A failure to save is logged, never raised."""
        with self._lock:
            self._snapshot_path = Path(path)

    def _save_snapshot(self, frame: Frame) -> None:
        with self._lock:
            path, self._snapshot_path = self._snapshot_path, None
        if path is None:
            return
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            ok, data = cv2.imencode(".png", frame.image)
            if not ok:
                raise OSError("OpenCV could not encode the frame as PNG")
            temporary.write_bytes(data.tobytes())
            os.replace(temporary, path)
        except (OSError, cv2.error) as err:
            log.warning("%s: cannot save a snapshot to %s: %s", self.name, path, err)

    # The work on one frame -------------------------------------------------------------------

    def _presentations(self, frame: Frame) -> list[Presentation]:
        try:
            gray = self._prepare(frame.image)
        except cv2.error as err:
            raise DriverOperationError(f"{self.name}: unusable frame: {err}") from err
        texts = self.decoder.decode(gray)
        self.frames_decoded += 1
        seen_at = frame.captured
        presentations = []
        for text in texts:
            if not (text.startswith(PREFIX) and len(text) <= MAX_TEXT_LENGTH):
                continue
            last = self._last_seen.get(text)
            self._last_seen[text] = seen_at
            if last is None or seen_at - last > self.dedup_window:
                presentations.append(Presentation(text, self.name, seen_at))
        if self._last_seen:
            self._forget_before(seen_at - self.dedup_window)
        self.presented += len(presentations)
        return presentations

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 3:
            code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            image = cv2.cvtColor(image, code)
        side = max(image.shape[:2])
        if self.max_decode_side is not None and side > self.max_decode_side:
            factor = self.max_decode_side / side
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return image

    def _forget_before(self, horizon: float) -> None:
        # A text not seen within the window will be presented again anyway: drop it, so the
        # table holds only what is in view now.
        for text in [text for text, seen in self._last_seen.items() if seen < horizon]:
            del self._last_seen[text]

    def _file_signature(self) -> tuple[int, int, int] | None:
        kind = SourceKind.of(self.source)
        if kind.kind != "file":
            return None
        try:
            info = os.stat(Path(str(kind.target)))
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    # Figures for tests, the benchmark and diagnostics ----------------------------------------

    def stats(self) -> dict[str, float]:
        """Frames read from the source (since the last open) and dropped unseen, frames decoded
        and presentations made (since this reader was created)."""
        grabber = self._last_grabber
        return {
            "frames_read": grabber.frames_read if grabber else 0,
            "frames_dropped": grabber.frames_dropped if grabber else 0,
            "frames_decoded": self.frames_decoded,
            "presented": self.presented,
            "playback_fps": grabber.playback_fps if grabber else 0.0,
        }
