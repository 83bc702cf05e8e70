"""The collector (sync/collector): a real uvicorn server on 127.0.0.1, driven over HTTP with
signed gate requests and the office token, on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import zlib

import cbor2
import pytest
from collector_fixtures import (
    ROOT_DIR,
    GateClient,
    chain_records,
    from_wire,
    postgres_cluster,
    postgres_unavailable,
    running_collector,
    wire,
)

from gate.revocations import RevocationList
from gate.scanlog import GENESIS, record_hash, verify_chain
from gate.signed import REVOCATION_LIST, TRUST_BUNDLE
from gate.trust import TrustStore
from keys.documents import revocation_list, trust_bundle
from keys.keyfile import KeyPair
from sync.collector.app import decode_cursor, encode_cursor
from sync.collector.records import MAX_COMPRESSED_BYTES
from sync.collector.storage import PostgresStore, SqliteStore, open_store

ROOT = KeyPair.generate()
ISSUER = KeyPair.generate()
TOKEN = "office-secret"
KID = bytes.fromhex("21fe31dfa154a261")


@pytest.fixture(scope="session")
def postgres():
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def collector(backend, tmp_path, request):
    pg = request.getfixturevalue("postgres") if backend == "postgresql" else None
    with running_collector(
        tmp_path, backend, ROOT.public_key, TOKEN, mode="thread", postgres=pg
    ) as running:
        yield running


@pytest.fixture
def gate(collector):
    """An enrolled gate "north-01" and its signed client."""
    pair = KeyPair.generate()
    collector.enrol("north-01", pair.public_key)
    return collector.gate_client("north-01", pair)


def push_ok(client: GateClient, records) -> dict:
    response = client.push(records)
    assert response.status_code == 200, response.text
    return response.json()


# -- enrolment ---------------------------------------------------------------------------------


def test_enrol_replace_and_list(collector):
    first, second = KeyPair.generate(), KeyPair.generate()
    office = collector.office
    body = {"gate_id": "north-01", "public_key": first.public_key.hex()}
    assert office.post("/v1/office/gates", json=body).status_code == 201
    again = office.post("/v1/office/gates", json=body)
    assert (again.status_code, again.json()["result"]) == (200, "unchanged")
    other = {"gate_id": "north-01", "public_key": second.public_key.hex()}
    conflict = office.post("/v1/office/gates", json=other)
    assert conflict.status_code == 409 and "replace" in conflict.json()["error"]
    replaced = office.post("/v1/office/gates?replace=1", json=other)
    assert (replaced.status_code, replaced.json()["result"]) == (200, "replaced")
    for bad in (
        {"gate_id": "bad id!", "public_key": first.public_key.hex()},
        {"gate_id": "south-02", "public_key": "zz" * 32},
        {"gate_id": "south-02", "public_key": 12},
        {"gate_id": 7},
        [],
    ):
        response = office.post("/v1/office/gates", json=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]
    (listed,) = collector.gates()
    assert listed["gate_id"] == "north-01"
    assert listed["public_key"] == second.public_key.hex()
    assert (listed["last_seq"], listed["chain_status"], listed["last_seen"]) == (0, "ok", None)
    # the old key no longer signs for the gate
    old = collector.gate_client("north-01", first)
    assert old.push(chain_records(1)).status_code == 401


# -- uploading scans ---------------------------------------------------------------------------


def test_batches_in_order_are_stored_and_the_chain_verifies(collector, gate):
    records = chain_records(250)
    for start in range(0, 250, 100):
        answer = push_ok(gate, records[start : start + 100])
        assert answer == {
            "acked_seq": min(start + 100, 250),
            "chain": "ok",
            "stored": len(records[start : start + 100]),
        }
    held = collector.scans(gate="north-01")
    assert [r["seq"] for r in held] == list(range(1, 251))
    assert verify_chain([from_wire(r) for r in held]) is None
    assert held[0]["kid"] == KID.hex() and held[0]["data"] == records[0]["data"]
    assert all(r["received_at"] > 0 and r["gate_id"] == "north-01" for r in held)
    state = collector.gate("north-01")
    assert (state["last_seq"], state["last_hash"], state["chain_status"]) == (
        250,
        records[-1]["hash"].hex(),
        "ok",
    )
    assert state["last_seen"] is not None


def test_an_identity_encoded_batch_and_an_empty_batch(gate):
    assert gate.push(chain_records(3), compress=False).json()["acked_seq"] == 3
    assert push_ok(gate, []) == {"acked_seq": 3, "chain": "ok", "stored": 0}


def test_a_resend_is_acknowledged_and_not_stored_twice(collector, gate):
    records = chain_records(60)
    push_ok(gate, records[:50])
    assert push_ok(gate, records[:50]) == {"acked_seq": 50, "chain": "ok", "stored": 0}
    assert push_ok(gate, records[39:]) == {"acked_seq": 60, "chain": "ok", "stored": 10}
    # a resend of old records is acknowledged up to what it carried, not beyond
    assert push_ok(gate, records[:20]) == {"acked_seq": 20, "chain": "ok", "stored": 0}
    assert [r["seq"] for r in collector.scans()] == list(range(1, 61))


def test_a_different_record_under_a_held_seq_is_a_fork(collector, gate):
    records = chain_records(10)
    push_ok(gate, records)
    forked = chain_records(6, 5, records[3]["hash"], detail="rewritten")
    answer = push_ok(gate, forked)
    assert answer["acked_seq"] == 4 and answer["stored"] == 0
    assert answer["chain"].startswith("fork at seq 5:")
    held = {r["seq"]: r for r in collector.scans()}
    assert held[5]["detail"] == "scan 5" and len(held) == 10  # nothing overwritten
    status = collector.gate("north-01")
    assert status["chain_status"].startswith("fork at seq 5:")
    assert status["last_seq"] == 10
    # the gate's genuine records are still acknowledged
    assert push_ok(gate, records[8:])["chain"] == "ok"


def test_a_batch_past_the_next_seq_is_a_gap(collector, gate):
    assert gate.push(chain_records(5, 2)).status_code == 409
    records = chain_records(20)
    push_ok(gate, records[:10])
    gap = gate.push(records[14:])
    assert gap.status_code == 409
    assert gap.json()["acked_seq"] == 10
    assert len(collector.scans()) == 10
    assert collector.gate("north-01")["chain_status"] == "ok"
    assert push_ok(gate, records[10:])["acked_seq"] == 20


def test_a_record_whose_hash_does_not_match_breaks_the_chain(collector, gate):
    records = chain_records(10)
    records[5] = dict(records[5], reason="ok-but-altered")  # hash left as it was
    answer = push_ok(gate, records)
    assert answer["acked_seq"] == 5 and answer["stored"] == 5
    assert answer["chain"] == "broken at seq 6: hash does not match the record's content"
    assert [r["seq"] for r in collector.scans()] == [1, 2, 3, 4, 5]
    assert collector.gate("north-01")["chain_status"].startswith("broken at seq 6")


def test_a_record_that_does_not_link_to_the_held_chain_is_refused(collector, gate):
    push_ok(gate, chain_records(10))
    unlinked = chain_records(5, 11, bytes(range(32)))  # self-consistent, wrong prev_hash
    answer = push_ok(gate, unlinked)
    assert answer["acked_seq"] == 10 and answer["stored"] == 0
    assert answer["chain"].startswith("broken at seq 11: prev_hash")
    # the first problem stays on record
    tampered = chain_records(12)[10:]
    tampered[0] = dict(tampered[0], detail="x")
    push_ok(gate, tampered)
    assert collector.gate("north-01")["chain_status"].startswith("broken at seq 11: prev_hash")


def test_a_first_record_must_link_to_genesis(gate):
    answer = push_ok(gate, chain_records(3, 1, bytes(32 * [7])))
    assert answer["acked_seq"] == 0 and answer["chain"].startswith("broken at seq 1")


def test_two_gates_uploading_at_once(collector):
    clients = []
    for name in ("east-1", "west-2", "south-3"):
        pair = KeyPair.generate()
        collector.enrol(name, pair.public_key)
        clients.append(collector.gate_client(name, pair))
    errors = []

    def upload(client):
        records = chain_records(300)
        for start in range(0, 300, 50):
            response = client.push(records[start : start + 50])
            if response.status_code != 200:
                errors.append(response.text)

    threads = [threading.Thread(target=upload, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    paged = collector.scans(limit=77)
    assert len(paged) == 900
    assert len({(r["gate_id"], r["seq"]) for r in paged}) == 900
    for name in ("east-1", "west-2", "south-3"):
        mine = [from_wire(r) for r in paged if r["gate_id"] == name]
        assert verify_chain(sorted(mine, key=lambda r: r["seq"])) is None


# -- office scans ------------------------------------------------------------------------------


def test_scans_by_cursor_with_filters(collector, gate):
    other = KeyPair.generate()
    collector.enrol("south-02", other.public_key)
    south = collector.gate_client("south-02", other)
    push_ok(gate, chain_records(30))
    push_ok(south, chain_records(12, at=1_800_000_000.0))
    everything = collector.scans()
    assert len(everything) == 42
    pages, cursor = [], None
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        page = collector.office.get("/v1/office/scans", params=params).json()
        pages.append(page["records"])
        cursor = page["next_cursor"]
        if not page["more"]:
            break
    assert [len(p) for p in pages] == [5] * 8 + [2]
    assert [r for p in pages for r in p] == everything
    # the last cursor waits for what comes next
    push_ok(gate, chain_records(31)[30:])
    later = collector.office.get("/v1/office/scans", params={"cursor": cursor}).json()
    assert [(r["gate_id"], r["seq"]) for r in later["records"]] == [("north-01", 31)]

    def seqs(**filters):
        return [(r["gate_id"], r["seq"]) for r in collector.scans(**filters)]

    assert seqs(gate="south-02") == [("south-02", n) for n in range(1, 13)]
    rejects = seqs(gate="south-02", decision="reject")
    assert rejects == [("south-02", 3), ("south-02", 6), ("south-02", 9), ("south-02", 12)]
    assert len(seqs(reason="revoked")) == 10 + 4
    assert seqs(gate="north-01", since=1_795_600_000 + 5, until=1_795_600_000 + 7) == [
        ("north-01", 10),
        ("north-01", 11),
        ("north-01", 12),
        ("north-01", 13),
    ]
    iso = seqs(since="2027-01-15T08:00:00+00:00")
    assert iso == [("south-02", n) for n in range(1, 13)]
    assert seqs(gate="nobody") == []


BAD_SCAN_QUERIES = [
    {"cursor": "not a cursor"},
    {"cursor": encode_cursor(5)[:-1] + "!"},
    {"cursor": "eDU"},  # base64 of "x5"
    {"limit": "0"},
    {"limit": "10001"},
    {"limit": "ten"},
    {"since": "yesterday"},
    {"until": "nan"},
    {"gate": "a\x00b"},
]


def test_bad_scan_queries_are_400(collector):
    for params in BAD_SCAN_QUERIES:
        response = collector.office.get("/v1/office/scans", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]


def test_the_cursor_is_opaque_but_round_trips():
    assert decode_cursor(encode_cursor(123456)) == 123456
    assert decode_cursor(None) == 0


# -- documents ---------------------------------------------------------------------------------


def test_revocations_full_and_delta_chain(collector, gate):
    assert gate.revocations().status_code == 204
    ticket = (KID, bytes(16))
    full1 = revocation_list(ROOT, 1, tickets=[ticket])
    delta2 = revocation_list(ROOT, 2, base=1, tickets=[(KID, bytes([1]) * 16)])
    delta3 = revocation_list(ROOT, 3, base=2, remove_tickets=[ticket])
    for document in (full1, delta2, delta3):
        published = collector.publish("revocations", document)
        assert published.status_code == 201, published.text
    assert collector.publish("revocations", delta3).status_code == 400  # not newer
    pulled = gate.revocations(0)
    assert pulled.status_code == 200
    assert pulled.content == full1 and pulled.headers["X-Document-Version"] == "1"
    assert pulled.headers["content-type"] == "application/cose"
    step = gate.revocations(1)
    assert step.content == delta2 and step.headers["X-Document-Base"] == "1"
    assert RevocationList.from_document(step.content, ROOT.public_key).base == 1
    assert gate.revocations(2).content == delta3
    assert gate.revocations(3).status_code == 204
    # a gate on a version no delta starts from gets the newest full list
    full4 = revocation_list(ROOT, 4, tickets=[(KID, bytes([2]) * 16)])
    assert collector.publish("revocations", full4).status_code == 201
    assert gate.revocations(3).content == full4
    assert gate.revocations(1).content == delta2  # a delta on the held version comes first
    assert gate.revocations().content == full4
    assert gate.revocations(4).status_code == 204
    assert gate.revocations(99).status_code == 204
    listed = collector.office.get("/v1/office/revocations").json()["documents"]
    assert [(d["version"], d["base"]) for d in listed] == [(1, None), (2, 1), (3, 2), (4, None)]


def test_trust_bundles(collector, gate):
    assert gate.trust_bundle().status_code == 204
    entry = {"name": "metro", "public_key": ISSUER.public_key}
    v1 = trust_bundle([entry], ROOT, 1)
    assert collector.publish("trust-bundles", v1).json()["entries"] == 1
    pulled = gate.trust_bundle(0)
    assert pulled.content == v1 and pulled.headers["X-Document-Version"] == "1"
    assert len(TrustStore.from_bundle(pulled.content, ROOT.public_key)) == 1
    assert gate.trust_bundle(1).status_code == 204
    bus = {"name": "bus", "public_key": KeyPair.generate().public_key}
    v3 = trust_bundle([entry, bus], ROOT, 3)
    assert collector.publish("trust-bundles", v3).status_code == 201
    assert gate.trust_bundle(1).content == v3
    refused = collector.publish("trust-bundles", trust_bundle([entry], ROOT, 2))
    assert refused.status_code == 400 and "not newer" in refused.json()["error"]


def _last_byte_flipped(document: bytes) -> bytes:
    """The signature's last byte changed (always: replacing it could keep it as it was)."""
    return document[:-1] + bytes([document[-1] ^ 0x01])


