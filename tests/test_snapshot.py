"""gatectl snapshot: a camera frame with its QR codes outlined, from a generated video with real
codes, and from a running gated (which holds the camera and hands a frame over)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ProvisionedGate, write_gate_config
from helpers_cli import BIN

from drivers.camera.fake import generate_video
from drivers.camera.locate import OUTLINE
from gate.runlock import RunLock
from gate.simulation import SimulatedGate, wait_until
from gate.snapshot import REQUEST_FILE
from gate.ticket import Claims, mint_ticket
from keys.keyfile import KeyPair

TICKET = mint_ticket(
    Claims(cti=os.urandom(16), product="single", exp=int(time.time()) + 86400),
    KeyPair.generate().signing_key,
)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("videos")
    made = {"ticket": work / "ticket.avi", "empty": work / "empty.avi"}
    generate_video(made["ticket"], [(TICKET, 0.5, {"position": (0.3, 0.5)})], fps=10)
    generate_video(made["empty"], [(None, 0.5)], fps=10)
    return made


def use_camera(gate: ProvisionedGate, source) -> None:
    write_gate_config(gate.config, gate.root, extra=f'[camera]\nsource = "{source}"\n')


def snapshot(config: Path, *args: str, cwd: Path | None = None):
    """Run gatectl snapshot: the result, and the JSON report when --json was given."""
    result = subprocess.run(
        [str(BIN / "gatectl"), "--config", str(config), "snapshot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout) if "--json" in args and result.returncode == 0 else None
    return result, report


def test_snapshot_outlines_the_code_and_saves_a_png(gate, videos, tmp_path):
    use_camera(gate, videos["ticket"])
    out = tmp_path / "camera.png"
    result, report = snapshot(gate.config, "--json", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert set(report) == {"file", "width", "height", "sharpness", "brightness", "codes", "via"}
    assert report["file"] == str(out)
    assert (report["width"], report["height"], report["via"]) == (640, 480, "camera")
    assert report["sharpness"] > 100 and 40 < report["brightness"] < 220
    [code] = report["codes"]
    assert code["text"] == TICKET
    assert len(code["points"]) == 4
    xs, ys = [x for x, _ in code["points"]], [y for _, y in code["points"]]
    assert 0 <= min(xs) < max(xs) <= 640 // 2 + 140  # the card is left of the centre
    assert 0 <= min(ys) < max(ys) <= 480
    image = cv2.imread(str(out))
    assert image.shape == (480, 640, 3)
    x, y = code["points"][0]
    assert np.abs(image[y, x].astype(int) - OUTLINE).max() < 60  # the outline is drawn


def test_the_default_file_name_and_the_text_output(gate, videos, tmp_path):
    use_camera(gate, videos["ticket"])
    result, _ = snapshot(gate.config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [saved] = list(tmp_path.glob("snapshot-*.png"))
    assert re.fullmatch(r"snapshot-\d{8}T\d{6}Z\.png", saved.name)
    assert f"file        {saved} (640x480)" in result.stdout
    assert f"code        '{TICKET[:40]}" in result.stdout
    # The same, as JSON.
    result, report = snapshot(gate.config, "--json", "--output", str(tmp_path / "again.png"))
    assert report["codes"][0]["text"] == TICKET


def test_a_frame_without_a_code(gate, videos, tmp_path):
    use_camera(gate, videos["empty"])
    result, report = snapshot(gate.config, "--json", "--output", str(tmp_path / "empty.png"))
    assert result.returncode == 0
    assert report["codes"] == []
    assert (tmp_path / "empty.png").stat().st_size > 0
    result, _ = snapshot(gate.config, "--output", str(tmp_path / "empty.png"))
    assert "no QR code found" in result.stdout


def test_a_missing_camera_is_an_error(gate, tmp_path):
    use_camera(gate, tmp_path / "gone.avi")
    result, _ = snapshot(gate.config, "--json", "--output", str(tmp_path / "x.png"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "gatectl: error: camera:" in result.stderr and "no such video file" in result.stderr
    write_gate_config(gate.config, gate.root)
    result, _ = snapshot(gate.config, "--json")
    assert result.returncode == 1
    assert "no [camera] section" in result.stderr


def test_while_gated_holds_the_camera_and_hands_nothing_over_it_is_refused(gate, videos):
    use_camera(gate, videos["ticket"])
    state = gate.dir / "state"
    (state / "health.json").write_text(
        json.dumps({"devices": {"camera": {"state": "failed", "reason": "camera: device gone"}}})
    )
    with RunLock(state):
        result, _ = snapshot(gate.config, "--json", "--wait", "0.3")
    assert result.returncode == 4
    assert result.stdout == ""
    assert f"gated (pid {os.getpid()}) is using the camera" in result.stderr
    assert "systemctl stop gated" in result.stderr
    assert "camera: device gone" in result.stderr
    assert not (state / REQUEST_FILE).exists()  # the unanswered request is taken back
    assert not list(state.glob("snapshot-*.png"))


def test_a_running_gated_hands_over_its_next_frame(tmp_path):
    with SimulatedGate(tmp_path, serial=False, nfc=False) as sim:
        ticket = sim.issuers.ticket("single")
        sim.make_video([(ticket, 15.0)], fps=10)
        daemon = sim.start()
        camera = daemon.readers[0]
        assert wait_until(lambda: camera.health.get().state == "ok", 10)
        out = tmp_path / "from-gated.png"
        result, report = snapshot(sim.config_path, "--json", "--output", str(out))
        assert result.returncode == 0, result.stderr
        assert report["via"] == "gated"
        assert [code["text"] for code in report["codes"]] == [ticket]
        assert cv2.imread(str(out)).shape == (480, 640, 3)
        state = sim.config.state_dir
        assert not (state / REQUEST_FILE).exists()
        assert not list(state.glob("snapshot-*.png"))
        assert camera.health.get().state == "ok"  # gated's camera went on working


class _Camera:
    """Stands in for gated's camera reader: records the frames it is asked to save."""

    def __init__(self) -> None:
        self.asked: list[Path] = []

    def request_snapshot(self, path: Path) -> None:
        self.asked.append(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff\xfe\x00garbage", b"../../etc/passwd", b"A" * 32, b"0" * 31, b"0" * 33 + b"\n"],
    ids=["empty", "binary", "path", "uppercase", "short", "long"],
)
def test_gated_ignores_a_garbage_snapshot_request(tmp_path, content):
    from gate.snapshot import serve_request

    (tmp_path / REQUEST_FILE).write_bytes(content)
    camera = _Camera()
    serve_request(tmp_path, [camera])  # never raises
    assert camera.asked == []
    assert not (tmp_path / REQUEST_FILE).exists()


def test_gated_survives_a_snapshot_request_it_cannot_read(tmp_path):
    from gate.snapshot import serve_request

    (tmp_path / REQUEST_FILE).mkdir()  # a directory where the request file should be
    camera = _Camera()
    serve_request(tmp_path, [camera])
    assert camera.asked == []
    token = "0123456789abcdef" * 2
    (tmp_path / REQUEST_FILE).rmdir()
    (tmp_path / REQUEST_FILE).write_text(token + "\n")
    serve_request(tmp_path, [camera])
    assert camera.asked == [tmp_path / f"snapshot-{token}.png"]
