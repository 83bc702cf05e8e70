"""gate-office against a running collector: enrolment, the fleet, revocations, trust bundles
and pulling the scan log, run as the console script an office would run."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from collector_fixtures import chain_records, running_collector
from helpers_cli import BIN, run_script

from gate.revocations import RevocationList
from gate.scanlog import GENESIS
from gate.ticket import mint_ticket
from gate.trust import TrustStore
from keys.documents import revocation_list, trust_bundle
from keys.keyfile import KeyPair, save_key
from keys.mint import build_claims

TOKEN = "office-token-0123456789"
AT = 1_795_600_000.0  # chain_records puts record seq at AT + seq / 2


class Gate:
    """An enrolled gate uploading its scan log through the gate API, chain continued."""

    def __init__(self, collector, gate_id: str) -> None:
        key = KeyPair.generate()
        collector.enrol(gate_id, key.public_key)
        self.client = collector.gate_client(gate_id, key)
        self.seq, self.prev = 0, GENESIS

    def upload(self, count: int, at: float = AT) -> None:
        records = chain_records(count, self.seq + 1, self.prev, at=at)
        answer = self.client.push(records)
        assert answer.status_code == 200, answer.text
        self.seq, self.prev = records[-1]["seq"], records[-1]["hash"]

    def revocations(self, since: int, root: KeyPair) -> RevocationList:
        answer = self.client.revocations(since)
        assert answer.status_code == 200, answer.text
        return RevocationList.from_document(answer.content, root.public_key)


class Office:
    """The office's side: a root key, a token file, and gate-office run as a console script."""

    def __init__(self, tmp_path: Path, collector, root: KeyPair) -> None:
        self.collector, self.root = collector, root
        self.token_file = tmp_path / "office.token"
        self.token_file.write_text(collector.token + "\n")
        self.root_file = tmp_path / "root.key"
        save_key(root, self.root_file)

    def run(self, *args: str, token_file: Path | None = None, url: str | None = None, **kw):
        connection = ("--url", url or self.collector.url)
        return run_script(
            "gate-office",
            *args,
            *connection,
            "--token-file",
            str(token_file or self.token_file),
            **kw,
        )

    def revoke(self, *args: str):
        return self.run("revoke", "--root", str(self.root_file), *args)

    def gate(self, gate_id: str) -> Gate:
        return Gate(self.collector, gate_id)