REFUSED_DOCUMENTS = [
    (
        "revocations",
        lambda: revocation_list(KeyPair.generate(), 1),
        "not by this gate's office root key",
    ),
    (
        "revocations",
        lambda: cbor2.dumps({"type": REVOCATION_LIST, "version": 1, "tickets": []}),
        "unsigned",
    ),
    ("revocations", lambda: b"\x00garbage", "refused"),
    ("revocations", lambda: b"", "refused"),
    ("revocations", lambda: trust_bundle([], ROOT, 1), "not a revocation list"),
    ("trust-bundles", lambda: revocation_list(ROOT, 1), "not a trust bundle"),
    (
        "trust-bundles",
        lambda: _last_byte_flipped(trust_bundle([], ROOT, 1)),
        "does not verify",
    ),
    (
        "trust-bundles",
        lambda: cbor2.dumps({"type": TRUST_BUNDLE, "version": 1, "keys": []}),
        "unsigned",
    ),
]


def test_documents_that_a_gate_would_refuse_are_refused(collector):
    for kind, document, message in REFUSED_DOCUMENTS:
        response = collector.publish(kind, document())
        assert response.status_code == 400, (message, response.text)
        assert message in response.json()["error"]
    assert collector.office.get("/v1/office/revocations").json()["documents"] == []
    assert collector.office.get("/v1/office/trust-bundles").json()["documents"] == []


