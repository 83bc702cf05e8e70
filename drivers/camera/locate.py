"""Where the QR codes are in a frame, and the frame with their outlines drawn on it.

The camera reader only needs a code's text; ``gatectl snapshot`` also shows where each code
was found, so a technician can see what the camera sees. zxing-cpp (with exactly the camera's
options) reports each code's four corners; when it finds nothing, ZBar (pyzbar) is asked too,
and its polygon is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from drivers.camera.decoders import PyzbarDecoder, ZxingDecoder
from drivers.camera.metrics import to_gray
from gate.errors import DriverUnavailable

log = logging.getLogger(__name__)

OUTLINE = (0, 200, 0)  # BGR
LABEL_CHARACTERS = 48


@dataclass(frozen=True)
class LocatedCode:
    """A code's text and its outline: corner points (x, y) in pixels, as the decoder gave
    them (zxing-cpp: top-left, top-right, bottom-right, bottom-left)."""

    text: str
    points: tuple[tuple[int, int], ...]
    decoder: str

    def to_json(self) -> dict:
        return {"text": self.text, "points": [list(point) for point in self.points]}


class _ZxingLocator(ZxingDecoder):
    def locate(self, gray: np.ndarray) -> list[LocatedCode]:
        codes = []
        for barcode in self._read_barcodes(gray, **self._options):
            p = barcode.position
            corners = (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
            codes.append(LocatedCode(barcode.text, tuple((c.x, c.y) for c in corners), self.name))
        return codes


class _PyzbarLocator(PyzbarDecoder):
    def locate(self, gray: np.ndarray) -> list[LocatedCode]:
        symbols = self._pyzbar.decode(gray, symbols=self._symbols)
        if not symbols and self._try_invert:
            symbols = self._pyzbar.decode(255 - gray, symbols=self._symbols)
        return [
            LocatedCode(
                symbol.data.decode("utf-8", errors="replace"),
                tuple((point.x, point.y) for point in symbol.polygon),
                self.name,
            )
            for symbol in symbols
        ]


def locate_codes(image: np.ndarray) -> list[LocatedCode]:
    """The QR codes in ``image`` with their outlines: zxing-cpp, then pyzbar if zxing-cpp
    found nothing (and pyzbar is installed). Each text once, in the order found."""
    gray = np.ascontiguousarray(to_gray(image))
    codes = _ZxingLocator().locate(gray)
    if not codes:
        try:
            codes = _PyzbarLocator().locate(gray)
        except DriverUnavailable as err:
            log.info("no pyzbar fallback: %s", err)
    unique: dict[str, LocatedCode] = {}
    for code in codes:
        unique.setdefault(code.text, code)
    return list(unique.values())


def label(text: str, most: int = LABEL_CHARACTERS) -> str:
    """``text`` as OpenCV can draw it: ASCII, control characters escaped, shortened."""
    shown = "".join(
        char if char.isprintable() and char.isascii() else char.encode("unicode_escape").decode()
        for char in text
    )
    return shown if len(shown) <= most else shown[: most - 3] + "..."


def annotate(image: np.ndarray, codes: list[LocatedCode], caption: str = "") -> np.ndarray:
    """A BGR copy of ``image`` with each code's outline and text, and ``caption`` on top."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]
    canvas = np.ascontiguousarray(canvas).copy()
    width = canvas.shape[1]
    thickness = max(2, width // 320)
    scale = max(0.4, width / 1280)
    for code in codes:
        points = np.array(code.points, dtype=np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], isClosed=True, color=OUTLINE, thickness=thickness)
        x = int(min(p[0] for p in code.points))
        y = int(min(p[1] for p in code.points)) - 2 * thickness
        _text(canvas, label(code.text), (x, y), scale, OUTLINE)
    if caption:
        _text(canvas, label(caption, 80), (4, int(24 * scale * 2)), scale, (255, 255, 255))
    return canvas


def _text(canvas: np.ndarray, text: str, at: tuple[int, int], scale: float, color) -> None:
    font, weight = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, font, scale, weight)
    height, width = canvas.shape[:2]
    x = min(max(at[0], 0), max(width - w, 0))
    y = min(max(at[1], h + base), height - base)
    cv2.rectangle(canvas, (x - 2, y - h - 2), (x + w + 2, y + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(canvas, text, (x, y), font, scale, color, weight, cv2.LINE_AA)


def write_png(path, image: np.ndarray) -> None:
    """Write ``image`` as a PNG file at ``path`` (OSError when it cannot)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the frame as PNG")
    with open(path, "wb") as out:
        out.write(data.tobytes())


def read_png(path) -> np.ndarray | None:
    """The image in the file at ``path`` (BGR), or None when it is not one."""
    with open(path, "rb") as handle:
        data = handle.read()
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
