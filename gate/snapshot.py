"""``gatectl snapshot``: one camera frame, with the QR codes found outlined on it, as a PNG.

Without gated, the camera is opened directly. While gated runs it holds the camera, so the
frame comes from gated instead, through two files in the state directory:

1. gatectl writes ``snapshot.request`` holding a random token (32 hex digits);
2. gated looks for it once a second (:func:`serve_request`), removes it, and asks its camera
   reader for the next frame it reads, which the reader writes to ``snapshot-<token>.png``
   (a temporary file renamed, so it appears whole);
3. gatectl reads that file and removes it.

When no frame arrives within the wait (gated's camera has failed, or a gated without this
hook), the snapshot is refused (:class:`SnapshotRefused`, exit code 4), as the selftest
refuses device checks while gated runs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drivers.registry import load
from gate.config import GateConfig
from gate.errors import ConfigError, GateError
from gate.runlock import running_pid
from gate.trust import write_atomically

log = logging.getLogger(__name__)

REQUEST_FILE = "snapshot.request"
TOKEN = re.compile(r"[0-9a-f]{32}")
DEFAULT_WAIT = 5.0
#: frames gated wrote for a gatectl that had given up waiting are removed after this
STALE_FRAME_SECONDS = 60.0


class SnapshotRefused(GateError):
    """gated holds the camera and did not hand a frame over."""


def frame_path(state_dir: Path, token: str) -> Path:
    return Path(state_dir) / f"snapshot-{token}.png"


def serve_request(state_dir: Path, readers: Iterable[Any]) -> None:
    """gated's side: if gatectl asked for a frame, have the camera reader save its next one.

    Costs one failed ``open`` when nobody asked. Never raises.
    """
    request = Path(state_dir) / REQUEST_FILE
    try:
        with open(request, "rb") as handle:
            content = handle.read(64)
    except FileNotFoundError:
        return
    except OSError as err:
        log.warning("snapshot request %s: %s", request, err)
        return
    with contextlib.suppress(OSError):
        request.unlink()  # taken, whatever it holds: a bad one is not retried every second
    token = content.decode("ascii", "replace").strip()
    if not TOKEN.fullmatch(token):
        log.warning("snapshot request %s: not a token: %r", request, token[:40])
        return
    for reader in readers:
        request_snapshot = getattr(reader, "request_snapshot", None)
        if request_snapshot is not None:
            request_snapshot(frame_path(state_dir, token))
            return


def take_snapshot(
    config: GateConfig,
    output: Path | None = None,
    *,
    wait: float = DEFAULT_WAIT,
    now: float | None = None,
) -> dict[str, Any]:
    """Grab a frame, find and outline its QR codes, save it as PNG; what was found.

    ``output`` defaults to ``snapshot-<UTC time>.png`` in the current directory. Raises
    :class:`ConfigError` without a camera, :class:`SnapshotRefused` when gated holds the
    camera and hands over no frame within ``wait`` seconds, and the camera's errors.
    """
    camera = config.camera
    if camera is None:
        raise ConfigError(
            f"{config.path}: no [camera] section (or enabled = false): no camera to take a "
            "snapshot with"
        )
    now = time.time() if now is None else now
    pid = running_pid(config.state_dir)
    if pid is None:
        image = load("drivers.camera.metrics:grab_frame")(
            camera.source, width=camera.width, height=camera.height, fps=camera.fps
        )
        via = "camera"
    else:
        image = _frame_from_gated(config.state_dir, pid, wait)
        via = "gated"
    metrics = load("drivers.camera.metrics:frame_metrics")(image)
    codes = load("drivers.camera.locate:locate_codes")(image)
    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    caption = (
        f"{config.gate_id} {utc}  sharpness {metrics.sharpness:g}  "
        f"brightness {metrics.brightness:g}"
    )
    path = Path(output) if output is not None else Path.cwd() / _default_name(now)
    annotated = load("drivers.camera.locate:annotate")(image, codes, caption)
    load("drivers.camera.locate:write_png")(path, annotated)
    return {
        "file": str(path),
        "width": metrics.width,
        "height": metrics.height,
        "sharpness": metrics.sharpness,
        "brightness": metrics.brightness,
        "codes": [code.to_json() for code in codes],
        "via": via,
    }


def _default_name(now: float) -> str:
    return time.strftime("snapshot-%Y%m%dT%H%M%SZ.png", time.gmtime(now))


def _frame_from_gated(state_dir: Path, pid: int, wait: float):
    from gate.selftest import busy_detail, gated_device_health

    busy = busy_detail(pid, "the camera", gated_device_health(state_dir, "camera"))

    _remove_stale_frames(state_dir)
    token = secrets.token_hex(16)
    request = Path(state_dir) / REQUEST_FILE
    frame = frame_path(state_dir, token)
    read_png = load("drivers.camera.locate:read_png")
    try:
        write_atomically(request, token.encode("ascii"), durable=False)
    except OSError as err:
        raise SnapshotRefused(
            f"{busy}; asking it for a frame failed: {err} (run gatectl as the gate's user)"
        ) from err
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            if frame.exists():
                image = read_png(frame)
                if image is not None:
                    return image
            time.sleep(0.05)
    finally:
        with contextlib.suppress(OSError):
            frame.unlink()
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if request.read_text(encoding="ascii").strip() == token:
                request.unlink()  # gated never took it
    raise SnapshotRefused(
        busy_detail(
            pid,
            "the camera",
            gated_device_health(state_dir, "camera"),
            f" and handed over no frame within {wait:g} s",
        )
    )


def _remove_stale_frames(state_dir: Path) -> None:
    horizon = time.time() - STALE_FRAME_SECONDS
    for path in Path(state_dir).glob("snapshot-*.png"):
        with contextlib.suppress(OSError):
            if TOKEN.fullmatch(path.stem.removeprefix("snapshot-")) and (
                path.stat().st_mtime < horizon
            ):
                path.unlink()