def test_publishing_needs_the_root_key(tmp_path):
    with running_collector(tmp_path, "sqlite", None, TOKEN, mode="thread") as collector:
        response = collector.publish("revocations", revocation_list(ROOT, 1))
        assert response.status_code == 400
        assert "--root-public-key" in response.json()["error"]


# -- health ------------------------------------------------------------------------------------


def test_health_and_clock_offset(collector, gate):
    before = time.time()
    response = gate.health(backlog=17, last_seq=250, sent_at=before - 42.5, cameras="ok")
    assert response.status_code == 200
    server_time = response.json()["server_time"]
    assert before <= server_time <= time.time()
    state = collector.gate("north-01")
    assert state["backlog"] == 17 and state["reported_seq"] == 250
    assert state["last_seq"] == 0  # what the collector holds is not what the gate reports
    assert 42.5 <= state["clock_offset"] <= 42.5 + (server_time - before) + 0.01
    assert state["health"]["cameras"] == "ok"
    assert state["last_seen"] == pytest.approx(server_time)
    ahead = gate.health(sent_at=time.time() + 30)
    assert ahead.status_code == 200
    assert collector.gate("north-01")["clock_offset"] == pytest.approx(-30, abs=1)


MALFORMED_HEALTH = [
    b"[]",
    b"{",
    b'{"backlog": -1}',
    b'{"backlog": "3"}',
    b'{"last_seq": 1.5}',
    b'{"sent_at": "now"}',
    b'{"sent_at": true}',
    b'{"sent_at": 1e400}',
]