@pytest.fixture
def office(tmp_path):
    root = KeyPair.generate()
    with running_collector(
        tmp_path, root_public_key=root.public_key, token=TOKEN, mode="thread"
    ) as collector:
        yield Office(tmp_path, collector, root)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def error_line(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate-office: error: "), result.stderr
    return lines[0]


# --- tests ---


def test_a_missing_empty_or_wrong_token_is_a_clear_error(office, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GATE_OFFICE_TOKEN"}
    missing = run_script("gate-office", "gates", "--url", office.collector.url, env=env)
    assert error_line(missing) == (
        "gate-office: error: no office token: give --token-file or set $GATE_OFFICE_TOKEN"
    )
    (tmp_path / "empty.token").write_text("\n")
    assert "is empty" in error_line(office.run("gates", token_file=tmp_path / "empty.token"))
    (tmp_path / "wrong.token").write_text("not-the-token")
    wrong = office.run("gates", token_file=tmp_path / "wrong.token")
    assert "refused the office token (HTTP 401: office token missing or wrong" in error_line(wrong)
    assert "check --token-file or $GATE_OFFICE_TOKEN" in error_line(wrong)
    env.update(GATE_OFFICE_TOKEN=TOKEN, GATE_COLLECTOR_URL=office.collector.url)
    assert run_script("gate-office", "gates", env=env).returncode == 0
    del env["GATE_COLLECTOR_URL"]
    no_url = run_script("gate-office", "gates", env=env)
    assert "no collector URL: give --url or set $GATE_COLLECTOR_URL" in error_line(no_url)


def test_an_unreachable_or_silent_collector_is_a_clear_error(office):
    url = office.collector.url
    office.collector.stop()
    refused = office.run("gates")
    assert f"cannot reach the collector at {url}" in error_line(refused)
    assert "check --url or $GATE_COLLECTOR_URL" in error_line(refused)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = office.run("pull", "--timeout", "0.3", url=silent_url)
    assert "did not answer GET /v1/office/scans within 0.3 s" in error_line(slow)
    assert "http://" in error_line(office.run("gates", url="ftp://example.org"))


def test_enrol_then_the_fleet_table(office):
    pair, other = KeyPair.generate(), KeyPair.generate()
    enrolled = ok(office.run("enrol", "north-01", pair.public_key.hex()))
    assert enrolled.stdout == f"enrolled gate north-01 ({pair.public_key.hex()})\n"
    again = ok(office.run("enrol", "north-01", pair.public_key.hex(), "--json"))
    assert json.loads(again.stdout) == {"gate_id": "north-01", "result": "unchanged"}
    clash = office.run("enrol", "north-01", other.public_key.hex())
    assert "(HTTP 409): gate 'north-01' is enrolled with another public key" in error_line(clash)
    replaced = ok(office.run("enrol", "north-01", other.public_key.hex(), "--replace"))
    assert replaced.stdout.startswith("replaced the key of gate north-01")
    bad = office.run("enrol", "north-02", "not-a-key")
    assert bad.returncode == 2 and "PUBLIC_KEY" in bad.stderr

    south = office.gate("south-01")
    south.upload(5)
    report = south.client.health(backlog=7, last_seq=5, sent_at=time.time() - 2.5)
    assert report.status_code == 200
    table = ok(office.run("gates")).stdout.splitlines()
    assert table[0] == "GATE      LAST SEEN  LAST SEQ  BACKLOG  CLOCK OFFSET  CHAIN"
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["north-01"] == ["north-01", "never", "0", "-", "-", "ok"]
    assert rows["south-01"][2:] == ["s", "ago", "5", "7", "+2.5", "s", "ok"]
    fleet = json.loads(ok(office.run("gates", "--json")).stdout)
    assert [g["gate_id"] for g in fleet] == ["north-01", "south-01"]
    assert fleet[1]["backlog"] == 7


def test_revoke_by_ticket_id_ticket_text_and_whole_key(office, tmp_path):
    gate = office.gate("north-01")
    issuer = KeyPair.generate()
    save_key(issuer, tmp_path / "issuer.key")
    kid = issuer.kid.hex()

    first = ok(office.revoke("--ticket", f"{kid}:{'aa' * 16}"))
    assert first.stdout.splitlines() == [
        f"revoked ticket {kid}:{'aa' * 16}",
        "published revocation full list: version 1",
    ]
    full = gate.revocations(0, office.root)
    assert (full.version, full.base) == (1, None)
    assert full.tickets == [(issuer.kid, bytes.fromhex("aa" * 16))]

    claims = build_claims(product="single", exp=str(int(time.time()) + 3600), cti="bb" * 12)
    text = mint_ticket(claims, issuer.signing_key)
    second = ok(office.revoke("--ticket-text", text, "--json"))
    assert json.loads(second.stdout) == {
        "version": 2,
        "base": 1,
        "tickets": [f"{kid}:{'bb' * 12}"],
        "keys": [],
    }
    delta = gate.revocations(1, office.root)
    assert (delta.version, delta.base, delta.keys) == (2, 1, [])
    assert delta.tickets == [(issuer.kid, bytes.fromhex("bb" * 12))]

    third = ok(office.revoke("--key", str(tmp_path / "issuer.key")))
    assert third.stdout.splitlines() == [
        f"revoked key {issuer.public_key.hex()}",
        "published revocation delta on version 2: version 3",
    ]
    delta = gate.revocations(2, office.root)
    assert (delta.version, delta.base, delta.tickets, delta.keys) == (3, 2, [], [issuer.public_key])
    assert gate.client.revocations(3).status_code == 204


def test_revoke_builds_on_what_the_collector_holds_and_refusals(office, tmp_path):
    issuer = KeyPair.generate()
    elsewhere = office.collector.publish("revocations", revocation_list(office.root, 10))
    assert elsewhere.status_code == 201, elsewhere.text
    later = ok(
        office.revoke("--key", issuer.public_key.hex(), "--ticket", f"{'01' * 8}:{'02' * 8}")
    )
    assert "published revocation delta on version 10: version 11" in later.stdout

    nothing = office.revoke()
    assert nothing.returncode == 2 and "nothing to revoke" in nothing.stderr
    garbled = office.revoke("--ticket-text", "GT1:????")
    assert garbled.returncode == 2 and "--ticket-text" in garbled.stderr
    assert "KID_HEX:TICKET_ID_HEX" in error_line(office.revoke("--ticket", "nonsense"))
    other_root = KeyPair.generate()
    save_key(other_root, tmp_path / "other-root.key")
    refused = office.run(
        "revoke", "--root", str(tmp_path / "other-root.key"), "--key", issuer.public_key.hex()
    )
    assert "the collector refused POST /v1/office/revocations (HTTP 400)" in error_line(refused)


def test_publish_bundle(office, tmp_path):
    gate = office.gate("north-01")
    issuer = KeyPair.generate()
    bundle = tmp_path / "trust-v3.cose"
    entries = [{"name": "metro", "public_key": issuer.public_key}]
    bundle.write_bytes(trust_bundle(entries, office.root, 3))
    published = ok(office.run("publish-bundle", str(bundle)))
    assert published.stdout.startswith("published trust bundle version 3 from")
    answer = gate.client.trust_bundle(0)
    assert answer.status_code == 200
    assert TrustStore.from_bundle(answer.content, office.root.public_key).version == 3
    again = office.run("publish-bundle", str(bundle))
    assert "version 3 is not newer than the newest published one" in error_line(again)
    wrong = tmp_path / "revocations.cose"
    wrong.write_bytes(revocation_list(office.root, 1, keys=[issuer.public_key]))
    refused = office.run("publish-bundle", str(wrong))
    assert "is a revocation list, not a trust bundle" in error_line(refused)


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_pull_to_csv_and_json_lines(office, tmp_path):
    office.gate("north-01").upload(30)
    office.gate("south-01").upload(10)
    out = tmp_path / "scans.csv"
    out.write_text("old content\n")
    pulled = ok(office.run("pull", "--out", str(out), "--page-size", "7"))
    assert pulled.stderr == f"40 scan record(s) written to {out}\n"
    assert pulled.stdout == ""
    rows = _csv_rows(out)
    assert list(rows[0])[:3] == ["gate_id", "seq", "at"]
    assert [(r["gate_id"], int(r["seq"])) for r in rows] == [
        *(("north-01", n) for n in range(1, 31)),
        *(("south-01", n) for n in range(1, 11)),
    ]
    assert rows[0]["cti"] == (1).to_bytes(16, "big").hex()
    assert rows[2]["admission_seq"] == "" and rows[2]["decision"] == "reject"
    assert json.loads(rows[0]["data"]) == {"product": "single", "zone": "A"}

    jsonl = ok(office.run("pull", "--format", "jsonl", "--gate", "south-01"))
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert records[0]["kid"] == "21fe31dfa154a261" and records[0]["at"] == AT + 0.5


def test_pull_filters(office):
    office.gate("north-01").upload(30)  # seq n at AT + n/2; every third one rejected (revoked)
    office.gate("south-01").upload(9)

    def pulled(*args):
        lines = ok(office.run("pull", "--format", "jsonl", *args)).stdout.splitlines()
        return [(json.loads(line)["gate_id"], json.loads(line)["seq"]) for line in lines]

    assert pulled("--gate", "north-01", "--decision", "reject") == [
        ("north-01", n) for n in range(3, 31, 3)
    ]
    assert len(pulled("--reason", "revoked")) == 13
    assert len(pulled("--decision", "accept")) == 26
    since = datetime.fromtimestamp(AT + 5, UTC).strftime("%Y-%m-%dT%H:%M:%S")  # ISO 8601
    window = pulled("--gate", "north-01", "--since", since, "--until", str(AT + 10.25))
    assert window == [("north-01", n) for n in range(10, 21)]
    bad = office.run("pull", "--since", "yesterday")
    assert bad.returncode == 2
    assert "--since: 'yesterday' is neither Unix seconds nor an ISO 8601 time" in bad.stderr


def test_pull_resumes_from_the_cursor_file_without_duplicates(office, tmp_path):
    gate = office.gate("north-01")
    gate.upload(25)
    out, cursor = tmp_path / "scans.csv", tmp_path / "scans.cursor"
    args = ("pull", "--out", str(out), "--cursor-file", str(cursor), "--page-size", "4")
    counts = [int(ok(office.run(*args, "--limit", "7")).stderr.split()[0]) for _ in range(2)]
    with out.open("a") as handle:  # as if killed after writing a page, before saving the cursor
        handle.write("north-01,15,1795600007.5,decision,camera,accept\r\n")
    counts += [int(ok(office.run(*args, "--limit", "7")).stderr.split()[0]) for _ in range(2)]
    assert counts == [7, 7, 7, 4]
    gate.upload(5)
    resumed = ok(office.run(*args)).stderr
    assert resumed == (
        f"5 scan record(s) written to {out}, continuing from {cursor}; cursor saved in {cursor}\n"
    )
    assert ok(office.run(*args)).stderr.startswith("0 scan record(s)")
    assert out.read_text().count("gate_id,seq,") == 1
    assert [int(r["seq"]) for r in _csv_rows(out)] == list(range(1, 31))
    other = office.run(*args, "--decision", "accept")
    assert "belongs to another pull" in error_line(other)

    # JSON Lines to standard output, as `>> scans.jsonl` would collect them
    jsonl_cursor = ("--format", "jsonl", "--cursor-file", str(tmp_path / "jsonl.cursor"))
    seen = []
    for _ in range(3):
        result = ok(office.run("pull", *jsonl_cursor, "--limit", "12"))
        seen += [json.loads(line)["seq"] for line in result.stdout.splitlines()]
    assert seen == list(range(1, 31))


def test_a_killed_pull_resumes_without_duplicates_or_gaps(office, tmp_path):
    office.gate("north-01").upload(1000)
    out, cursor = tmp_path / "scans.csv", tmp_path / "scans.cursor"
    files = ("--out", str(out), "--cursor-file", str(cursor))
    connection = ("--url", office.collector.url, "--token-file", str(office.token_file))
    command = [str(BIN / "gate-office"), "pull", *files, *connection, "--page-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not cursor.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = len(_csv_rows(out))
    assert 0 < before < 1000, "the pull was not interrupted midway"
    ok(office.run("pull", *files, "--page-size", "300"))
    seqs = [int(r["seq"]) for r in _csv_rows(out)]
    assert seqs == list(range(1, 1001)), f"killed after {before} rows"


def test_progress_shows_only_on_a_terminal(office, tmp_path):
    office.gate("north-01").upload(12)
    args = ("pull", "--out", str(tmp_path / "scans.csv"), "--page-size", "5")
    assert ok(office.run(*args)).stderr == f"12 scan record(s) written to {tmp_path}/scans.csv\n"
    controller, terminal = pty.openpty()
    connection = ("--url", office.collector.url, "--token-file", str(office.token_file))
    with os.fdopen(controller, "rb", buffering=0) as shown:
        process = subprocess.run(
            [str(BIN / "gate-office"), *args, *connection], stderr=terminal, timeout=30
        )
        os.close(terminal)
        assert process.returncode == 0
        text = b""
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := shown.read(4096):
                text += chunk
        text = text.decode()
    assert "\rpulled 5 records\rpulled 10 records\rpulled 12 records" in text
    assert text.endswith("12 scan record(s) written to " + f"{tmp_path}/scans.csv\r\n")
