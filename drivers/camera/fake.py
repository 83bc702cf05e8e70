"""A fake camera: frames and video files with QR codes where we put them.

:func:`make_frame` draws one frame (a code on a white card on a grey background, with optional
inversion, blur and sensor noise); :func:`generate_video` writes a real video file, scene by
scene, that :class:`~drivers.camera.reader.CameraReader` plays like a camera. Codes are drawn
with segno, GT1 texts in QR alphanumeric mode with error correction M, as tickets are printed.
Nothing here is picked automatically: tests, benchmarks and ``--simulate`` name it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno

from gate.ticket import PREFIX

#: what a scene's options may say; see :func:`make_frame` for their meaning
SCENE_OPTIONS = frozenset({"inverted", "blur", "noise", "scale", "position"})
BACKGROUND = 120  # grey level of the scene behind the card

Scene = tuple[str | None, float] | tuple[str | None, float, Mapping[str, Any]]


def qr_modules(text: str) -> np.ndarray:
    """The QR code for ``text`` as a bool array (True = dark), with its 4-module quiet zone."""
    mode = "alphanumeric" if text.startswith(PREFIX) else None
    qr = segno.make_qr(text, mode=mode, error="m")
    return np.array(list(qr.matrix_iter(scale=1, border=4)), dtype=bool)


def make_frame(
    text: str | None,
    *,
    size: tuple[int, int] = (640, 480),
    inverted: bool = False,
    blur: float = 0.0,
    noise: float = 0.0,
    scale: int = 4,
    position: tuple[float, float] = (0.5, 0.5),
    color: bool = False,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """One camera frame, ``size`` = (width, height): grey ``(h, w)`` uint8, or BGR with
    ``color=True``.

    ``text`` None draws an empty scene. The code is ``scale`` pixels per module, centred at
    ``position`` (fractions of the width and height, clipped so the code stays in view).
    ``inverted`` draws light modules on a dark card (a phone in dark mode); ``blur`` is the
    sigma of a Gaussian blur in pixels (focus, motion); ``noise`` the standard deviation of
    Gaussian sensor noise in grey levels, drawn from ``rng``.
    """
    return _finish(_scene(text, size, inverted, blur, scale, position), noise, color, rng)


def _scene(
    text: str | None,
    size: tuple[int, int],
    inverted: bool,
    blur: float,
    scale: int,
    position: tuple[float, float],
) -> np.ndarray:
    width, height = size
    image = np.full((height, width), BACKGROUND, dtype=np.uint8)
    # A faint horizontal light gradient, so the background is not perfectly flat.
    image += np.linspace(0, 30, width, dtype=np.float32).astype(np.uint8)[None, :]
    if text is not None:
        modules = qr_modules(text)
        code = np.kron(modules, np.ones((scale, scale), dtype=bool))
        if inverted:
            code = ~code
        card = np.where(code, 20, 235).astype(np.uint8)
        ch, cw = card.shape
        if ch > height or cw > width:
            raise ValueError(f"a {cw}x{ch} px code does not fit a {width}x{height} frame")
        x = round(position[0] * width - cw / 2)
        y = round(position[1] * height - ch / 2)
        x, y = min(max(x, 0), width - cw), min(max(y, 0), height - ch)
        image[y : y + ch, x : x + cw] = card
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return image


def _finish(
    image: np.ndarray, noise: float, color: bool, rng: np.random.Generator | int | None
) -> np.ndarray:
    if noise > 0:
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        noisy = image + generator.normal(0.0, noise, image.shape).astype(np.float32)
        image = np.clip(noisy, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if color else image


def generate_video(
    path: str | Path,
    scenes: Iterable[Scene],
    *,
    fps: float = 15,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> list[tuple[float, float, str | None]]:
    """Write a Motion-JPEG ``.avi`` of ``scenes`` and return where each one is in it.

    Each scene is ``(text_or_None, seconds)`` or ``(text_or_None, seconds, options)``; options
    are :func:`make_frame`'s ``inverted``, ``blur``, ``noise``, ``scale`` and ``position``.
    ``None`` is a scene without a code. Noise is drawn afresh for every frame from ``seed``.
    Returns ``(start, end, text)`` per scene, in seconds of video time.
    """
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size, True)
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write a Motion-JPEG video here")
    rng = np.random.default_rng(seed)
    timeline: list[tuple[float, float, str | None]] = []
    frame_index = 0
    try:
        for scene in scenes:
            text, seconds, options = _unpack(scene)
            base = _scene(
                text,
                size,
                bool(options.get("inverted", False)),
                float(options.get("blur", 0.0)),
                int(options.get("scale", 4)),
                tuple(options.get("position", (0.5, 0.5))),
            )
            frames = max(1, round(seconds * fps))
            noise = float(options.get("noise", 0.0))
            for _ in range(frames):
                writer.write(_finish(base, noise, True, rng))
            timeline.append((frame_index / fps, (frame_index + frames) / fps, text))
            frame_index += frames
    finally:
        writer.release()
    return timeline


def _unpack(scene: Sequence[Any]) -> tuple[str | None, float, Mapping[str, Any]]:
    if len(scene) == 2:
        text, seconds = scene
        options: Mapping[str, Any] = {}
    else:
        text, seconds, options = scene
    unknown = set(options) - SCENE_OPTIONS
    if unknown:
        raise ValueError(f"unknown scene options {sorted(unknown)}; known: {sorted(SCENE_OPTIONS)}")
    return text, float(seconds), options