def test_malformed_health_is_400(collector, gate):
    for body in MALFORMED_HEALTH:
        response = gate.request("POST", "health", body, {"Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
    assert collector.gate("north-01")["health"] is None


# -- security ----------------------------------------------------------------------------------


def test_gate_requests_must_be_signed_by_that_gate(collector, gate):
    body = json.dumps({"records": [wire(r) for r in chain_records(2)]}).encode()
    path = "/v1/gates/north-01/scans"
    http = gate.http

    def send(headers, content=body, url=path):
        return http.post(url, content=content, headers=headers)

    assert send({}).status_code == 401
    stranger = KeyPair.generate()
    wrong_key = GateClient(collector.url, "north-01", stranger).signed_headers("POST", path, body)
    assert send(wrong_key).status_code == 401
    headers = gate.signed_headers("POST", path, body)
    assert send(headers).status_code == 200
    replay = send(headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]
    stale = send(gate.signed_headers("POST", path, body, now=time.time() - 1000))
    assert stale.status_code == 401 and "stale" in stale.json()["error"]
    assert stale.json()["server_time"] > 0
    tampered = send(gate.signed_headers("POST", path, body), content=body.replace(b"1", b"2"))
    assert tampered.status_code == 401
    south = KeyPair.generate()
    collector.enrol("south-02", south.public_key)
    other_path = "/v1/gates/south-02/scans"
    other = send(gate.signed_headers("POST", other_path, body), url=other_path)
    assert other.status_code == 403  # north-01 signing for south-02
    unknown = GateClient(collector.url, "ghost-9", stranger)
    assert unknown.push(chain_records(1)).status_code == 403
    signed_for_1 = gate.signed_headers("GET", "/v1/gates/north-01/revocations?since=1")
    query = http.get("/v1/gates/north-01/revocations?since=2", headers=signed_for_1)
    assert query.status_code == 401
    bad_headers = dict(gate.signed_headers("POST", path, body), **{"X-Gate-Signature": "zz"})
    assert send(bad_headers).status_code == 400
    assert collector.gate("north-01")["last_seq"] == 2


def test_office_requests_need_the_token(collector):
    import httpx

    wrong = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
             {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN}x"}]  # fmt: skip
    with httpx.Client(base_url=collector.url) as http:
        for headers in wrong:
            for method, path in (
                ("GET", "/v1/office/gates"),
                ("GET", "/v1/office/scans"),
                ("POST", "/v1/office/gates"),
                ("POST", "/v1/office/revocations"),
                ("POST", "/v1/office/trust-bundles"),
            ):
                response = http.request(method, path, headers=headers, content=b"{garbage")
                assert response.status_code == 401, (headers, method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
    assert collector.gates() == []


# -- malformed and oversized bodies ------------------------------------------------------------


def _batch(*records) -> bytes:
    return json.dumps({"records": list(records)}).encode()


GOOD = wire(chain_records(1)[0])

MALFORMED = {
    "not json": (b"{records: [", 400),
    "not utf-8": (b'{"records": ["\xff"]}', 400),
    "not an object": (b"[1, 2]", 400),
    "records not a list": (b'{"records": {"seq": 1}}', 400),
    "record not an object": (_batch(1), 400),
    "seq a string": (_batch(GOOD | {"seq": "1"}), 400),
    "seq negative": (_batch(GOOD | {"seq": -1}), 400),
    "seq zero": (_batch(GOOD | {"seq": 0}), 400),
    "seq past int64": (_batch(GOOD | {"seq": 1 << 63}), 400),
    "seq huge": (_batch(GOOD | {"seq": 10**200}), 400),
    "seq 5000 digits": (b'{"records": [{"seq": ' + b"9" * 5000 + b"}]}", 400),
    "seq a bool": (_batch(GOOD | {"seq": True}), 400),
    "seq a float": (_batch(GOOD | {"seq": 1.0}), 400),
    "at missing": (_batch({k: v for k, v in GOOD.items() if k != "at"}), 400),
    "at a string": (_batch(GOOD | {"at": "noon"}), 400),
    "at NaN": (_batch(GOOD).replace(b"1795600000.5", b"NaN"), 400),
    "at infinite": (_batch(GOOD).replace(b"1795600000.5", b"1e999"), 400),
    "kind empty": (_batch(GOOD | {"kind": ""}), 400),
    "kind with NUL": (_batch(GOOD | {"kind": "de\x00cision"}), 400),
    "detail a lone surrogate": (_batch(GOOD).replace(b"scan 1", b"\\ud800"), 400),
    "data an object": (_batch(GOOD | {"data": {"product": "single"}}), 400),
    "kid not hex": (_batch(GOOD | {"kid": "zz" * 8}), 400),
    "kid odd length": (_batch(GOOD | {"kid": "abc"}), 400),
    "kid with spaces": (_batch(GOOD | {"kid": "21 fe 31 df"}), 400),
    "kid too long": (_batch(GOOD | {"kid": "ab" * 65}), 400),
    "cti a number": (_batch(GOOD | {"cti": 5}), 400),
    "hash short": (_batch(GOOD | {"hash": "ab" * 16}), 400),
    "hash not hex": (_batch(GOOD | {"hash": "g" * 64}), 400),
    "prev_hash missing": (_batch({k: v for k, v in GOOD.items() if k != "prev_hash"}), 400),
    "admission_seq a float": (_batch(GOOD | {"admission_seq": 1.5}), 400),
    "latency_ms a string": (_batch(GOOD | {"latency_ms": "fast"}), 400),
    "unknown field": (_batch(GOOD | {"gate_id": "north-01"}), 400),
    "not consecutive": (_batch(GOOD, GOOD | {"seq": 3}), 400),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, 400),
    "too many records": (_batch(*[GOOD] * 1001), 413),
}


def test_malformed_batches_are_4xx_and_nothing_is_stored(collector, gate):
    for case, (body, status) in MALFORMED.items():
        for compressed in (False, True):
            content = gzip.compress(body) if compressed else body
            headers = {"Content-Encoding": "gzip"} if compressed else {}
            response = gate.request("POST", "scans", content, headers)
            assert response.status_code == status, (case, compressed, response.text)
            assert response.json()["error"]
    assert collector.scans() == []
    assert push_ok(gate, chain_records(1))["acked_seq"] == 1  # and the server is fine


def test_bad_encodings_and_oversized_bodies(collector, gate):
    good = _batch(GOOD)

    def send(content, **headers):
        return gate.request("POST", "scans", content, headers)

    assert send(b"\x1f\x8b\x08garbage", **{"Content-Encoding": "gzip"}).status_code == 400
    truncated = gzip.compress(good)[:-12]
    assert send(truncated, **{"Content-Encoding": "gzip"}).status_code == 400
    trailing = gzip.compress(good) + b"junk"
    assert send(trailing, **{"Content-Encoding": "gzip"}).status_code == 400
    brotli = send(good, **{"Content-Encoding": "br"})
    assert brotli.status_code == 415
    # a gzip bomb: 64 MiB of zeros in about 64 KiB; refused after 16 MiB of output
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = compressor.compress(bytes(64 << 20)) + compressor.flush()
    assert len(bomb) < 100_000
    exploded = send(bomb, **{"Content-Encoding": "gzip"})
    assert exploded.status_code == 413 and "decompressed" in exploded.json()["error"]
    big = send(bytes(MAX_COMPRESSED_BYTES + 1))
    assert big.status_code == 413
    big_gzip = send(bytes(MAX_COMPRESSED_BYTES + 1), **{"Content-Encoding": "gzip"})
    assert big_gzip.status_code == 413
    assert collector.scans() == []
    assert push_ok(gate, chain_records(2))["acked_seq"] == 2


def test_an_oversized_body_without_content_length(collector, gate):
    """A chunked upload is counted as it arrives."""
    path = "/v1/gates/north-01/scans"
    chunks = [bytes(1 << 20)] * 5
    headers = gate.signed_headers("POST", path, b"".join(chunks))
    response = gate.http.post(path, content=iter(chunks), headers=headers)
    assert response.status_code == 413


def _raw_request(port: int, request: bytes) -> bytes:
    """Send bytes on a fresh connection; the answer, or b"" when the server cut it off."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(request)
            return conn.recv(1000)
        except (BrokenPipeError, ConnectionResetError):
            return b""


def test_huge_and_odd_headers(collector, gate):
    path = "/v1/gates/north-01/revocations"
    huge = _raw_request(
        collector.port,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Padding: {'a' * 200_000}\r\n\r\n".encode(),
    )
    assert huge == b"" or huge.startswith(b"HTTP/1.1 4")
    headers = gate.signed_headers("GET", path)
    long_signature = headers | {"X-Gate-Signature": "ab" * 5000}
    assert gate.http.get(path, headers=long_signature).status_code == 400
    not_a_time = gate.signed_headers("GET", path) | {"X-Gate-Timestamp": "soon"}
    assert gate.http.get(path, headers=not_a_time).status_code == 400
    bad_length = _raw_request(
        collector.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode()
    )
    assert bad_length.startswith(b"HTTP/1.1 4")
    assert gate.revocations().status_code == 204  # still serving


def test_bad_since_is_400(gate):
    for since in ("abc", "-1", "1.5", "99999999999999999999", "%EF%BC%91"):  # the last: "１"
        assert gate.revocations(since).status_code == 400, since
        assert gate.trust_bundle(since).status_code == 400, since


def test_unknown_routes_and_methods_answer_json(collector):
    missing = collector.office.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = collector.office.delete("/v1/office/gates")
    assert wrong.status_code == 405 and wrong.json()["error"]


def test_openapi_is_served(collector):
    spec = collector.office.get("/openapi.json").json()
    assert {
        "/v1/gates/{gate_id}/scans",
        "/v1/gates/{gate_id}/revocations",
        "/v1/gates/{gate_id}/trust-bundle",
        "/v1/gates/{gate_id}/health",
        "/v1/office/gates",
        "/v1/office/scans",
        "/v1/office/revocations",
        "/v1/office/trust-bundles",
    } <= set(spec["paths"])
    assert collector.office.get("/docs").status_code == 200


# -- restarts, crashes and the command line ----------------------------------------------------


def test_a_killed_collector_keeps_what_it_acknowledged(tmp_path, backend, request):
    pg = request.getfixturevalue("postgres") if backend == "postgresql" else None
    pair = KeyPair.generate()
    with running_collector(tmp_path, backend, ROOT.public_key, TOKEN, postgres=pg) as collector:
        collector.enrol("north-01", pair.public_key)
        client = collector.gate_client("north-01", pair)
        records = chain_records(40)
        assert push_ok(client, records[:30])["acked_seq"] == 30
        path = "/v1/gates/north-01/revocations"
        seen_headers = client.signed_headers("GET", path)
        assert client.http.get(path, headers=seen_headers).status_code == 204
        collector.kill()
        collector.start()
        assert collector.gate("north-01")["last_seq"] == 30
        assert push_ok(client, records[20:])["acked_seq"] == 40
        # nonces live in the database: a replay after a restart is still a replay
        assert client.http.get(path, headers=seen_headers).status_code == 401
        collector.stop()
        collector.start()
        assert verify_chain([from_wire(r) for r in collector.scans()]) is None


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "sync.collector", *args],
        capture_output=True,
        text=True,
        cwd=ROOT_DIR,
        timeout=60,
        env=env,
    )


def test_enrol_offline_then_serve(tmp_path):
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    pair = KeyPair.generate()
    result = _cli("enrol", "north-01", pair.public_key.hex(), "--db", db)
    assert (result.returncode, result.stdout) == (0, "gate north-01: enrolled\n")
    again = _cli("enrol", "north-01", KeyPair.generate().public_key.hex(), "--db", db)
    assert again.returncode == 1
    assert again.stderr.startswith("gate-collector: error: gate 'north-01' is enrolled")
    assert "Traceback" not in again.stderr
    bad = _cli("enrol", "north-01", "12345", "--db", db)
    assert bad.returncode == 2 and "PUBLIC_KEY" in bad.stderr
    listed = json.loads(_cli("gates", "--db", db, "--json").stdout)
    assert [g["gate_id"] for g in listed] == ["north-01"]
    with running_collector(tmp_path, database_url=db, token=TOKEN, mode="thread") as collector:
        client = collector.gate_client("north-01", pair)
        assert push_ok(client, chain_records(3))["acked_seq"] == 3
    assert "last_seq 3" in _cli("gates", "--db", db).stdout


def test_serve_refuses_without_a_token(tmp_path):
    result = _cli("serve", "--db", str(tmp_path / "c.db"), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "office token" in result.stderr
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = _cli("serve", "--db", str(tmp_path / "c.db"), "--token-file", str(empty))
    assert result.returncode == 2 and "empty" in result.stderr
    result = _cli("serve", "--db", "mysql://x", "--token", "t")
    assert result.returncode == 1 and "unsupported database URL" in result.stderr


def test_database_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("relative.db") as store:
        assert isinstance(store, SqliteStore) and store.migrations() == ["001_initial"]
    with open_store("sqlite:///rel2.db") as store:  # three slashes: relative
        assert store.path.resolve() == tmp_path.resolve() / "rel2.db"
    with open_store(f"sqlite:///{tmp_path}/abs.db") as store:
        assert store.path == tmp_path / "abs.db"
    assert (tmp_path / "relative.db").exists() and (tmp_path / "abs.db").exists()


def test_postgres_store_migrates_once(postgres):
    url = postgres.create_database()
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
    with open_store(url) as store:
        assert store.migrations() == ["001_initial"]


def test_storage_chain_rules_directly(tmp_path):
    """The same rules without HTTP: ingest returns the outcome the API answers with."""
    with open_store(str(tmp_path / "c.db")) as store:
        store.enrol("north-01", KeyPair.generate().public_key)
        records = chain_records(5)
        assert store.ingest("north-01", records).acked_seq == 5
        assert store.ingest("north-01", chain_records(1, 7, records[-1]["hash"])).gap
        odd = dict(records[2], hash=record_hash(GENESIS, {"seq": 3}))
        assert store.ingest("north-01", [odd]).problem.startswith("fork at seq 3")
        assert [r["seq"] for r in store.gate_records("north-01")] == [1, 2, 3, 4, 5]


def test_ingest_throughput(collector, gate):
    """A full batch of 1,000 records is taken in well under a second."""
    records = chain_records(3000)
    started = time.perf_counter()
    for start in range(0, 3000, 1000):
        assert push_ok(gate, records[start : start + 1000])["stored"] == 1000
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"{3000 / elapsed:.0f} records/s"


def test_a_dropped_postgres_connection_is_reopened(tmp_path, postgres):
    import psycopg

    with running_collector(
        tmp_path, "postgresql", ROOT.public_key, TOKEN, mode="thread", postgres=postgres
    ) as collector:
        pair = KeyPair.generate()
        collector.enrol("north-01", pair.public_key)
        client = collector.gate_client("north-01", pair)
        records = chain_records(10)
        push_ok(client, records[:5])
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = 'collector_tests' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        assert killed >= 1
        assert push_ok(client, records[5:])["acked_seq"] == 10
