"""Minting tickets with ``gate-keys issue``: one ticket from options, a batch from a CSV file.

The tickets are checked the way a gate and a phone would see them: the PNG is decoded by a
real QR reader (zxing-cpp on the OpenCV image), and the text goes through ``gatectl check``.
The issuer key is the RFC 8032 test key, so the GT1 specification's test vector can be minted
through the command line and compared byte for byte.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import nacl.signing
import pytest
import segno
import zxingcpp
from helpers_core import SPEC_CLAIMS, SPEC_KID, SPEC_PUBLIC_KEY, SPEC_SEED, SPEC_TEXT

from gate.ticket import parse_ticket
from keys.mint import MANIFEST_COLUMNS, make_qr

BIN = Path(sys.executable).parent
GATE_KEYS = BIN / "gate-keys"
GATECTL = BIN / "gatectl"
TIMEOUT = 30
SCALE, BORDER = 8, 4
# Inside the validity of every ticket minted here (2026-05-28).
AT = 1_780_000_000
Y2030 = 1_893_456_000  # 2030-01-01T00:00:00Z


def environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("GATE_KEY_PASSPHRASE", "GATE_DEBUG", "GATE_CONFIG")
    }


def run(program: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), *map(str, args)],
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def read_manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


def gatectl_check(text: str, cwd: Path, *, zone: str = "A", at: float = AT) -> tuple[int, dict]:
    result = run(
        GATECTL,
        "check",
        "--json",
        "--trust",
        SPEC_PUBLIC_KEY.hex(),
        "--zone",
        zone,
        "--at",
        at,
        "--",
        text,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory holding ``issuer.key``: the RFC 8032 test key, in the clear."""
    directory = tmp_path_factory.mktemp("mint")
    result = run(GATE_KEYS, "new", "issuer.key", "--seed", SPEC_SEED.hex(), cwd=directory)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SPEC_KID.hex()
    return directory


def issue(workdir: Path, out: Path, *options: object) -> subprocess.CompletedProcess[str]:
    return run(GATE_KEYS, "issue", "--key", "issuer.key", "--out", out, *options, cwd=workdir)


# One ticket from options ---------------------------------------------------------------


@pytest.fixture(scope="module")
def single(workdir) -> tuple[Path, str, float, float]:
    out = workdir / "single"
    before = time.time()
    result = issue(
        workdir,
        out,
        "--product",
        "single",
        "--exp",
        "2030-01-01",
        "--zones",
        "A,B",
        "--category",
        "adult",
        "--iss",
        "metro",
        "--cti",
        "0102030405060708090a",
    )
    after = time.time()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    return out, lines[0], before, after


def test_issue_prints_one_gt1_text_with_the_requested_claims(single):
    _, text, before, after = single
    assert text.startswith("GT1:")
    ticket = parse_ticket(text)
    assert ticket.kid == SPEC_KID
    assert ticket.message.verify(nacl.signing.VerifyKey(SPEC_PUBLIC_KEY))
    claims = ticket.claims
    assert claims.cti == bytes.fromhex("0102030405060708090a")
    assert claims.product == "single"
    assert claims.exp == Y2030
    assert claims.zones == ("A", "B")
    assert claims.category == "adult"
    assert claims.iss == "metro"
    assert claims.nbf is None
    assert claims.uses is None
    # iat defaults to the time of minting.
    assert int(before) <= claims.iat <= after


def test_issue_writes_text_png_svg_and_a_manifest(single):
    out, text, _, _ = single
    stem = out / "0102030405060708090a"
    assert stem.with_suffix(".txt").read_text(encoding="ascii") == text + "\n"
    assert stem.with_suffix(".png").stat().st_size > 0
    assert stem.with_suffix(".svg").stat().st_size > 0
    assert read_manifest(out) == [
        {
            "cti": "0102030405060708090a",
            "product": "single",
            "exp": str(Y2030),
            "nbf": "",
            "zones": "A B",
            "uses": "",
            "category": "adult",
            "text": "0102030405060708090a.txt",
            "png": "0102030405060708090a.png",
            "svg": "0102030405060708090a.svg",
        }
    ]


