"""The collector's HTTP API (docs/sync-protocol.md): gates upload scans and fetch documents,
the office enrols gates, reads scans and publishes documents.

Every gate request is checked with :func:`sync.signing.verify_request` before anything in it
is trusted; every office request needs the bearer token. Bodies are read with a size cap,
decompressed with a bounded reader and parsed strictly, so a malformed or oversized request
gets a 4xx JSON error (``{"error": "..."}``) and never a 500.

Authentication comes first: query parameters and bodies are parsed by hand after it, so an
unsigned request is answered 401 whatever else is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gate.errors import SignedDocumentError, StoreError
from gate.signed import REVOCATION_LIST, TRUST_BUNDLE
from gate.trust import parse_public_key
from sync.collector.documents import MAX_DOCUMENT_BYTES, verify_document
from sync.collector.records import (
    INT64_MAX,
    MAX_COMPRESSED_BYTES,
    MAX_DECOMPRESSED_BYTES,
    MAX_RECORDS,
    PayloadError,
    check_text,
    decode_body,
    is_count,
    is_number,
    parse_batch,
    parse_json,
    to_wire,
)
from sync.collector.storage import AlreadyEnrolled, CollectorStore, UnknownGate
from sync.signing import (
    GATE_ID_PATTERN,
    HEADER_GATE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIME,
    RequestRejected,
    verify_request,
)

log = logging.getLogger("gate-collector")

SMALL_BODY_BYTES = 64 * 1024
# A client that sends too much still gets its 413: the rest of the body is read and dropped
# up to this much, so the answer is not lost to a connection reset.
DRAIN_BYTES = 32 * 1024 * 1024
MAX_SCANS_LIMIT = 10_000
DEFAULT_SCANS_LIMIT = 1000
CURSOR_PREFIX = "r"

_bearer = HTTPBearer(auto_error=False, description="the office token (--token / --token-file)")

_SINCE = Query(description="the version the gate holds; 0 or absent: none")
_SIGNED_HEADERS = [
    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
    for name in (HEADER_GATE, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE)
]
_GATE_DOC = {"parameters": _SIGNED_HEADERS}
_ERROR = {"description": "refused", "content": {"application/json": {"example": {"error": "..."}}}}
_RECORD_SCHEMA = {
    "type": "object",
    "required": ["seq", "at", "kind", "prev_hash", "hash"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1},
        "at": {"type": "number"},
        **{
            name: {"type": ["string", "null"]}
            for name in ("kind", "source", "decision", "reason", "detail", "data")
        },
        "kid": {"type": ["string", "null"], "description": "hex"},
        "cti": {"type": ["string", "null"], "description": "hex"},
        "admission_seq": {"type": ["integer", "null"]},
        "latency_ms": {"type": ["number", "null"]},
        "prev_hash": {"type": "string", "description": "64 hex digits"},
        "hash": {"type": "string", "description": "64 hex digits"},
    },
}


def create_app(
    store: CollectorStore,
    *,
    token: str,
    root_public_key: bytes | None = None,
    clock: Callable[[], float] = time.time,
    close_store: bool = True,
) -> FastAPI:
    """The collector application over ``store``; the office authenticates with ``token``."""
    if not token:
        raise ValueError("the office token must not be empty")
    expected_token = token.encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_store:
            store.close()

    app = FastAPI(
        title="gate-collector",
        version="1",
        summary="Collects gates' scan logs; serves revocation lists and trust bundles.",
        description="Protocol: docs/sync-protocol.md. Operation: docs/collector.md.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)

    # -- the gate API --------------------------------------------------------------------------

    def authenticate(request: Request, gate_id: str, body: bytes) -> float:
        now = clock()
        verify_request(
            request.headers,
            request.method,
            signed_path(request),
            body,
            store.public_key_of,
            lambda gate, nonce, expires: store.remember_nonce(gate, nonce, expires, now),
            expected_gate=gate_id,
            now=now,
        )
        return now

    @app.post(
        "/v1/gates/{gate_id}/scans",
        tags=["gate"],
        summary="Upload scan records (gzip JSON, at most 1,000 records)",
        responses={
            200: {"content": {"application/json": {"example": {"acked_seq": 42, "chain": "ok"}}}},
            409: {"description": "the batch does not start at acked_seq + 1"},
            400: _ERROR,
            401: _ERROR,
            403: _ERROR,
            413: _ERROR,
        },
        openapi_extra=_GATE_DOC
        | {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["records"],
                            "properties": {
                                "records": {
                                    "type": "array",
                                    "maxItems": MAX_RECORDS,
                                    "items": _RECORD_SCHEMA,
                                }
                            },
                        }
                    }
                },
            }
        },
    )
    async def upload_scans(gate_id: str, request: Request) -> JSONResponse:
        body = await read_body(request, MAX_COMPRESSED_BYTES)
        return await run_in_threadpool(_upload_scans, gate_id, request, body)

    def _upload_scans(gate_id: str, request: Request, body: bytes) -> JSONResponse:
        now = authenticate(request, gate_id, body)
        plain = decode_body(body, request.headers.get("content-encoding"), MAX_DECOMPRESSED_BYTES)
        records = parse_batch(plain)
        outcome = store.ingest(gate_id, records, now)
        if outcome.gap:
            return JSONResponse(
                {
                    "acked_seq": outcome.acked_seq,
                    "error": f"the batch starts at seq {records[0]['seq']}; "
                    f"send from seq {outcome.acked_seq + 1}",
                },
                status_code=409,
            )
        if outcome.problem:
            log.warning("gate %s: %s", gate_id, outcome.problem)
        return JSONResponse(
            {
                "acked_seq": outcome.acked_seq,
                "chain": outcome.chain,
                "stored": len(outcome.new_records),
            }
        )

    @app.get(
        "/v1/gates/{gate_id}/revocations",
        tags=["gate"],
        summary="The next revocation list for a gate holding version `since`",
        response_class=Response,
        responses={
            200: {
                "description": "a signed revocation list (delta on `since`, else the newest "
                "full list); header X-Document-Version",
                "content": {"application/cose": {}},
            },
            204: {"description": "`since` is current"},
        },
        openapi_extra=_GATE_DOC,
    )
    async def pull_revocations(
        gate_id: str,
        request: Request,
        since: Annotated[str | None, _SINCE] = None,
    ) -> Response:
        body = await read_body(request, SMALL_BODY_BYTES)
        return await run_in_threadpool(_pull, gate_id, request, body, REVOCATION_LIST)

    @app.get(
        "/v1/gates/{gate_id}/trust-bundle",
        tags=["gate"],
        summary="The newest trust bundle if newer than `since`",
        response_class=Response,
        responses={
            200: {
                "description": "the signed trust bundle; header X-Document-Version",
                "content": {"application/cose": {}},
            },
            204: {"description": "`since` is current"},
        },
        openapi_extra=_GATE_DOC,
    )
    async def pull_trust_bundle(
        gate_id: str,
        request: Request,
        since: Annotated[str | None, _SINCE] = None,
    ) -> Response:
        body = await read_body(request, SMALL_BODY_BYTES)
        return await run_in_threadpool(_pull, gate_id, request, body, TRUST_BUNDLE)

    def _pull(gate_id: str, request: Request, body: bytes, kind: str) -> Response:
        authenticate(request, gate_id, body)
        since = parse_version(request.query_params.get("since"))
        if kind == REVOCATION_LIST:
            document = store.next_revocations(kind, since)
        else:
            document = store.newest_document(kind, newer_than=since)
        if document is None:
            return Response(status_code=204)
        headers = {"X-Document-Version": str(document.version)}
        if document.base is not None:
            headers["X-Document-Base"] = str(document.base)
        return Response(document.data, media_type="application/cose", headers=headers)

    @app.post(
        "/v1/gates/{gate_id}/health",
        tags=["gate"],
        summary="Report the gate's health; answers the collector's time",
        responses={200: {"content": {"application/json": {"example": {"server_time": 1.8e9}}}}},
        openapi_extra=_GATE_DOC
        | {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "example": {"backlog": 0, "last_seq": 42, "sent_at": 1795600000.25}
                    }
                },
            }
        },
    )
    async def report_health(gate_id: str, request: Request) -> JSONResponse:
        body = await read_body(request, SMALL_BODY_BYTES)
        return await run_in_threadpool(_report_health, gate_id, request, body)

    def _report_health(gate_id: str, request: Request, body: bytes) -> JSONResponse:
        now = authenticate(request, gate_id, body)
        health = parse_json(
            decode_body(body, request.headers.get("content-encoding"), SMALL_BODY_BYTES)
        )
        if not isinstance(health, dict):
            raise PayloadError("health must be a JSON object")
        backlog, last_seq, sent_at = (health.get(n) for n in ("backlog", "last_seq", "sent_at"))
        for name, value, check in (
            ("backlog", backlog, is_count),
            ("last_seq", last_seq, is_count),
            ("sent_at", sent_at, is_number),
        ):
            if value is not None and not check(value):
                raise PayloadError(f"{name} must be a {'number' if name == 'sent_at' else 'count'}")
        # ASCII-only JSON: any string the gate sent is storable, escaped.
        text = json.dumps(health, separators=(",", ":"), sort_keys=True)
        # Positive: the collector's clock is ahead of the gate's (the gate is slow).
        offset = None if sent_at is None else now - sent_at
        store.record_health(
            gate_id,
            backlog=backlog,
            reported_seq=last_seq,
            clock_offset=offset,
            health=text,
            now=now,
        )
        return JSONResponse({"server_time": now})

    # -- the office API ------------------------------------------------------------------------

    def office(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = (credentials.credentials if credentials else "").encode()
        if not hmac.compare_digest(given, expected_token):
            raise StarletteHTTPException(
                401,
                "office token missing or wrong: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.post(
        "/v1/office/gates",
        tags=["office"],
        summary="Enrol a gate's public key",
        dependencies=[Depends(office)],
        status_code=201,
        responses={
            200: {"description": "already enrolled with this key, or the key was replaced"},
            409: {"description": "enrolled with another key; add ?replace=1"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "example": {"gate_id": "north-01", "public_key": "64 hex digits"}
                    }
                },
            }
        },
    )
    async def enrol_gate(
        request: Request,
        replace: str | None = Query(None, description="1: replace a different enrolled key"),
    ) -> JSONResponse:
        body = parse_json(await read_body(request, SMALL_BODY_BYTES))
        if not isinstance(body, dict):
            raise PayloadError('body must be {"gate_id": ..., "public_key": ...}')
        gate_id, key_text = body.get("gate_id"), body.get("public_key")
        if not isinstance(gate_id, str) or not GATE_ID_PATTERN.match(gate_id):
            raise PayloadError("gate_id must be 1-64 characters: letters, digits, '.', '_', '-'")
        if not isinstance(key_text, str):
            raise PayloadError("public_key must be a string: 64 hex digits or base64")
        try:
            public_key = parse_public_key(key_text)
        except ValueError as err:
            raise PayloadError(f"public_key: {err}") from err
        result = await run_in_threadpool(
            store.enrol, gate_id, public_key, replace=replace in ("1", "true", "yes"), now=clock()
        )
        status = 201 if result == "enrolled" else 200
        log.info("gate %s: %s", gate_id, result)
        return JSONResponse({"gate_id": gate_id, "result": result}, status_code=status)

    @app.get(
        "/v1/office/gates",
        tags=["office"],
        summary="The fleet: last seen, last seq, backlog, clock offset, chain status",
        dependencies=[Depends(office)],
    )
    async def list_gates() -> JSONResponse:
        gates = await run_in_threadpool(store.gates)
        for gate in gates:
            gate["health"] = json.loads(gate["health"]) if gate["health"] else None
        return JSONResponse({"gates": gates})

    @app.get(
        "/v1/office/scans",
        tags=["office"],
        summary="Scans in the order received, by cursor",
        dependencies=[Depends(office)],
    )
    async def list_scans(
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        gate: str | None = Query(None, description="one gate id"),
        since: str | None = Query(None, description="at >= since: Unix seconds or ISO 8601"),
        until: str | None = Query(None, description="at < until: Unix seconds or ISO 8601"),
        decision: str | None = Query(None, description="accept, reject, ..."),
        reason: str | None = Query(None, description="ok, revoked, ..."),
        limit: str | None = Query(None, description=f"1 to {MAX_SCANS_LIMIT}, default 1000"),
    ) -> JSONResponse:
        after = decode_cursor(cursor)
        count = parse_limit(limit)
        filters = {
            "gate_id": _text_filter(gate, "gate"),
            "since": parse_time(since, "since"),
            "until": parse_time(until, "until"),
            "decision": _text_filter(decision, "decision"),
            "reason": _text_filter(reason, "reason"),
        }
        rows = await run_in_threadpool(lambda: store.scans(after=after, limit=count + 1, **filters))
        more = len(rows) > count
        rows = rows[:count]
        next_after = rows[-1]["received_id"] if rows else after
        records = []
        for row in rows:
            del row["received_id"]
            records.append(to_wire(row))
        return JSONResponse(
            {"records": records, "next_cursor": encode_cursor(next_after), "more": more}
        )

    def publish_route(kind: str, path: str, name: str) -> None:
        @app.post(
            path,
            tags=["office"],
            summary=f"Publish a signed {name}, checked against the office root key",
            dependencies=[Depends(office)],
            status_code=201,
            responses={400: _ERROR},
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/cose": {"schema": {"type": "string"}}},
                }
            },
            name=f"publish_{kind}",
        )
        async def publish(request: Request) -> JSONResponse:
            data = await read_body(request, MAX_DOCUMENT_BYTES)
            document = await run_in_threadpool(verify_document, kind, data, root_public_key)
            await run_in_threadpool(
                store.publish,
                kind,
                document.version,
                document.base,
                document.issued_at,
                data,
                clock(),
            )
            log.info("published %s", document.describe())
            return JSONResponse(
                {
                    "published": document.describe(),
                    "version": document.version,
                    "base": document.base,
                    "entries": document.entries,
                },
                status_code=201,
            )

        @app.get(
            path,
            tags=["office"],
            summary=f"What is published: every {name} version",
            dependencies=[Depends(office)],
            name=f"list_{kind}",
        )
        async def published() -> JSONResponse:
            return JSONResponse({"documents": await run_in_threadpool(store.documents, kind)})

    publish_route(REVOCATION_LIST, "/v1/office/revocations", "revocation list (full or delta)")
    publish_route(TRUST_BUNDLE, "/v1/office/trust-bundles", "trust bundle")
    return app


# -- request plumbing --------------------------------------------------------------------------


def signed_path(request: Request) -> str:
    """The path with query exactly as the gate sent it, which is what it signed."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").partition("?")[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (declared or sent)."""
    drain = max(limit, DRAIN_BYTES)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _is_digits(declared):
            raise PayloadError("Content-Length is not a number")
        if int(declared) > drain:
            raise PayloadError(f"body is over {limit} bytes", 413)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > drain:
                break
    except ClientDisconnect as err:  # the gate went away mid-upload: it will resend
        raise PayloadError("the client disconnected before the body was complete") from err
    if size > limit:
        raise PayloadError(f"body is over {limit} bytes", 413)
    return b"".join(chunks)


def _is_digits(text: str, most: int = 19) -> bool:
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def parse_version(text: str | None) -> int:
    """A ``since`` version: absent or 0 means none held."""
    if text is None or text == "":
        return 0
    if not _is_digits(text) or int(text) > INT64_MAX:
        raise PayloadError("since must be a version number 0 to 2^63-1")
    return int(text)


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_SCANS_LIMIT
    if not _is_digits(text, 6) or not 1 <= int(text) <= MAX_SCANS_LIMIT:
        raise PayloadError(f"limit must be a whole number 1 to {MAX_SCANS_LIMIT}")
    return int(text)


def parse_time(text: str | None, name: str) -> float | None:
    """Unix seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as err:
            raise PayloadError(f"{name} must be Unix seconds or an ISO 8601 time") from err
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise PayloadError(f"{name} must be a finite number")
    return value


def _text_filter(text: str | None, name: str) -> str | None:
    return None if text is None else check_text(text, name)


def encode_cursor(received_id: int) -> str:
    """An opaque cursor: base64url of the collector's receive order position."""
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{received_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise PayloadError("cursor is not one this collector gave out") from err
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not _is_digits(number):
        raise PayloadError("cursor is not one this collector gave out")
    return int(number)


def _install_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, err: RequestRejected) -> JSONResponse:
        # The collector's time helps a gate whose clock drifted past the allowed skew.
        return error(err.status, err.reason, server_time=time.time())

    @app.exception_handler(PayloadError)
    async def payload(request: Request, err: PayloadError) -> JSONResponse:
        return error(err.status, err.message)

    @app.exception_handler(SignedDocumentError)
    async def document(request: Request, err: SignedDocumentError) -> JSONResponse:
        return error(400, str(err))

    @app.exception_handler(StoreError)
    async def storage(request: Request, err: StoreError) -> JSONResponse:
        if isinstance(err, AlreadyEnrolled):
            return error(409, str(err))
        if isinstance(err, UnknownGate):
            return error(403, str(err))
        log.error("database error: %s", err)
        return error(503, f"the collector's database is unavailable: {err}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors()
        )
        return error(400, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(err.detail)}, status_code=err.status_code, headers=err.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, "internal error; see the collector's log")
