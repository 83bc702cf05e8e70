"""Codes in image files, through the camera's decoders: a technician's check of a printed
ticket or a photo of one (``gatectl scan-image``).

Unlike the camera, this reports every QR code found, GT1 or not, so a technician can see what
a misprinted or foreign code actually holds.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from drivers.camera.decoders import Decoder, make_decoder
from gate.errors import DriverOperationError


class ImageReadError(DriverOperationError):
    """An image file is missing, unreadable, or not an image OpenCV can decode."""


def load_gray(path: str | Path) -> np.ndarray:
    """The image at ``path`` as 8-bit grey; transparent parts count as white paper."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise ImageReadError(f"{path}: is a directory, not an image") from err
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read: {err.strerror or err}") from err
    # cv2.imdecode is cv2.imread's decoder without its path handling, so a missing file
    # gets our message above instead of an OpenCV warning on stderr.
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageReadError(f"{path}: not an image OpenCV can read: {err}") from err
    if image is None or image.size == 0:
        raise ImageReadError(f"{path}: not an image OpenCV can read (PNG, JPEG, BMP, ...)")
    return _to_gray8(image)


def _to_gray8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return image[:, :, 0]
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        white = np.full_like(image[:, :, :3], 255, dtype=np.float32)
        image = (image[:, :, :3] * alpha + white * (1.0 - alpha)).astype(np.uint8)
    elif channels == 2:  # grey and alpha
        alpha = image[:, :, 1].astype(np.float32) / 255.0
        return (image[:, :, 0] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def scan_image(path: str | Path, decoder: str | Decoder = "zxing") -> list[str]:
    """The texts of all QR codes in the image file at ``path`` (GT1 or not).

    ``decoder`` is a decoder name (``"zxing"``, ``"pyzbar"``, ``"zxing+pyzbar"``) or a
    :class:`Decoder`. Raises :class:`ImageReadError` for a missing or unreadable file.
    """
    if isinstance(decoder, str):
        decoder = make_image_decoder(decoder)
    return decoder.decode(load_gray(path))


def make_image_decoder(name: str) -> Decoder:
    """The decoder ``name`` set up for still images: a chain's fallback runs on every image
    the first decoder finds nothing in."""
    return make_decoder(name, fallback_every=1)