def test_issue_mints_the_spec_test_vector_exactly(workdir, tmp_path):
    c = SPEC_CLAIMS
    result = issue(
        workdir,
        tmp_path / "vector",
        "--product",
        c.product,
        "--exp",
        c.exp,
        "--nbf",
        c.nbf,
        "--iat",
        c.iat,
        "--zones",
        ",".join(c.zones),
        "--uses",
        c.uses,
        "--category",
        c.category,
        "--iss",
        c.iss,
        "--cti",
        c.cti.hex(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SPEC_TEXT + "\n"
    assert (tmp_path / "vector" / f"{c.cti.hex()}.txt").read_text() == SPEC_TEXT + "\n"


# A batch from a CSV file -----------------------------------------------------------------

BATCH_CSV = """\
product,exp,nbf,iat,zones,uses,category,iss,cti
single,2030-01-01,,1767225600,A,,adult,metro,0102030405060708
multi,1893456000,2026-01-01T00:00,1767225600,A B,10,child,metro,
pass,2030-01-01T00:00:00+01:00,,1767225600,A|B|C,,staff,,a0a1a2a3a4a5a6a7a8a9aaabacadaeaf
multi,1798761600,1767225600,1767225600,"A,B",10,adult,metro-demo,00112233445566778899aabbccddeeff
"""


@pytest.fixture(scope="module")
def batch(workdir) -> tuple[Path, list[dict[str, str]]]:
    (workdir / "batch.csv").write_text(BATCH_CSV, encoding="utf-8")
    out = workdir / "batch"
    result = issue(workdir, out, "--csv", "batch.csv", "--json")
    assert result.returncode == 0, result.stderr
    tickets = [json.loads(line) for line in result.stdout.splitlines()]
    assert "4 ticket(s)" in result.stderr
    return out, tickets


def test_batch_prints_one_ticket_per_row(batch):
    _, tickets = batch
    assert len(tickets) == 4
    assert all(t["text"].startswith("GT1:") for t in tickets)
    claims = [parse_ticket(t["text"]).claims for t in tickets]
    for ticket, claim in zip(tickets, claims, strict=True):
        assert ticket["cti"] == claim.cti.hex()
    assert [c.product for c in claims] == ["single", "multi", "pass", "multi"]
    assert [c.exp for c in claims] == [Y2030, Y2030, Y2030 - 3600, 1_798_761_600]
    assert [c.nbf for c in claims] == [None, 1_767_225_600, None, 1_767_225_600]
    assert [c.zones for c in claims] == [("A",), ("A", "B"), ("A", "B", "C"), ("A", "B")]
    assert [c.uses for c in claims] == [None, 10, None, 10]
    assert [c.category for c in claims] == ["adult", "child", "staff", "adult"]
    assert [c.iss for c in claims] == ["metro", "metro", None, "metro-demo"]
    assert claims[0].cti == bytes.fromhex("0102030405060708")
    assert len(claims[1].cti) == 16  # a random id when the cell is empty
    # The last row is the specification's test vector.
    assert tickets[3]["text"] == SPEC_TEXT


def test_batch_writes_every_file_and_the_manifest_lists_every_cti(batch):
    out, tickets = batch
    rows = read_manifest(out)
    assert [row["cti"] for row in rows] == [t["cti"] for t in tickets]
    for row, ticket in zip(rows, tickets, strict=True):
        cti = ticket["cti"]
        assert (row["text"], row["png"], row["svg"]) == (f"{cti}.txt", f"{cti}.png", f"{cti}.svg")
        assert (out / row["text"]).read_text() == ticket["text"] + "\n"
        assert (out / row["png"]).is_file()
        assert (out / row["svg"]).is_file()
        assert Path(ticket["png"]) == out / row["png"]
        assert Path(ticket["svg"]) == out / row["svg"]
    assert [row["uses"] for row in rows] == ["", "10", "", "10"]
    assert [row["zones"] for row in rows] == ["A", "A B", "A B C", "A B"]
    files = {p.name for p in out.iterdir()}
    assert files == {"manifest.csv"} | {
        f"{t['cti']}{s}" for t in tickets for s in (".txt", ".png", ".svg")
    }


# The QR codes --------------------------------------------------------------------------


def _all_tickets(single, batch) -> list[tuple[str, Path, Path]]:
    out, text, _, _ = single
    items = [(text, out / "0102030405060708090a.png", out / "0102030405060708090a.svg")]
    items += [(t["text"], Path(t["png"]), Path(t["svg"])) for t in batch[1]]
    return items


def test_each_png_decodes_to_exactly_the_ticket_text(single, batch):
    items = _all_tickets(single, batch)
    # Base45 has a space in its alphabet; at least one text must carry one (the spec vector
    # does), so the comparison below also proves spaces survive the round trip.
    assert any(" " in text for text, _, _ in items)
    for text, png, _ in items:
        image = cv2.imread(str(png))
        assert image is not None
        results = zxingcpp.read_barcodes(image)
        assert len(results) == 1
        assert results[0].format == zxingcpp.BarcodeFormat.QRCode
        assert results[0].text == text


def test_the_qr_codes_use_alphanumeric_mode(single, batch):
    for text, png, svg in _all_tickets(single, batch):
        qr = make_qr(text)
        assert qr.mode == "alphanumeric"
        assert qr.error == "M"
        # The PNG on disk is that symbol: same size, and smaller than a byte-mode symbol
        # would have been.
        height, width = cv2.imread(str(png)).shape[:2]
        assert (width, height) == qr.symbol_size(scale=SCALE, border=BORDER)
        byte_mode = segno.make_qr(text, mode="byte", error="m", boost_error=False)
        assert byte_mode.version > qr.version
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert (int(root.get("width")), int(root.get("height"))) == (width, height)


# Minted tickets at a gate ------------------------------------------------------------------


def test_minted_tickets_are_accepted_by_gatectl_check(single, batch, tmp_path):
    for text, _, _ in _all_tickets(single, batch):
        code, decision = gatectl_check(text, tmp_path)
        assert decision["decision"] == "accept", decision
        assert decision["reason"] == "ok"
        assert decision["kid"] == SPEC_KID.hex()
        assert decision["claims"]["cti"] == parse_ticket(text).claims.cti.hex()
        assert code == 0


def test_gatectl_check_rejects_minted_tickets_outside_their_limits(batch, tmp_path):
    spec_ticket = batch[1][3]["text"]  # zones A, B; exp 1798761600
    code, decision = gatectl_check(spec_ticket, tmp_path, zone="C")
    assert (code, decision["reason"]) == (3, "wrong_zone")
    code, decision = gatectl_check(spec_ticket, tmp_path, at=1_798_761_600 + 30)
    assert (code, decision["reason"]) == (3, "expired")


# Times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exp", "expected"),
    [
        ("1893456000", Y2030),
        ("2030-01-01", Y2030),
        ("2030-01-01T12:30", Y2030 + 12 * 3600 + 30 * 60),
        ("2030-01-01T12:30:00Z", Y2030 + 12 * 3600 + 30 * 60),
        ("2030-01-01T12:30:00+02:00", Y2030 + 10 * 3600 + 30 * 60),
        ("2030-01-01 00:00:01", Y2030 + 1),
    ],
)
def test_exp_takes_iso_dates_and_unix_seconds(workdir, tmp_path, exp, expected):
    result = issue(workdir, tmp_path / "out", "--product", "pass", "--exp", exp, "--nbf", exp)
    assert result.returncode == 0, result.stderr
    claims = parse_ticket(result.stdout.strip()).claims
    assert claims.exp == expected
    assert claims.nbf == expected


@pytest.mark.parametrize("exp", ["tomorrow", "2030-02-30", "-5", "1.5e9", "31/12/2030"])
def test_a_bad_exp_option_is_one_error_line(workdir, tmp_path, exp):
    result = issue(workdir, tmp_path / "out", "--product", "single", "--exp", exp)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"gate-keys: error: exp: {exp!r} is neither Unix seconds nor an ISO 8601 date"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_issue_needs_product_and_exp_or_a_csv(workdir, tmp_path):
    (workdir / "one.csv").write_text("product,exp\nsingle,2030-01-01\n")
    for options in (
        ["--product", "single"],
        ["--exp", "2030-01-01"],
        ["--product", "single", "--exp", ""],
        ["--csv", "one.csv", "--product", "single"],
    ):
        result = issue(workdir, tmp_path / "out", *options)
        assert result.returncode == 2, (options, result)
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()


# CSV errors ----------------------------------------------------------------------------

HEADER = "product,exp,zones,uses,cti\n"
GOOD_ROW = "single,2030-01-01,A,,\n"
CSV_ERRORS = {
    "unknown-column": ("product,exp,colour\nsingle,2030-01-01,red\n", 1, "unknown columns"),
    "bad-product": (HEADER + GOOD_ROW + "ticket,2030-01-01,A,,\n", 3, "product: 'ticket'"),
    "bad-exp-date": (HEADER + "single,2030-13-45,A,,\n", 2, "exp: '2030-13-45'"),
    "bad-exp-word": (HEADER + GOOD_ROW + GOOD_ROW + "single,soon,A,,\n", 4, "exp: 'soon'"),
    "bad-nbf": ("product,exp,nbf\nsingle,2030-01-01,yesterday\n", 2, "nbf: 'yesterday'"),
    "missing-exp": (HEADER + "single,,A,,\n", 2, "product and exp are required"),
    "multi-without-uses": (HEADER + GOOD_ROW + "multi,2030-01-01,A,,\n", 3, "uses"),
    "multi-with-zero-uses": (HEADER + "multi,2030-01-01,A,0,\n", 2, "uses"),
    "uses-not-a-number": (HEADER + "multi,2030-01-01,A,ten,\n", 2, "uses: 'ten'"),
    "cti-not-hex": (
        HEADER + "single,2030-01-01,A,,00112233zz\n",
        2,
        "cti: '00112233zz' is not hex",
    ),
    "cti-too-short": (HEADER + "single,2030-01-01,A,,00112233\n", 2, "cti: must be 8 to 16 bytes"),
    "cti-too-long": (HEADER + "single,2030-01-01,A,," + "00" * 17 + "\n", 2, "8 to 16 bytes"),
    # The line number is the line in the file, blank lines included.
    "after-a-blank-line": (HEADER + GOOD_ROW + "\n" + "multi,2030-01-01,A,,\n", 4, "uses"),
    # A row with more cells than the header has columns would silently lose the extra ones
    # (here the intended zone B).
    "extra-cell": ("product,exp,zones\nsingle,2030-01-01,A,B\n", 2, ""),
}


@pytest.mark.parametrize("name", list(CSV_ERRORS))
def test_csv_errors_name_the_file_and_line(workdir, tmp_path, name):
    content, line, fragment = CSV_ERRORS[name]
    path = tmp_path / "tickets.csv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    result = issue(workdir, out, "--csv", path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"gate-keys: error: {path}:{line}: "
    assert lines[0].startswith(prefix), lines[0]
    assert fragment in lines[0].removeprefix(prefix)
    # A batch is all or nothing: no ticket of it was minted.
    assert result.stdout == ""
    assert not out.exists() or not any(out.iterdir())
