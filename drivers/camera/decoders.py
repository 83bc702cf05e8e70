"""QR decoders for camera frames and image files: one small interface, two libraries.

Writing a decoder: subclass :class:`Decoder`, set ``name`` and override

- ``_decode(gray)`` (must) find the QR codes in ``gray``, a C-contiguous 2-D ``uint8`` array
  with at least one pixel, and return their texts (the code's bytes decoded as text), in the
  order found. It may raise anything: :meth:`Decoder.decode` logs it and returns ``[]``.

:meth:`Decoder.decode` does the shared part: it accepts any numpy array, turns BGR, BGRA and
``(h, w, 1)`` frames into grey, refuses everything else (wrong dtype, empty, wrong shape) with
a log line, drops duplicate texts within one frame, and never raises.

Decoders are built by name with :func:`make_decoder` (``"zxing"``, ``"pyzbar"``,
``"zxing+pyzbar"``). Each library is imported only when a decoder that needs it is built, so a
gate without pyzbar (or without libzbar0) still runs with zxing-cpp.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from gate.errors import DriverUnavailable

log = logging.getLogger(__name__)

#: the names :func:`make_decoder` accepts; "a+b" means a, then b when a finds nothing
DECODER_NAMES = ("zxing", "pyzbar", "zxing+pyzbar")
#: how often the secondary of a chain may run in a camera (every n-th frame without a code)
DEFAULT_FALLBACK_EVERY = 3


class Decoder(ABC):
    """Finds QR codes in one frame and returns their texts; see the module docstring."""

    name: str = "decoder"

    def __init__(self) -> None:
        self._warned: set[str] = set()

    @abstractmethod
    def _decode(self, gray: np.ndarray) -> list[str]: ...

    def decode(self, frame: Any) -> list[str]:
        """The distinct texts of the QR codes in ``frame``, in the order found; never raises."""
        try:
            gray, problem = _as_gray(frame)
        except Exception as err:  # a numpy corner we did not think of
            gray, problem = None, f"unusable frame: {err!r}"
        if gray is None:
            self._complain(problem, "%s: %s; no decode", self.name, problem)
            return []
        try:
            texts = self._decode(gray)
        except Exception as err:  # third-party decoders raise many things; a frame is not fatal
            self._complain(type(err).__name__, "%s: decoder failed: %r", self.name, err)
            return []
        return list(dict.fromkeys(texts))

    def _complain(self, kind: str, message: str, *args: object) -> None:
        # A camera feeds 15 to 30 frames a second: say it loudly once, then only for debugging.
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        log.log(level, message, *args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _as_gray(frame: Any) -> tuple[np.ndarray | None, str]:
    """A C-contiguous 2-D uint8 view of ``frame``, or ``None`` and why not."""
    if not isinstance(frame, np.ndarray):
        return None, f"not a numpy array but {type(frame).__name__}"
    if frame.dtype != np.uint8:
        return None, f"dtype {frame.dtype}, expected uint8"
    if frame.size == 0:
        return None, f"empty frame {frame.shape}"
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        import cv2  # only colour frames need OpenCV; the camera and scan-image have it anyway

        code = cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(np.ascontiguousarray(frame), code), ""
    if frame.ndim != 2:
        return None, f"shape {frame.shape}, expected (h, w), (h, w, 3) BGR or (h, w, 4) BGRA"
    return np.ascontiguousarray(frame), ""


class ZxingDecoder(Decoder):
    """zxing-cpp, QR codes only (model 1/2, Micro QR and rMQR as zxing-cpp groups them).

    Options, chosen for bounded, predictable work per frame:

    - ``formats=QRCode``: no time spent on linear or other 2-D symbologies;
    - ``try_invert=True``: light-on-dark codes (phone screens in dark mode) are read too; this
      costs a second pass only over the finder-pattern search, and only when nothing was found;
    - ``try_downscale=False`` by default: the decoder works on the resolution it is given, and
      the caller decides the resolution (``CameraReader(max_decode_side=...)``); set it for
      large photographs with big codes, where zxing-cpp's own pyramid helps;
    - ``try_rotate=True``: finder patterns make QR orientation-free, so this costs nothing for
      QR and keeps codes held sideways readable;
    - ``binarizer=LocalAverage`` (zxing-cpp's default, best on uneven light), ``is_pure=False``;
    - ``text_mode=Plain``: the code's bytes as text (ECI or guessed charset), not the
      "human readable" form, which would escape control characters and change the text.
    """

    name = "zxing"

    def __init__(self, *, try_downscale: bool = False) -> None:
        super().__init__()
        try:
            import zxingcpp
        except ImportError as err:
            raise DriverUnavailable(f"decoder zxing: cannot import zxingcpp: {err}") from err
        self._read_barcodes = zxingcpp.read_barcodes
        self._options = {
            "formats": zxingcpp.BarcodeFormat.QRCode,
            "try_rotate": True,
            "try_downscale": try_downscale,
            "try_invert": True,
            "text_mode": zxingcpp.TextMode.Plain,
            "binarizer": zxingcpp.Binarizer.LocalAverage,
            "is_pure": False,
        }

    def _decode(self, gray: np.ndarray) -> list[str]:
        return [barcode.text for barcode in self._read_barcodes(gray, **self._options)]


class PyzbarDecoder(Decoder):
    """ZBar through pyzbar, QR codes only (``symbols=[ZBarSymbol.QRCODE]``).

    ZBar hands over the text already converted to UTF-8 (it guesses the charset of codes
    without ECI, not always as zxing-cpp does); bytes that are not UTF-8 become U+FFFD.
    It reads light-on-dark codes only after we invert the frame, so a frame in which nothing is
    found is tried once more inverted.
    """

    name = "pyzbar"

    def __init__(self, *, try_invert: bool = True) -> None:
        super().__init__()
        try:
            from pyzbar import pyzbar
        except (ImportError, OSError) as err:  # pyzbar raises ImportError without libzbar0
            raise DriverUnavailable(
                f"decoder pyzbar: cannot load pyzbar/libzbar0 ({err}); "
                "install libzbar0 or use the zxing decoder"
            ) from err
        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]
        self._try_invert = try_invert

    def _decode(self, gray: np.ndarray) -> list[str]:
        symbols = self._pyzbar.decode(gray, symbols=self._symbols)
        if not symbols and self._try_invert:
            symbols = self._pyzbar.decode(255 - gray, symbols=self._symbols)
        return [symbol.data.decode("utf-8", errors="replace") for symbol in symbols]


class FallbackDecoder(Decoder):
    """``primary`` on every frame; ``secondary`` only when the primary found nothing, and then
    at most on every ``every_n``-th such frame, so a slow secondary cannot halve the frame rate.

    ``every_n=1`` tries the secondary on every frame the primary found nothing in (right for
    single images).
    """

    def __init__(self, primary: Decoder, secondary: Decoder, every_n: int = 1) -> None:
        super().__init__()
        if every_n < 1:
            raise ValueError(f"every_n must be at least 1, not {every_n}")
        self.primary, self.secondary, self.every_n = primary, secondary, every_n
        self.name = f"{primary.name}+{secondary.name}"
        self._misses = 0  # primary misses since the secondary last ran
        self.secondary_runs = 0

    def decode(self, frame: Any) -> list[str]:
        # Both decoders check the frame themselves; this only decides who looks at it.
        texts = self.primary.decode(frame)
        if texts:
            self._misses = 0
            return texts
        self._misses += 1
        if self._misses < self.every_n:
            return []
        self._misses = 0
        self.secondary_runs += 1
        return self.secondary.decode(frame)

    def _decode(self, gray: np.ndarray) -> list[str]:  # pragma: no cover - decode() overrides
        return self.decode(gray)


_BUILDERS: dict[str, Callable[[], Decoder]] = {
    "zxing": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
}


def make_decoder(name: str, *, fallback_every: int = 1) -> Decoder:
    """Build the decoder called ``name``: ``"zxing"``, ``"pyzbar"`` or a chain ``"a+b"``.

    In a chain, each next decoder runs only when the ones before found nothing, and at most on
    every ``fallback_every``-th such frame. Raises :class:`DriverUnavailable` for an unknown
    name or a library that is not installed.
    """
    parts = name.split("+")
    unknown = [part for part in parts if part not in _BUILDERS]
    if unknown or not name:
        raise DriverUnavailable(f"unknown decoder {name!r}; known: {', '.join(DECODER_NAMES)}")
    decoder = _BUILDERS[parts[0]]()
    for part in parts[1:]:
        decoder = FallbackDecoder(decoder, _BUILDERS[part](), fallback_every)
    return decoder
